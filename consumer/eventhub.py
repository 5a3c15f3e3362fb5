"""The Event Hubs side: `EventHubConsumerClient` (aio) wiring — batches in, metrics and checkpoints out.

One client reads all partitions of one hub and consumer group; `BlobCheckpointStore` balances
partition ownership across replicas and keeps checkpoints in the SDK's own blob layout (so KEDA and
the SDK's other consumers read them). For each received batch:

1. every event body goes through `Pipeline.process` (the same code as `replay`), one body at a time
   (`PipelineWorker`): small ones inline, yielding to other tasks every few milliseconds, large ones
   (`pipeline.offload_min_bytes`) and those estimated to cost more than a few milliseconds
   (`consumer.worker.inline_cost`) on a worker thread, so /metrics, health probes and the SDK's
   ownership renewals are never starved by parsing;
2. bodies that yield no records go to the dead-letter writer; a checkpoint never passes an event
   whose dead letter is neither written nor dropped (`_dead_letter_limit`), and a partition's final
   checkpoint waits (bounded) for its dead letters first;
3. only then is a checkpoint considered (`CheckpointPolicy`), and it names at most the last event
   whose counts a completed `/metrics` scrape has read (`scrape_started`/`scrape_completed`, called
   by the HTTP handler), so a checkpoint never skips counts Prometheus has not seen (the protocol:
   docs/reliability.md). The write runs as a task beside the receiving (at
   most one per partition in flight), so a slow or unavailable storage account delays checkpoints,
   never the counting;
4. lag comes from `last_enqueued_event_properties` (`track_last_enqueued_event_properties=True`) and
   from the probe's reads of each owned partition; what it and a stall mean: consumer/progress.py.

One event never stops its partition: whatever raises while it is processed (a bug, an input nobody
thought of) is caught at that event, counted as decode error `internal`, logged with the partition,
sequence number and exception type (never the message, which may quote the body), dead-lettered, and
passed like any other event. A partition that still makes no progress while events wait on it (a
batch that never finishes, a handler that fails and is restarted by the SDK again and again) shows in
`acs_consumer_partition_stalled_seconds` and, past `readiness_partition_stalled_max_seconds`, in
`/readyz` (see `Receiver.stalled`).

A batch in hand is finished even when the SDK cancels the partition's task (shutdown, ownership
lost): it runs as a shielded task that `on_partition_close` waits for before the final checkpoint.
`drain()` begins the shutdown's lame duck: batches that arrive are no longer counted, and it returns
when a completed scrape has read every count (or at its deadline), so the final checkpoints can name
every counted event. `close()` returns only when every partition's close (final checkpoint, then the SDK's release of
ownership) has run, which the SDK's own `close()` does not guarantee (see `Receiver.close`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.eventhub import CloseReason, LoadBalancingStrategy
from azure.eventhub.aio import EventHubConsumerClient, PartitionContext

from consumer.checkpoints import (
    CheckpointPolicy,
    PartitionProgress,
    Position,
    Scrapes,
    ScrapeSnapshot,
    awaiting_scrape,
)
from consumer.config import ConfigError, Settings
from consumer.connection_strings import connection_string_parts
from consumer.deadletter import DeadLetter, DeadLetterWriter
from consumer.decode import DecodeError
from consumer.errors import EVENTHUB_KINDS, STORAGE_KINDS, STORAGE_TIMEOUT, classify, log_fields, reason as error_reason
from consumer.logs import event_fields
from consumer.metrics import Metrics
from consumer.network import eventhub_options
from consumer.ownership import OwnershipStore
from consumer.pipeline import EventContext, Pipeline
from consumer.progress import Stall, StallTracker
from consumer.readiness import EventHubsReadiness
from consumer.worker import PipelineWorker, failure_detail

log = logging.getLogger("consumer.eventhub")

#: Longest stretch of parsing before the receiver yields to the event loop.
YIELD_EVERY_SECONDS = 0.005
#: The message annotation the service puts the enqueued time in (milliseconds since the epoch).
ENQUEUED_TIME_ANNOTATION = b"x-opt-enqueued-time"
#: How long one checkpoint write may take before it counts as failed.
CHECKPOINT_TIMEOUT_SECONDS = 10.0


#: The checkpoint limit that lets nothing be named (a dead letter of the first event is pending).
NOTHING = Position(-1, None, 0)


def body_bytes(event: Any) -> bytes:
    """The event body as bytes, whatever AMQP body type it came in."""
    body = event.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    try:
        return b"".join(bytes(part) for part in body)
    except TypeError:
        return str(body).encode("utf-8")


def enqueued_seconds(event: Any) -> float | None:
    """The event's enqueued time in seconds since the epoch: `event.enqueued_time` without the
    datetime it builds at every access (the annotation holds milliseconds)."""
    milliseconds = event.raw_amqp_message.annotations.get(ENQUEUED_TIME_ANNOTATION)
    return float(milliseconds) / 1000 if milliseconds else None


def eventhub_name(settings: Settings) -> str:
    hub = settings.eventhub
    if hub.name:
        return hub.name
    assert hub.connection_string is not None
    return connection_string_parts(hub.connection_string.get_secret_value())["entitypath"]


def namespace_of(settings: Settings) -> str:
    """The fully qualified namespace as the SDK names it in checkpoint blobs (`host[:port]`)."""
    hub = settings.eventhub
    if hub.fully_qualified_namespace:
        return hub.fully_qualified_namespace
    assert hub.connection_string is not None
    endpoint = connection_string_parts(hub.connection_string.get_secret_value())["endpoint"]
    return endpoint.split("://", 1)[-1].strip("/")


@dataclass(slots=True)
class OwnedPartition:
    """What the receiver holds for one partition it owns; all of it goes at the partition's close."""

    progress: PartitionProgress
    stall: Stall
    batch: asyncio.Task[None] | None = None  # the batch in hand
    checkpoint: asyncio.Task[None] | None = None  # the checkpoint write in flight

    @property
    def busy(self) -> bool:
        """Whether a batch is in hand."""
        return self.batch is not None and not self.batch.done()

    def stalled_seconds(self, now: float) -> float:
        return self.stall.seconds(self.progress.last_sequence_number, self.busy, now)

    def lag(self) -> int | None:
        return self.stall.lag(self.progress.last_sequence_number)


class Receiver:
    """Runs `receive_batch` on all partitions and feeds the pipeline."""

    def __init__(self, settings: Settings, pipeline: Pipeline, metrics: Metrics, checkpoint_store: Any,
                 deadletters: DeadLetterWriter | None, credential: Any = None,
                 clock: Callable[[], float] = time.time, on_store_answer: Callable[[], None] | None = None,
                 readiness: EventHubsReadiness | None = None, ticks: Callable[[], float] = time.monotonic) -> None:
        """`clock`: the wall clock the pipeline dates records by; `ticks`: the monotonic clock that the
        checkpoint rules and stall tracking measure intervals and silences on (a step of the wall clock
        is neither)."""
        self.settings = settings
        self.pipeline = pipeline
        self.worker = PipelineWorker(pipeline, settings.pipeline.offload_min_bytes)
        self.metrics = metrics
        self.deadletters = deadletters
        self.clock = clock
        self.ticks = ticks
        self.on_store_answer = on_store_answer  # told of every successful checkpoint write (readiness)
        self.readiness = readiness or EventHubsReadiness(settings.readiness_eventhub_max_age_seconds)
        checkpoint = settings.checkpoint
        self.scrapes = Scrapes(ticks())
        scrapes = self.scrapes if checkpoint.scrape_aligned else None
        self.policy = CheckpointPolicy(checkpoint.interval_seconds, checkpoint.every_events, scrapes,
                                       checkpoint.no_scrape_seconds)
        self.draining = False  # the shutdown's lame duck: batches are no longer counted
        self._scraped = asyncio.Event()  # set at every completed scrape (the lame duck waits for one)
        self.owned: dict[str, OwnedPartition] = {}
        self._closing: set[asyncio.Task[Any]] = set()  # the SDK's tasks running a partition's close
        # A partition claimed again soon after an error closed it keeps its stall (else it starts afresh).
        self.stalls = StallTracker(settings.eventhub.partition_ownership_expiration_interval_seconds * 2, ticks)
        self.running = False
        self.events_processed = 0
        self.records_processed = 0
        # The SDK sees the store through `OwnershipStore`: its releases never race its renewals.
        self.ownership = OwnershipStore(checkpoint_store) if checkpoint_store is not None else None
        self.client = self._client(self.ownership, credential)

    @property
    def partitions(self) -> dict[str, PartitionProgress]:
        """What each owned partition has processed."""
        return {partition: owned.progress for partition, owned in self.owned.items()}

    def lags(self) -> dict[str, int]:
        """Each owned partition's lag (`acs_consumer_partition_lag_events`), where the hub's last enqueued
        event is known."""
        return {partition: lag for partition, owned in self.owned.items() if (lag := owned.lag()) is not None}

    def _client(self, checkpoint_store: Any, credential: Any) -> EventHubConsumerClient:
        hub = self.settings.eventhub
        options: dict[str, Any] = {
            "consumer_group": hub.consumer_group,
            "eventhub_name": eventhub_name(self.settings),
            "checkpoint_store": checkpoint_store,
            "load_balancing_strategy": LoadBalancingStrategy(hub.load_balancing_strategy),
            "load_balancing_interval": hub.load_balancing_interval_seconds,
            "partition_ownership_expiration_interval": hub.partition_ownership_expiration_interval_seconds,
            **eventhub_options(self.settings),
        }
        if hub.connection_string is not None:
            return EventHubConsumerClient.from_connection_string(hub.connection_string.get_secret_value(), **options)
        if hub.fully_qualified_namespace is None:  # EventHubSettings requires it without a connection string
            raise ConfigError("eventhub: set connection_string or fully_qualified_namespace")
        return EventHubConsumerClient(hub.fully_qualified_namespace, credential=credential, **options)

    async def run(self) -> None:
        """Receive until `close()`; returns when the client stops."""
        hub = self.settings.eventhub
        self.running = True
        try:
            await self.client.receive_batch(
                self._on_batch,
                max_batch_size=hub.max_batch_size,
                max_wait_time=hub.max_wait_time_seconds,
                prefetch=hub.prefetch,
                track_last_enqueued_event_properties=True,
                starting_position=hub.starting_position(),
                on_error=self._on_error,
                on_partition_initialize=self._on_initialize,
                on_partition_close=self._on_close,
            )
        finally:
            self.running = False

    async def close(self) -> None:
        """Stop receiving, finish batches in hand, write final checkpoints, release ownership.

        The SDK's `close()` waits for its partition tasks, but its load-balancing loop, when it runs
        a round meanwhile, drops from that wait every partition whose link is already closed, so
        `close()` can return while `on_partition_close` is still writing the final checkpoint, and
        the SDK's release of ownership comes after it. Left there, both would be cancelled when the
        process ends (no final checkpoint, ownership held until it expires, nothing logged). So the
        tasks running those closes are awaited too; the shutdown timeout bounds the wait."""
        if self.ownership is not None:
            self.ownership.stop_claiming()  # renew what is held until released; take nothing new
        await self.client.close()
        while self._closing:
            await asyncio.wait(list(self._closing))

    async def drain(self, wait: float) -> bool:
        """The lame duck: count no more events, finish the batches in hand, then wait up to `wait`
        seconds (from the call) until a completed `/metrics` scrape has read every count that no
        checkpoint names yet. True when one has (the final checkpoints may then name every counted
        event), False when the wait ran out (they stop at the last scrape: the next owner replays the
        rest). The receiving goes on meanwhile, so ownership is still renewed (no new partition is
        claimed: its events would not be counted)."""
        self.draining = True
        if self.ownership is not None:
            self.ownership.stop_claiming()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        inflight = [owned.batch for owned in self.owned.values() if owned.batch is not None and owned.busy]
        if inflight:
            await asyncio.wait(inflight, timeout=max(0.0, deadline - loop.time()))
        while any(awaiting_scrape(owned.progress) for owned in self.owned.values()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._scraped.clear()
            try:
                await asyncio.wait_for(self._scraped.wait(), remaining)
            except TimeoutError:
                pass
        return True

    # --- /metrics scrapes (called by the HTTP handler) -------------------------------------------

    def scrape_started(self) -> ScrapeSnapshot:
        """A `/metrics` render starts: it will show every event processed until now."""
        return self.scrapes.started([owned.progress for owned in self.owned.values()])

    def scrape_completed(self, snapshot: ScrapeSnapshot) -> None:
        """That render's response was written completely: checkpoints may now name what it showed."""
        silence = self.scrapes.completed(snapshot, self.ticks())
        if silence is not None:
            log.info("a /metrics scrape completed after %.0f s without one: checkpoints wait for scrapes again",
                     silence, extra={"silent_seconds": round(silence, 1)})
        self._scraped.set()

    # --- SDK callbacks ------------------------------------------------------------------------

    async def _on_initialize(self, context: PartitionContext) -> None:
        partition = context.partition_id
        owned = self._claim(partition)
        self.metrics.consumer.partition_stalled.labels(partition).set_function(
            lambda: owned.stalled_seconds(self.ticks()))
        self.metrics.consumer.owned_partitions.set(len(self.owned))
        log.info("partition claimed", extra=event_fields(partition, None))

    def _claim(self, partition: str) -> OwnedPartition:
        owned = self.owned[partition] = OwnedPartition(PartitionProgress(partition, last_attempt=self.ticks()),
                                                       self.stalls.claimed(partition))
        return owned

    async def _on_close(self, context: PartitionContext, reason: CloseReason) -> None:
        partition = context.partition_id
        closing = asyncio.current_task()  # the SDK's (shielded) task that releases ownership after this
        if closing is not None:
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        owned = self.owned.get(partition)
        if owned is not None:
            await self._finish_writes(owned)
        owned = self.owned.pop(partition, None)
        if owned is not None:
            await self._final_checkpoint(context, owned.progress)
        self.metrics.consumer.owned_partitions.set(len(self.owned))
        self.stalls.released(partition, owned.stall if owned is not None else None)
        self._remove_series(partition, owned)
        progress = owned.progress if owned is not None else None
        log.info("partition released", extra=event_fields(
            partition, progress.last_sequence_number if progress else None, reason=reason.name.lower(),
            checkpoint=progress.saved_sequence_number if progress else None))

    @staticmethod
    async def _finish_writes(owned: OwnedPartition) -> None:
        """The batch in hand, then the checkpoint in flight (read once the batch is done: its end may
        start one): the final checkpoint comes after both."""
        if owned.batch is not None and not owned.batch.done():
            await asyncio.wait([owned.batch])
        if owned.checkpoint is not None and not owned.checkpoint.done():
            await asyncio.wait([owned.checkpoint])

    async def _final_checkpoint(self, context: PartitionContext, progress: PartitionProgress) -> None:
        if self.deadletters is not None and self.deadletters.pending(progress.partition):
            # the final checkpoint passes dead letters only once they are written (or dropped)
            await self.deadletters.settled(progress.partition, self.settings.shutdown_timeout_seconds / 4)
        await self._checkpoint(context, progress, final=True)

    def _remove_series(self, partition: str, owned: OwnedPartition | None) -> None:
        """A released partition's lag and stall series go with it."""
        if owned is not None and owned.stall.last_enqueued is not None:
            self.metrics.consumer.partition_lag.remove(partition)
        try:
            self.metrics.consumer.partition_stalled.remove(partition)
        except KeyError:  # a close without an initialize before it
            pass

    async def _on_error(self, context: PartitionContext | None, error: Exception) -> None:
        kind = classify(error)
        self.metrics.consumer.errors.labels(kind).inc()
        partition = context.partition_id if context is not None else ""
        if context is not None:  # the SDK closes the partition after this (and may claim it again)
            owned = self.owned.get(partition)
            self.stalls.failed(partition, owned.stall if owned is not None else None)
            if kind not in STORAGE_KINDS:  # storage has a readiness check of its own
                self.readiness.partition_failed(partition, kind, error_reason(error))
        elif kind in EVENTHUB_KINDS:  # the load-balancing round: reading the partition ids failed
            self.readiness.hub_failed(kind, error_reason(error))
        log.warning("event hubs client error: %s: %s", kind, error_reason(error),
                    extra=event_fields(partition, None, **log_fields(error, kind, log.isEnabledFor(logging.DEBUG))))

    async def probe(self, interval: float) -> None:
        """Read the partition ids every `interval` seconds: whether the hub answers (readiness), also
        while this replica owns no partition or its partitions are idle; then, once it has, each owned
        partition's last enqueued event (`_read_last_enqueued`; a failure there leaves readiness as the
        ids made it). Failures are logged when the kind changes (each one is also reported to
        `on_error` by the SDK's own attempts)."""
        last_kind: str | None = None
        while True:
            try:
                await self.client.get_partition_ids()
            except Exception as error:  # unreachable, unauthorized, not found: readiness says which
                kind = classify(error)
                self.readiness.hub_failed(kind, error_reason(error))
                if kind != last_kind:
                    log.warning("event hubs probe failed: %s: %s", kind, error_reason(error),
                                extra=log_fields(error, kind, log.isEnabledFor(logging.DEBUG)))
                last_kind = kind
            else:
                self.readiness.hub_answered()
                if last_kind is not None:
                    log.info("event hubs probe answered again", extra={"after": last_kind})
                last_kind = None
                try:  # the hub answered: one partition's read failing says nothing of the hub
                    await self._read_last_enqueued()
                except Exception as error:  # its lag is read again at the next probe (and from batches)
                    log.debug("event hubs probe could not read a partition's last enqueued event: %s: %s",
                              classify(error), error_reason(error))
            await asyncio.sleep(interval)

    async def _read_last_enqueued(self) -> None:
        """The hub's last enqueued sequence number of each owned partition that has processed an event.
        The batches carry it too, but only while the SDK hands batches over: a partition whose link or
        receive task gets stuck would otherwise look idle, never stalled (`stalled`, the `partitions`
        readiness check). A partition that has processed nothing yet is left out: where its receiver
        started (a checkpoint, `initial_position`) is not known here, so older events would look waiting."""
        for partition, owned in list(self.owned.items()):
            if owned.progress.last_sequence_number is None:
                continue
            properties = await self.client.get_partition_properties(partition)
            last = properties.get("last_enqueued_sequence_number")
            if isinstance(last, int) and self.owned.get(partition) is owned:
                self._enqueued(owned, last)

    async def _on_batch(self, context: PartitionContext, events: list[Any]) -> None:
        if self.draining:  # the lame duck: these events stay after the final checkpoint, for the next owner
            return
        partition = context.partition_id
        owned = self.owned.get(partition)
        if owned is None:  # a batch after close, or before initialize: the SDK guarantees neither
            owned = self._claim(partition)
        progress = owned.progress
        if events:
            self.readiness.received(partition)
            owned.batch = asyncio.ensure_future(self._process(owned, events))
            await asyncio.shield(owned.batch)
        properties = context.last_enqueued_event_properties
        last = properties.get("sequence_number") if properties else None
        if last is not None:
            self._enqueued(owned, last)
        if not owned.stall.waiting(progress.last_sequence_number, owned.busy):
            owned.stall.advanced_at = self.ticks()
        writing = owned.checkpoint
        if (writing is None or writing.done()) and self.policy.due(progress, self.ticks()):
            owned.checkpoint = asyncio.ensure_future(self._checkpoint(context, progress))

    # --- work ------------------------------------------------------------------------------------

    async def _process(self, owned: OwnedPartition, events: list[Any]) -> None:
        started = time.perf_counter()
        slice_started = started
        progress, stall = owned.progress, owned.stall
        partition = progress.partition
        worker = self.worker
        consumer_metrics = self.metrics.consumer
        records = 0
        last_event_timestamp = consumer_metrics.last_event_timestamp.labels(partition)
        last_enqueued_ts: float | None = None
        try:
            for event in events:
                sequence_number = event.sequence_number
                try:
                    enqueued_ts = enqueued_seconds(event)
                    body = body_bytes(event)
                    context = EventContext(partition, sequence_number, str(event.offset), enqueued_ts)
                    if worker.inline(body):
                        result = worker.process_now(body, self.clock(), context)
                    else:
                        result = await worker.process(body, self.clock(), context)
                    records += result.records
                    if result.decode_error is not None:
                        self._rejected(body, context, result.decode_error.value, result.detail, progress)
                    elif result.invalid:
                        log.warning("invalid records: %d of %d", result.invalid, result.records,
                                    extra=event_fields(partition, sequence_number, reasons=result.invalid_reasons))
                except Exception as error:  # the shell's part of this event failed: the event fails, not the partition
                    await self._failed(event, progress, error)
                else:
                    if enqueued_ts is not None:
                        last_enqueued_ts = enqueued_ts
                progress.processed(event, sequence_number)
                now = time.perf_counter()
                if now - slice_started >= YIELD_EVERY_SECONDS:
                    stall.advanced_at = self.ticks()
                    if last_enqueued_ts is not None:  # a scrape while the batch is in hand sees where it is
                        last_event_timestamp.set(last_enqueued_ts)
                    await asyncio.sleep(0)
                    slice_started = time.perf_counter()
        finally:
            stall.advanced_at = self.ticks()
        if last_enqueued_ts is not None:
            last_event_timestamp.set(last_enqueued_ts)
        self.events_processed += len(events)
        self.records_processed += records
        consumer_metrics.batch_duration.observe(time.perf_counter() - started)

    def _rejected(self, body: bytes, context: EventContext, reason: str, detail: str,
                  progress: PartitionProgress) -> None:
        """Log and dead-letter a body that yielded no records; called before `progress` has recorded
        its event, so `progress.position()` is where a checkpoint may stop while the letter is pending."""
        fields = event_fields(context.partition, context.sequence_number, offset=context.offset, reason=reason,
                              size=len(body))
        if reason == DecodeError.INTERNAL:
            log.error("event processing failed: %s", detail, extra=fields)
        else:
            log.warning("body rejected: %s: %s", reason, detail, extra=fields)
        if self.deadletters is not None:
            self.deadletters.submit(DeadLetter(body, context.partition, context.sequence_number, context.offset,
                                               context.enqueued_time, reason, detail),
                                    hold=(progress, progress.position()))

    async def _failed(self, event: Any, progress: PartitionProgress, error: Exception) -> None:
        """An event whose handling failed outside the pipeline (reading the body or its position, the
        logging of its result): counted and dead-lettered as `internal` with whatever can be read."""
        await self.worker.call(self.metrics.domain.decode_errors.inc, (DecodeError.INTERNAL.value,))
        detail = failure_detail(error)
        partition = progress.partition
        try:
            try:
                body = body_bytes(event)
            except Exception:  # the body itself is what cannot be read
                body = b""
            offset = getattr(event, "offset", None)
            context = EventContext(partition, event.sequence_number, None if offset is None else str(offset), None)
            self._rejected(body, context, DecodeError.INTERNAL.value, detail, progress)
        except Exception as again:  # not even that: the line below is all that is left of the event
            log.error("event processing failed: %s; dead letter not submitted: %s", detail, failure_detail(again),
                      extra=event_fields(partition, getattr(event, "sequence_number", None), reason="internal"))

    # --- stall and lag -------------------------------------------------------------------------

    def stalled(self, now: float | None = None) -> dict[str, float]:
        """Seconds each owned partition has gone without progress while events wait on it (0 when it
        keeps up or nothing waits; see consumer/progress.py). A partition with nothing waiting is
        refreshed at every (empty) batch the SDK hands over, at least every `max_wait_time`."""
        now = self.ticks() if now is None else now
        return {partition: owned.stalled_seconds(now) for partition, owned in list(self.owned.items())}

    def _enqueued(self, owned: OwnedPartition, last: int) -> None:
        """The hub's last enqueued sequence number of an owned partition, read from a batch or the probe."""
        owned.stall.enqueued(last)
        lag = owned.lag()
        if lag is not None:
            self.metrics.consumer.partition_lag.labels(owned.progress.partition).set(lag)

    async def _checkpoint(self, context: PartitionContext, progress: PartitionProgress, final: bool = False) -> None:
        target = self.policy.due(progress, self.ticks(), final=final, limit=self._dead_letter_limit(progress))
        if target is None:
            return
        sequence_number = target.sequence_number
        try:
            await asyncio.wait_for(context.update_checkpoint(target.position.event), CHECKPOINT_TIMEOUT_SECONDS)
        except Exception as exc:  # storage unavailable, throttled, timed out: retried later, never fatal
            # The rate limit runs from the end of the attempt, so a write that timed out is not retried at once.
            self.policy.attempted(progress, self.ticks(), ok=False, target=target)
            self.metrics.consumer.checkpoints.labels(progress.partition, "error").inc()
            kind = STORAGE_TIMEOUT if isinstance(exc, TimeoutError) else classify(exc)
            self.metrics.consumer.errors.labels(kind).inc()
            log.warning("checkpoint failed: %s: %s", kind, error_reason(exc),
                        extra=event_fields(progress.partition, sequence_number, final=final,
                                           failures_in_a_row=progress.failures_in_a_row,
                                           **log_fields(exc, kind, log.isEnabledFor(logging.DEBUG))))
            return
        self.policy.attempted(progress, self.ticks(), ok=True, target=target)
        self.metrics.consumer.checkpoints.labels(progress.partition, "ok").inc()
        if target.unscraped:
            self._unscraped()
        if self.on_store_answer is not None:
            self.on_store_answer()
        log.debug("checkpoint written", extra=event_fields(progress.partition, sequence_number, final=final,
                                                           unscraped=target.unscraped))

    def _dead_letter_limit(self, progress: PartitionProgress) -> Position | None:
        """The last event a checkpoint may name while dead letters of this partition are neither written
        nor dropped: the one before the oldest of them (`NOTHING` when that is the first event of this
        ownership); None when there is no such letter. The letter's event is then replayed after a
        crash, and its letter submitted again."""
        if self.deadletters is None:
            return None
        for pending in self.deadletters.pending(progress.partition):  # oldest first
            owner, before = pending.hold if isinstance(pending.hold, tuple) else (None, None)
            if owner is progress and pending.letter.sequence_number is not None:
                return NOTHING if before is None else before
            # else an earlier ownership's letter: its event has been replayed and submitted again since
        return None

    def _unscraped(self) -> None:
        self.metrics.consumer.unscraped_checkpoints.inc()
        if self.scrapes.silence_began():
            silent = self.scrapes.silent_for(self.ticks())
            log.warning("no /metrics scrape for %.0f s: checkpoints go on past the last scrape (counts made "
                        "since then reach Prometheus only if it scrapes this replica before it stops)", silent,
                        extra={"silent_seconds": round(silent, 1),
                               "no_scrape_seconds": self.policy.no_scrape_seconds})
