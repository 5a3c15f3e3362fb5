"""`acs-sms-consumer demo`: the whole service on one machine, no Azure account, no Docker.

Starts the local Event Hubs endpoint, a checkpoint store (Azurite when `azurite-blob` is installed,
else the clearly labelled in-memory store), the synthetic ACS traffic generator publishing with the
real SDK producer, and the real consumer (`Service`, the code behind `run`) serving /metrics on
localhost. Prints the URLs and a few live figures; Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from consumer.app import Service
from consumer.config import Settings
from consumer.labels import DELIVERY_REPORT, SENT, SUCCEEDED
from consumer.logs import configure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acs-sms-consumer demo", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9464, help="HTTP port of /metrics (default 9464; 0 = any free port)")
    parser.add_argument("--rate", type=float, default=100.0, help="records per second of generated traffic (default 100)")
    parser.add_argument("--failure-ratio", type=float, default=0.05, help="share of failed sends and delivery reports (default 0.05)")
    parser.add_argument("--countries", default="US=60,CA=10,GB=10,FR=10,DE=10", help="country mix, e.g. US=70,CA=30")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the local hub (default 4)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the traffic generator")
    parser.add_argument("--figures-every", type=float, default=5.0, help="seconds between live figure lines")
    parser.add_argument("--no-azurite", action="store_true", help="use the in-memory checkpoint store even if Azurite is installed")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from consumer.devtools.traffic import TrafficOptions, parse_mix

    try:
        countries = parse_mix(args.countries, _iso(), expected="COUNTRY=WEIGHT pairs such as US=70,CA=30")
        traffic = TrafficOptions(rate=args.rate, failure_ratio=args.failure_ratio, countries=countries,
                                 duration=args.duration, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    if args.partitions < 1:
        parser.error("--partitions must be at least 1")
    configure("WARNING", sys.stderr)
    try:
        return asyncio.run(_demo(args, traffic))
    except KeyboardInterrupt:
        return 0


def _iso() -> frozenset[str]:
    from consumer.labels import ISO_COUNTRIES

    return ISO_COUNTRIES


async def _demo(args: argparse.Namespace, traffic: Any) -> int:
    from consumer.devtools.eventhubs import EventHubsEndpoint
    from consumer.devtools.traffic import publish

    say = print
    endpoint = EventHubsEndpoint(hub="acs-diagnostics", partitions=args.partitions).start()
    azurite = None
    store: Any = None
    storage_connection_string = "UseDevelopmentStorage=true"  # replaced below, or unused with the in-memory store
    try:
        if not args.no_azurite:
            azurite = _start_azurite(say)
        if azurite is not None:
            storage_connection_string = azurite.connection_string
            say(f"demo: checkpoint store: Azurite on {azurite.blob_endpoint}")
        else:
            from consumer.devtools.memory_store import InMemoryCheckpointStore

            store = InMemoryCheckpointStore()
            say(f"demo: checkpoint store: {store.label}; dead letters are not kept")
        settings = Settings.model_validate({
            "eventhub": {"connection_string": endpoint.connection_string, "initial_position": "earliest",
                         "max_wait_time_seconds": 1, "load_balancing_interval_seconds": 2,
                         "partition_ownership_expiration_interval_seconds": 10},
            "checkpoint_store": {"connection_string": storage_connection_string, "container": "demo-checkpoints"},
            "deadletter": {"enabled": azurite is not None, "container": "demo-deadletter"},
            "http": {"host": "127.0.0.1", "port": args.port},
            "logging": {"level": "WARNING", "progress_interval_seconds": 3600},
            "shutdown_timeout_seconds": 15,
        })
        service = Service(settings, checkpoint_store=store)
        say(f"demo: local Event Hubs endpoint: {endpoint.connection_string}")
        serving = asyncio.create_task(service.serve(), name="consumer")
        port = await _wait_for_port(service, serving)
        if port is None:
            return await serving
        say(f"demo: metrics  http://127.0.0.1:{port}/metrics   ready http://127.0.0.1:{port}/readyz   (Ctrl-C stops)")
        say(f"demo: traffic: {traffic.rate:g} records/s, failure ratio {traffic.failure_ratio:g}, seed {traffic.seed}")
        publishing = asyncio.create_task(
            publish(traffic, connection_string=endpoint.connection_string, realtime=True), name="traffic")
        figures = asyncio.create_task(_figures(service, args.figures_every, say), name="figures")
        waiters = [serving, publishing] if traffic.bounded else [serving]
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if publishing in done and not serving.done():
            await asyncio.sleep(3)  # let the consumer catch up with the last events
            service.request_stop()
        code = await serving
        for task in (publishing, figures):
            task.cancel()
        await asyncio.gather(publishing, figures, return_exceptions=True)
        _print_figures(service, say, final=True)
        return code
    finally:
        endpoint.close()
        if azurite is not None:
            azurite.close()
        say("demo: stopped")


def _start_azurite(say: Any) -> Any:
    from consumer.devtools.azurite import Azurite, AzuriteError, find_azurite_blob

    try:
        find_azurite_blob()
    except AzuriteError:
        return None
    try:
        return Azurite().start()
    except AzuriteError as exc:
        say(f"demo: Azurite did not start ({str(exc).splitlines()[0]}); using the in-memory store")
        return None


async def _wait_for_port(service: Service, serving: asyncio.Task[int]) -> int | None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not serving.done():
        if service.http_port is not None:
            return service.http_port
        await asyncio.sleep(0.05)
    return None


async def _figures(service: Service, every: float, say: Any) -> None:
    while True:
        await asyncio.sleep(every)
        _print_figures(service, say)


def _print_figures(service: Service, say: Any, final: bool = False) -> None:
    domain = service.metrics.domain
    records = sum(v for (_, outcome), v in domain.records.values.items() if outcome == "processed")
    ops = domain.operations.values
    sends = sum(v for key, v in ops.items() if key[0] == SENT)
    failed_sends = sum(v for key, v in ops.items() if key[0] == SENT and key[1] != SUCCEEDED)
    reports = sum(v for key, v in ops.items() if key[0] == DELIVERY_REPORT)
    failed_reports = sum(v for key, v in ops.items() if key[0] == DELIVERY_REPORT and key[1] != SUCCEEDED)
    pairs = sum(domain.delivery_latency.count(*key) for key in domain.delivery_latency.children)
    events = sum(domain.events.values.values())
    say(
        f"demo{' (final)' if final else ''}: {events:.0f} events, {records:.0f} records | sends {sends:.0f} "
        f"({_share(failed_sends, sends)} failed) | delivery reports {reports:.0f} ({_share(failed_reports, reports)} failed, "
        f"{pairs} with latency) | decode errors {sum(domain.decode_errors.values.values()):.0f}"
    )


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"

