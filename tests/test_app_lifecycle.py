"""`Service.serve` in this process, against the local Event Hubs endpoint and Azurite: what start-up
and shutdown do to the process beyond receiving, and what a receive loop that stops or hands over
nothing does to readiness (the subprocess tests in tests/e2e cover the rest)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

from consumer.app import Service
from consumer.config import CheckpointSettings, Settings
from acs_sms_devtools.azurite import Azurite
from acs_sms_devtools.eventhubs import EventHubsEndpoint
from consumer.eventhub import Receiver
from tests.in_process import get, readyz, until


def settings_for(eventhubs: EventHubsEndpoint, azurite: Azurite, container: str, **eventhub: object) -> Settings:
    return Settings.model_validate({
        "eventhub": {"connection_string": eventhubs.connection_string, "name": "eventhub",
                     "max_wait_time_seconds": 0.2, "load_balancing_interval_seconds": 1, **eventhub},
        "checkpoint_store": {"connection_string": azurite.connection_string, "container": container},
        "deadletter": {"enabled": False},
        "http": {"host": "127.0.0.1", "port": 0},
        "shutdown_timeout_seconds": 10,
    })


async def serve_until_ready(service: Service) -> asyncio.Task[int]:
    serving = asyncio.create_task(service.serve())
    for _ in range(200):
        if service.http_port is not None and service.health.ready()[0]:
            return serving
        assert not serving.done(), "the service stopped during start-up"
        await asyncio.sleep(0.05)
    raise AssertionError(f"not ready after 10 s: {service.health.ready()[1]}")


async def stop_timed(service: Service, serving: asyncio.Task[int]) -> tuple[int, float]:
    """Request a graceful stop (as SIGTERM does); the exit code and how long the shutdown took."""
    started = time.monotonic()
    service.request_stop()
    code = await asyncio.wait_for(serving, 20)
    return code, time.monotonic() - started


def test_start_up_objects_are_frozen_while_serving_and_released_after(eventhubs, azurite, blob_container):
    """Full collections skip what start-up made (a pause of tens of ms otherwise, at every one); a
    service that stops gives its objects back to the collector, so serving twice leaks nothing."""
    service = Service(settings_for(eventhubs, azurite, blob_container))
    frozen_while_serving: list[int] = []

    async def main() -> int:
        assert gc.get_freeze_count() == 0
        serving = await serve_until_ready(service)
        frozen_while_serving.append(gc.get_freeze_count())
        service.request_stop()
        return await asyncio.wait_for(serving, 20)

    assert asyncio.run(main()) == 0
    assert frozen_while_serving[0] > 10_000  # modules, SDK clients, pydantic models: tens of thousands
    assert gc.get_freeze_count() == 0


def test_a_healthy_shutdown_does_not_wait_for_the_load_balancing_interval(eventhubs, azurite, blob_container, caplog):
    """With storage up, shutdown takes the SDK's partition close (it polls its tasks every second),
    not the rest of the load-balancing loop's sleep (10 s by default), and warns of nothing."""
    service = Service(settings_for(eventhubs, azurite, blob_container, load_balancing_interval_seconds=10))

    async def main() -> tuple[int, float]:
        serving = await serve_until_ready(service)
        # Every partition claimed: the load-balancing loop is in its 10 s sleep between rounds.
        deadline = time.monotonic() + 20
        while sum(r.getMessage() == "partition claimed" for r in caplog.records) < 4:
            assert time.monotonic() < deadline, "the partitions were not claimed"
            await asyncio.sleep(0.05)
        return await stop_timed(service, serving)

    with caplog.at_level(logging.INFO, logger="consumer"):
        code, took = asyncio.run(main())
    print(f"\nshutdown took {took:.2f} s (load-balancing interval 10 s)")
    assert code == 0
    # Measured ~1 s (the SDK polls its partition tasks every second). The bound is 5x that and still
    # below the 10 s interval (12 s with the SDK's jitter) that a shutdown waiting for it would take.
    assert took < 6, f"shutdown took {took:.1f} s"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    released = [r for r in caplog.records if r.getMessage() == "partition released"]
    assert len(released) == 4  # every partition closed (final checkpoint, ownership released) first


def test_without_scrape_alignment_the_shutdown_waits_for_no_scrape(eventhubs, azurite, blob_container, caplog):
    """`checkpoint.scrape_aligned: false`: the final checkpoints name every counted event whatever was
    scraped, so the lame duck does not wait `shutdown_final_scrape_wait_seconds` for a scrape nobody
    needs, nor warns that the final checkpoints stop at the last scrape (they do not)."""
    settings = settings_for(eventhubs, azurite, blob_container, initial_position="earliest").model_copy(
        update={"shutdown_final_scrape_wait_seconds": 30.0,
                "checkpoint": CheckpointSettings(scrape_aligned=False)})
    service = Service(settings)

    async def main() -> tuple[int, float]:
        serving = await serve_until_ready(service)
        await until(lambda: sum(r.getMessage() == "partition claimed" for r in caplog.records) == 4, 20, "claims")
        eventhubs.publish("0", [b'{"records": []}'] * 3)  # counted, never scraped
        await until(lambda: service.metrics.domain.events.get("0") == 3, 20, "the events counted")
        return await stop_timed(service, serving)

    with caplog.at_level(logging.INFO, logger="consumer"):
        code, took = asyncio.run(main())
    print(f"\nshutdown without scrape alignment took {took:.2f} s (final scrape wait 30 s)")
    assert code == 0
    assert took < 15, took  # measured ~1 s; waiting for a scrape would take the 30 s
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if m.startswith("no /metrics scrape")], messages
    assert "final counts scraped" not in messages  # nothing was scraped: nothing is said to be
    released = {r.partition: r.checkpoint for r in caplog.records if r.getMessage() == "partition released"}
    assert released["0"] == 2  # the final checkpoint names the last counted event, unscraped as it is


def test_readyz_fails_at_once_when_the_receive_loop_stops_and_the_process_exits_1(
        eventhubs, azurite, blob_container, caplog, monkeypatch):
    """The receive loop ending on its own (here the SDK's `receive_batch` raises, its partitions still
    open) makes `/readyz` answer 503 naming the `eventhub` check (`not receiving`) while the process
    still serves, then the service shuts down as after a signal and exits 1."""
    receivers: list[Receiver] = []
    real_run = Receiver.run
    broken = asyncio.Event()
    loops: list[asyncio.Future] = []

    async def run(self: Receiver) -> None:
        receivers.append(self)
        original = self.client.receive_batch

        async def receive_batch(*args, **kwargs):
            loops.append(asyncio.ensure_future(original(*args, **kwargs)))  # ends at the shutdown's close()
            await broken.wait()
            raise RuntimeError("the receive loop broke")

        self.client.receive_batch = receive_batch
        await real_run(self)

    monkeypatch.setattr(Receiver, "run", run)
    settings = settings_for(eventhubs, azurite, blob_container, initial_position="earliest").model_copy(
        update={"shutdown_final_scrape_wait_seconds": 30.0})
    service = Service(settings)

    async def main() -> tuple[int, int, dict]:
        serving = await serve_until_ready(service)
        await until(lambda: sum(r.getMessage() == "partition claimed" for r in caplog.records) == 4, 20, "claims")
        eventhubs.publish("0", [b'{"records": []}'] * 3)
        await until(lambda: receivers[0].events_processed == 3, 20, "the events counted")
        # Counted and not scraped: the shutdown's lame duck waits for a scrape, /readyz can be read.
        broken.set()
        await until(lambda: readyz(service)[0] == 503, 20, "/readyz 503")
        status, report = await asyncio.to_thread(readyz, service)
        await asyncio.to_thread(get, service, "/metrics")  # the scrape the lame duck waits for
        code = await asyncio.wait_for(serving, 30)
        return code, status, report

    with caplog.at_level(logging.INFO, logger="consumer"):
        code, status, report = asyncio.run(main())
    assert status == 503
    assert report["checks"]["eventhub"] == {"ok": False, "detail": "not receiving"}, report
    assert code == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("event hubs receive loop stopped unexpectedly: ") and m.endswith("the receive loop broke")
               for m in messages), messages[-10:]


def test_readyz_names_a_partition_whose_receiver_hands_over_nothing_while_events_wait(
        eventhubs, azurite, blob_container, caplog, monkeypatch):
    """The SDK stops handing over one partition's batches (a stuck link or receive task; here the
    batches of partition 2 are held before the receiver sees them) while the hub answers and the
    other partitions flow. The receiver learns of the waiting events from the hub itself (its probe
    reads each owned partition's last enqueued event), so the `partitions` check names the partition
    once nothing has been processed for longer than `readiness_partition_stalled_max_seconds`."""
    real_on_batch = Receiver._on_batch
    stuck = asyncio.Event()
    release = asyncio.Event()

    async def on_batch(self: Receiver, context, events) -> None:
        if context.partition_id == "2" and stuck.is_set():
            await release.wait()
        await real_on_batch(self, context, events)

    monkeypatch.setattr(Receiver, "_on_batch", on_batch)
    settings = settings_for(eventhubs, azurite, blob_container, initial_position="earliest").model_copy(
        update={"readiness_partition_stalled_max_seconds": 1.0, "shutdown_final_scrape_wait_seconds": 1.0})
    service = Service(settings)

    async def main() -> tuple[int, dict, float]:
        serving = await serve_until_ready(service)
        await until(lambda: sum(r.getMessage() == "partition claimed" for r in caplog.records) == 4, 20, "claims")
        eventhubs.publish("2", [b'{"records": []}'])  # the partition works, then gets stuck
        await until(lambda: service.pipeline.metrics.events.get("2") == 1, 20, "the first event")
        stuck.set()
        eventhubs.publish("2", [b'{"records": []}'] * 3)
        held_at = time.monotonic()
        eventhubs.publish("0", [b'{"records": []}'] * 3)
        # The probe runs every 10 s (EVENTHUB_PROBE_SECONDS): within two rounds.
        await until(lambda: readyz(service)[0] == 503, 30, "/readyz 503")
        named_after = time.monotonic() - held_at
        _, report = await asyncio.to_thread(readyz, service)
        release.set()
        await until(lambda: readyz(service)[0] == 200, 30, "/readyz 200 again")
        service.request_stop()
        return await asyncio.wait_for(serving, 20), report, named_after

    with caplog.at_level(logging.INFO, logger="consumer"):
        code, report, named_after = asyncio.run(main())
    print(f"\nthe held partition named by /readyz {named_after:.1f} s after its events were published")
    assert [name for name, check in report["checks"].items() if not check["ok"]] == ["partitions"], report
    assert report["checks"]["partitions"]["detail"].startswith("no progress while events wait on partition 2 ("), report
    assert code == 0
