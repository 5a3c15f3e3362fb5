"""`acs-sms-consumer demo`: the whole service on one machine, no Azure account, no Docker.

Starts the local Event Hubs endpoint, a checkpoint store (Azurite when `azurite-blob` is installed,
else the clearly labelled in-memory store), the synthetic ACS traffic generator publishing with the
real SDK producer, and the real consumer (`Service`, the code behind `run`) serving /metrics on
localhost. Prints the URLs and a few live figures; Ctrl-C stops everything cleanly.

With `--prometheus`, a real Prometheus server (devtools/acs_sms_devtools/prometheus.py) scrapes the consumer
every second with the project's alert rules, time constants divided by 60 (`for: 15m` over 15
minutes becomes 15 s over 15 s), and the demo prints every alert that starts or stops firing: run
`acs-sms-consumer simulate --drill-country US ...` against the endpoint it prints to see the
delivery-success burn-rate page (and the per-country alert) fire.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from consumer.app import Service
from consumer.config import Settings
from consumer.labels import DELIVERY_REPORT, SENT, SUCCEEDED
from consumer.logs import configure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acs-sms-consumer demo", description=__doc__.splitlines()[0],
        epilog="exit status:\n"
               "  0  stopped by Ctrl-C, or --duration ended, after the consumer's graceful shutdown\n"
               "  1  the consumer's shutdown did not finish in time, its receive loop stopped, or the\n"
               "     --prometheus server did not start\n"
               "  2  the arguments are wrong (or --prometheus cannot run here: the reason is printed)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9464, help="HTTP port of /metrics (default 9464; 0 = any free port)")
    parser.add_argument("--rate", type=float, default=100.0, help="records per second of generated traffic (default 100)")
    parser.add_argument("--failure-ratio", type=float, default=0.01,
                        help="share of failed sends and delivery reports (default 0.01: of which ~0.7%% count against "
                             "the 1%% error budget of the delivery SLO, recipient-owned codes excluded, so no alert fires "
                             "without a drill)")
    parser.add_argument("--countries", default="US=60,CA=10,GB=10,FR=10,DE=10", help="country mix, e.g. US=70,CA=30")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the local hub (default 4)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the traffic generator")
    parser.add_argument("--figures-every", type=float, default=5.0, help="seconds between live figure lines")
    parser.add_argument("--no-azurite", action="store_true", help="use the in-memory checkpoint store even if Azurite is installed")
    prometheus = parser.add_argument_group("Prometheus (the `prometheus` server must be installed)")
    prometheus.add_argument("--prometheus", action="store_true",
                            help="also run a real Prometheus scraping the consumer, with the project's alert rules "
                                 "on a 60x shorter clock, and print alerts as they fire")
    prometheus.add_argument("--prometheus-port", type=int, default=9090, help="its HTTP port (default 9090; 0 = any free port)")
    prometheus.add_argument("--prometheus-rules", type=Path, default=None, metavar="FILE",
                            help="alert rules to load (default deploy/prometheus/acs-sms-consumer.rules.yaml of this checkout)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from acs_sms_devtools.traffic import TrafficOptions, parse_mix

    try:
        countries = parse_mix(args.countries, _iso(), expected="COUNTRY=WEIGHT pairs such as US=70,CA=30")
        traffic = TrafficOptions(rate=args.rate, failure_ratio=args.failure_ratio, countries=countries,
                                 duration=args.duration, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    if args.partitions < 1:
        parser.error("--partitions must be at least 1")
    if args.prometheus:
        problem = _prometheus_problem(args)
        if problem:
            print(f"demo: --prometheus: {problem}", file=sys.stderr)
            return 2
    configure("WARNING", sys.stderr)
    try:
        return asyncio.run(_demo(args, traffic))
    except KeyboardInterrupt:
        return 0


def _iso() -> frozenset[str]:
    from consumer.labels import ISO_COUNTRIES

    return ISO_COUNTRIES


async def _demo(args: argparse.Namespace, traffic: Any) -> int:
    from acs_sms_devtools.eventhubs import EventHubsEndpoint
    from acs_sms_devtools.traffic import publish

    say = print
    endpoint = EventHubsEndpoint(hub="acs-diagnostics", partitions=args.partitions).start()
    azurite = None
    store: Any = None
    storage_connection_string = "UseDevelopmentStorage=true"  # replaced below, or unused with the in-memory store
    prometheus: Any = None
    watching: asyncio.Task[None] | None = None
    try:
        if not args.no_azurite:
            azurite = _start_azurite(say)
        if azurite is not None:
            storage_connection_string = azurite.connection_string
            say(f"demo: checkpoint store: Azurite on {azurite.blob_endpoint}")
        else:
            from acs_sms_devtools.memory_store import InMemoryCheckpointStore

            store = InMemoryCheckpointStore()
            say(f"demo: checkpoint store: {store.label}; dead letters are not kept")
        settings = Settings.model_validate({
            "eventhub": {"connection_string": endpoint.connection_string, "initial_position": "earliest",
                         "max_wait_time_seconds": 1, "load_balancing_interval_seconds": 2,
                         "partition_ownership_expiration_interval_seconds": 10},
            "checkpoint_store": {"connection_string": storage_connection_string, "container": "demo-checkpoints"},
            "deadletter": {"enabled": azurite is not None, "container": "demo-deadletter"},
            # Without --prometheus nothing scrapes: checkpoints follow the counts (a curl is no scrape).
            "checkpoint": {"scrape_aligned": bool(args.prometheus)},
            "http": {"host": "127.0.0.1", "port": args.port},
            "logging": {"level": "WARNING", "progress_interval_seconds": 3600},
            "shutdown_timeout_seconds": 15,
            # Ctrl-C: with --prometheus (a scrape a second) the lame duck ends at its next scrape.
            "shutdown_final_scrape_wait_seconds": 5,
        })
        service = Service(settings, checkpoint_store=store)
        say(f"demo: local Event Hubs endpoint: {endpoint.connection_string}")
        serving = asyncio.create_task(service.serve(), name="consumer")
        port = await _wait_for_port(service, serving)
        if port is None:
            return await serving
        say(f"demo: metrics  http://127.0.0.1:{port}/metrics   ready http://127.0.0.1:{port}/readyz   (Ctrl-C stops)")
        say(f"demo: traffic: {traffic.rate:g} records/s, failure ratio {traffic.failure_ratio:g}, seed {traffic.seed}")
        if args.prometheus:
            prometheus = await _start_prometheus(args, port, endpoint.connection_string, say)
            if prometheus is None:
                service.request_stop()
                await serving
                return 1
        publishing = asyncio.create_task(
            publish(traffic, connection_string=endpoint.connection_string, realtime=True), name="traffic")
        figures = asyncio.create_task(_figures(service, args.figures_every, say), name="figures")
        if prometheus is not None:
            watching = asyncio.create_task(_watch_alerts(prometheus, say), name="alerts")
        waiters = [serving, publishing] if traffic.bounded else [serving]
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if publishing in done and not serving.done():
            await asyncio.sleep(3)  # let the consumer catch up with the last events
            service.request_stop()
        code = await serving
        for task in (publishing, figures, watching):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (publishing, figures, watching) if t is not None), return_exceptions=True)
        _print_figures(service, say, final=True)
        return code
    finally:
        if prometheus is not None:
            await asyncio.to_thread(prometheus.close)
            shutil.rmtree(prometheus.workdir, ignore_errors=True)
        endpoint.close()
        if azurite is not None:
            azurite.close()
        say("demo: stopped")


def _rules_file(args: argparse.Namespace) -> Path:
    from acs_sms_devtools.prometheus import repository_rules

    return args.prometheus_rules or repository_rules()


def _prometheus_problem(args: argparse.Namespace) -> str | None:
    """Why `--prometheus` cannot work here (checked before anything starts), or None."""
    from acs_sms_devtools.prometheus import PrometheusNotFound, find_prometheus

    try:
        find_prometheus()
    except PrometheusNotFound as exc:
        return str(exc)
    rules = _rules_file(args)
    if not rules.is_file():
        return (f"no alert rules at {rules} (they live in deploy/prometheus/ of the repository: run the demo "
                "from a checkout, or give --prometheus-rules FILE)")
    if args.prometheus_port:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", args.prometheus_port))
            except OSError:
                return (f"port {args.prometheus_port} is in use (another Prometheus?): give --prometheus-port "
                        "with a free port, or 0 for any")
    return None


async def _start_prometheus(args: argparse.Namespace, consumer_port: int, connection_string: str, say: Any) -> Any:
    """Prometheus scraping the demo's consumer, with the shortened rules; None (said why) if it fails."""
    from acs_sms_devtools.prometheus import DEFAULT_SPEEDUP, PrometheusError, PrometheusServer, write_shortened_rules

    workdir = Path(tempfile.mkdtemp(prefix="acs-sms-demo-prometheus-"))
    try:
        rules = write_shortened_rules(_rules_file(args), workdir / "rules.yaml", DEFAULT_SPEEDUP, min_range=2)
        server = PrometheusServer(workdir, [f"127.0.0.1:{consumer_port}"], [rules], port=args.prometheus_port)
        await asyncio.to_thread(server.start)
    except (PrometheusError, ValueError) as exc:
        say(f"demo: Prometheus did not start: {exc}")
        shutil.rmtree(workdir, ignore_errors=True)
        return None
    say(f"demo: Prometheus {server.url}   alerts {server.url}/alerts   (rules {_rules_file(args)}, time constants "
        f"divided by {DEFAULT_SPEEDUP:g}: `for: 15m` over 15 minutes fires after 15 s over 15 s)")
    say("demo: see an alert fire: acs-sms-consumer simulate --connection-string "
        f"'{connection_string}' --drill-country US --drill-seconds 60")
    return server


async def _watch_alerts(prometheus: Any, say: Any, every: float = 1.0) -> None:
    """Print each alert when it starts firing and when it stops."""
    firing: set[tuple[tuple[str, str], ...]] = set()
    while True:
        await asyncio.sleep(every)
        try:
            alerts = await asyncio.to_thread(prometheus.alerts)
        except Exception:  # noqa: BLE001 - a missed poll is retried on the next one
            continue
        now = {tuple(sorted((k, v) for k, v in a["labels"].items() if k not in ("severity",)))
               for a in alerts if a["state"] == "firing"}
        for labels in sorted(now - firing):
            say(f"demo: alert firing: {_alert_text(labels)}")
        for labels in sorted(firing - now):
            say(f"demo: alert resolved: {_alert_text(labels)}")
        firing = now


def _alert_text(labels: tuple[tuple[str, str], ...]) -> str:
    values = dict(labels)
    name = values.pop("alertname", "?")
    return name + (" {" + ", ".join(f"{k}={v}" for k, v in values.items()) + "}" if values else "")


def _start_azurite(say: Any) -> Any:
    from acs_sms_devtools.azurite import Azurite, AzuriteError, find_azurite_blob

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

