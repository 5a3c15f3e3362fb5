"""The shell: paces a run to the wall clock and publishes its bodies as Event Hubs events with the real
`azure.eventhub.aio.EventHubProducerClient` (`publish`), reporting what the hub accepted."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import orjson

from consumer.labels import DELIVERY_REPORT, SENT

from .vocabulary import FAILED
from .options import TrafficOptions
from .oracle import Stats
from .generator import Body, TrafficGenerator

if TYPE_CHECKING:  # the SDK is only needed to publish; importing it costs ~0.3 s
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.eventhub.aio import EventHubProducerClient

__all__ = ["split_records", "EVENT_OVERHEAD_BYTES", "PublishReport", "publish"]

def split_records(records: Sequence[dict[str, Any]], max_bytes: int) -> list[bytes]:
    """Encode `records` as one body, or as several `{"records": [...]}` bodies each at most
    `max_bytes` long when one would be too large for an event. Raises ValueError if a single
    record is larger than `max_bytes`."""
    body = orjson.dumps({"records": list(records)})
    if len(body) <= max_bytes:
        return [body]
    if len(records) == 1:
        raise ValueError(f"one record takes {len(body)} bytes, more than the {max_bytes} allowed")
    half = len(records) // 2
    return split_records(records[:half], max_bytes) + split_records(records[half:], max_bytes)


#: Room left in each event for the AMQP framing the SDK adds around a body inside a batch.
EVENT_OVERHEAD_BYTES: Final = 1024


@dataclass
class PublishReport:
    """What a `publish` run did. `stats` counts only records in batches the hub accepted."""

    seed: int
    events: int = 0
    batches: int = 0
    bodies: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    error: str | None = None
    stats: Stats = field(default_factory=Stats)

    def progress_line(self) -> str:
        """A short line printed while running."""
        ops = self.stats.by_operation()
        rate = self.stats.records / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"simulate: {self.elapsed:.0f}s {self.stats.records} records ({rate:.0f}/s) in {self.events} events; "
            f"{ops[(SENT, FAILED)]} failed sends, {ops[(DELIVERY_REPORT, FAILED)]} failed delivery reports"
        )

    def summary_line(self) -> str:
        """The final line."""
        outcome = "failed" if self.error else "interrupted" if self.interrupted else "done"
        return (
            f"simulate: {outcome} after {self.elapsed:.1f}s (seed {self.seed}): {self.events} events in "
            f"{self.batches} batches; {self.stats.summary()}"
        )


def _producer(connection_string: str | None, eventhub_name: str | None, fully_qualified_namespace: str | None,
              credential: AsyncTokenCredential | None) -> EventHubProducerClient:
    from azure.eventhub.aio import EventHubProducerClient

    if connection_string:
        return EventHubProducerClient.from_connection_string(connection_string, eventhub_name=eventhub_name)
    if not fully_qualified_namespace or not eventhub_name or credential is None:
        raise ValueError("need a connection string, or a fully qualified namespace, an Event Hub name and a credential")
    return EventHubProducerClient(fully_qualified_namespace, eventhub_name, credential)


async def publish(
    options: TrafficOptions,
    *,
    producer: EventHubProducerClient | None = None,
    connection_string: str | None = None,
    eventhub_name: str | None = None,
    fully_qualified_namespace: str | None = None,
    credential: AsyncTokenCredential | None = None,
    start: datetime | None = None,
    realtime: bool = True,
    progress: Callable[[str], None] | None = None,
    progress_every: float = 5.0,
    max_event_bytes: int | None = None,
) -> PublishReport:
    """Publish the traffic of `options` to an Event Hub and return what was sent.

    Records are stamped from `start` (default: now). With `realtime`, each body is sent when the wall
    clock reaches its simulated time, so the hub sees a live-looking stream at `options.rate`; without
    it, everything goes as fast as the hub takes it (tests, bulk loads). Bodies ready at the same
    moment share a batch made by `create_batch`, so the hub's maximum message size is respected; a
    body too large for one event (or for `max_event_bytes`) is split into several valid bodies.
    Once the last activity has been sent (`options.duration` or `options.records` reached), the
    still-pending delivery reports and usage records are sent at once (stamped with their own, slightly future, times) so that a bounded run ends promptly and
    every accepted send has its report.

    Cancellation (Ctrl-C in `main`) stops at the next await: the batch in hand is dropped (it is not
    counted), the producer closed, the final line printed, and CancelledError propagates.
    Pass `producer` to reuse a client (it is left open), or a connection string / namespace and
    credential to have one made and closed here.
    """
    options = dataclasses.replace(options, start=start or datetime.now(UTC))
    owned = producer is None
    client = producer if producer is not None else _producer(
        connection_string, eventhub_name, fully_qualified_namespace, credential)
    report = PublishReport(seed=options.seed)
    loop = asyncio.get_running_loop()
    began = loop.time()
    next_progress = began + progress_every

    def tick() -> None:
        nonlocal next_progress
        now = loop.time()
        report.elapsed = now - began
        if progress is not None and now >= next_progress:
            progress(report.progress_line())
            next_progress = now + progress_every

    try:
        await _send_all(options, client, report, realtime, max_event_bytes, began, tick)
    except asyncio.CancelledError:
        report.interrupted = True
        raise
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.elapsed = loop.time() - began
        if owned:
            try:
                await asyncio.shield(client.close())
            except Exception:  # noqa: BLE001 - closing is best effort; the report matters more
                pass
        if progress is not None:
            progress(report.summary_line())
    return report


async def _send_all(options: TrafficOptions, producer: EventHubProducerClient, report: PublishReport,
                    realtime: bool, max_event_bytes: int | None, began: float, tick: Callable[[], None]) -> None:
    from azure.eventhub import EventData

    loop = asyncio.get_running_loop()
    generator = TrafficGenerator(options)
    batch = await producer.create_batch()
    limit = batch.max_size_in_bytes - EVENT_OVERHEAD_BYTES
    if max_event_bytes is not None:
        limit = min(limit, max_event_bytes)
    in_batch: list[Body] = []

    async def flush() -> None:
        nonlocal batch, in_batch
        if len(batch) == 0:
            return
        await producer.send_batch(batch)
        report.batches += 1
        report.events += len(batch)
        for body in in_batch:  # counted only once the hub has them
            for at, record in zip(body.times, body.records):
                report.stats.observe(record, at)
            report.stats.bodies += 1
        batch = await producer.create_batch()
        in_batch = []
        tick()

    for body in generator.bodies():
        if realtime:
            ended = generator.activities_ended_at
            due = body.at if ended is None else min(body.at, ended)
            wait = began + due - loop.time()
            if wait > 0:
                await flush()  # what is ready goes before we sleep
                await asyncio.sleep(wait)
        for payload in split_records(body.records, limit):
            event = EventData(payload)
            try:
                batch.add(event)
            except ValueError:  # the batch is full: send it, start another
                await flush()
                batch.add(event)
        in_batch.append(body)
        report.bodies += 1
    await flush()
