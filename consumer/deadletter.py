"""Dead-letter: keep the bodies that yielded no records, so nothing is lost without a trace.

Each rejected body is written as one blob to a container of the checkpoint storage account, named
`<namespace>/<eventhub>/<consumer group>/<partition>/<sequence number>.body` (`blob_name`: a replay of
the same event overwrites rather than duplicates, while installations reading other Event Hubs
namespaces, hubs or consumer groups never share a name, even in one container; the namespace is the
fully qualified host name, lower-cased as the checkpoint store writes it), with the partition,
sequence number, offset, enqueued time,
reason and size as blob metadata. Bodies over `max_body_bytes` are cut to that size when they are
submitted (metadata `truncated=true`, `size` the original size). Writes happen in the background
from a queue bounded in letters (`QUEUE_SIZE`) and in bytes (`max_queued_bytes`), at most
`max_blobs_per_minute`, so processing never waits on storage.

Every letter ends as exactly one of (`acs_consumer_dead_letters_total{outcome}`):
- `written`: the blob is in the container;
- `dropped`: refused at submission (over `max_blobs_per_minute`, queue full, over `max_queued_bytes`)
  or given up after `WRITE_ATTEMPTS` failed writes (or at once when writing it raised anything but a
  storage error); logged with its partition, sequence number and why,
  so the body can still be found in the hub while the hub retains it.
Each failed write attempt also counts as `error` (it is retried after `RETRY_DELAYS`).

Until then the letter is *pending*: `pending(partition)` lists them, with what the caller attached
(`hold`), so that the receiver never checkpoints past an event whose dead letter is neither written
nor dropped (see `Receiver._dead_letter_limit`), and `settled()` waits for a partition's letters
before its final checkpoint. After a crash, the events of pending letters are replayed by the next
owner and their letters submitted again (docs/reliability.md).

Read them back with `acs-sms-consumer replay <local download folder>`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from consumer.errors import classify, log_fields, reason as error_reason
from consumer.logs import event_fields
from consumer.metrics import ConsumerMetrics
from consumer.settings import DeadLetterSettings

if TYPE_CHECKING:
    from azure.storage.blob.aio import ContainerClient

log = logging.getLogger("consumer.deadletter")

QUEUE_SIZE = 256
#: Writes of one letter before it is given up (`dropped`); the storage SDK retries each one too.
WRITE_ATTEMPTS = 3
#: Pause before the second and third attempt, seconds.
RETRY_DELAYS = (1.0, 5.0)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    body: bytes
    partition: str
    sequence_number: int | None
    offset: str | None
    enqueued_time: float | None
    reason: str
    detail: str
    size: int | None = None  # the original body's size when `body` was cut (None: len(body))

    @property
    def original_size(self) -> int:
        return len(self.body) if self.size is None else self.size


@dataclass(eq=False, slots=True)
class Pending:
    """A submitted letter that is neither written nor dropped yet."""

    letter: DeadLetter
    hold: object  # whatever the submitter attached (the receiver: where a checkpoint may stop meanwhile)


def blob_name(namespace: str, eventhub: str, consumer_group: str, letter: DeadLetter) -> str:
    """`<namespace>/<eventhub>/<consumer group>/<partition>/<sequence number>.body` (`$` dropped:
    `$Default` becomes `Default`)."""
    sequence = "unknown" if letter.sequence_number is None else str(letter.sequence_number)
    return f"{namespace.lower()}/{eventhub}/{consumer_group}/{letter.partition}/{sequence}.body".replace("$", "")


def blob_metadata(letter: DeadLetter, size: int, truncated: bool) -> dict[str, str]:
    enqueued = "" if letter.enqueued_time is None else datetime.fromtimestamp(letter.enqueued_time, UTC).isoformat()
    detail = letter.detail.encode("ascii", "replace").decode()[:256]
    return {
        "partition": letter.partition,
        "sequencenumber": "" if letter.sequence_number is None else str(letter.sequence_number),
        "offset": letter.offset or "",
        "enqueuedtime": enqueued,
        "reason": letter.reason,
        "detail": detail,
        "size": str(size),
        "truncated": "true" if truncated else "false",
    }


class DeadLetterWriter:
    """Background writer of letters to `container`."""

    def __init__(self, container: ContainerClient, settings: DeadLetterSettings, metrics: ConsumerMetrics,
                 namespace: str, eventhub: str, consumer_group: str) -> None:
        self._container = container
        self._namespace = namespace
        self._settings = settings
        self._metrics = metrics
        self._eventhub = eventhub
        self._consumer_group = consumer_group
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(QUEUE_SIZE)
        self._queued_bytes = 0  # bodies of the letters queued or being written
        self._pending: dict[str, list[Pending]] = {}
        self._resolved = asyncio.Event()  # set whenever a pending letter is written or dropped
        self._window_start = 0.0
        self._written_in_window = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deadletter-writer")

    # --- submission -----------------------------------------------------------------------------

    def submit(self, letter: DeadLetter, hold: object = None) -> None:
        """Queue `letter` for writing, or count it `dropped` at once. `hold` is kept with it while it
        is pending (see `pending`)."""
        cap = self._settings.max_body_bytes
        if len(letter.body) > cap:
            letter = dataclasses.replace(letter, body=letter.body[:cap], size=len(letter.body))
        now = time.monotonic()
        if now - self._window_start >= 60:
            self._window_start, self._written_in_window = now, 0
        if self._written_in_window >= self._settings.max_blobs_per_minute:
            self._drop(letter, "over max_blobs_per_minute")
            return
        if self._queued_bytes + len(letter.body) > self._settings.max_queued_bytes:
            self._drop(letter, "over max_queued_bytes")
            return
        pending = Pending(letter, hold)
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            self._drop(letter, "queue full")
            return
        self._queued_bytes += len(letter.body)
        self._pending.setdefault(letter.partition, []).append(pending)
        self._written_in_window += 1

    def _drop(self, letter: DeadLetter, why: str) -> None:
        self._metrics.dead_letters.labels("dropped").inc()
        log.warning("dead letter dropped: %s", why, extra=event_fields(
            letter.partition, letter.sequence_number, offset=letter.offset, reason=letter.reason, why=why,
            size=letter.original_size))

    # --- pending letters ------------------------------------------------------------------------

    def pending(self, partition: str) -> list[Pending]:
        """The partition's letters that are neither written nor dropped, oldest first."""
        return list(self._pending.get(partition, ()))

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    # ASYNC109: expiry is an answer here (False), not an error a caller's asyncio.timeout() would raise.
    async def settled(self, partition: str, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait (up to `timeout` seconds) until no letter of `partition` is pending; True if none is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending.get(partition):
            remaining = deadline - loop.time()
            if remaining <= 0 or self._task is None or self._task.done():
                return False
            self._resolved.clear()
            try:
                await asyncio.wait_for(self._resolved.wait(), remaining)
            except TimeoutError:
                return False
        return True

    def _resolve(self, pending: Pending) -> None:
        self._queued_bytes -= len(pending.letter.body)
        letters = self._pending.get(pending.letter.partition)
        if letters is not None:
            letters.remove(pending)
            if not letters:
                del self._pending[pending.letter.partition]
        self._resolved.set()

    # --- writing --------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                await self._write(pending)
            except Exception as exc:  # not storage (`_write` handles that): this letter fails, never the writer
                self._drop(pending.letter, f"cannot be written: {type(exc).__name__}")
                if pending in self._pending.get(pending.letter.partition, ()):
                    self._resolve(pending)
            finally:
                self._queue.task_done()

    async def _write(self, pending: Pending) -> None:
        letter = pending.letter
        name = blob_name(self._namespace, self._eventhub, self._consumer_group, letter)
        fields = event_fields(letter.partition, letter.sequence_number, offset=letter.offset, reason=letter.reason,
                              blob=name)
        size = letter.original_size
        metadata = blob_metadata(letter, size, size > len(letter.body))
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                await self._container.upload_blob(name, letter.body, overwrite=True, metadata=metadata)
            except Exception as exc:  # storage down, auth, throttling: counted, retried, never fatal
                self._metrics.dead_letters.labels("error").inc()
                kind = classify(exc)
                log.warning("dead letter not written: %s: %s (attempt %d of %d)", kind, error_reason(exc), attempt,
                            WRITE_ATTEMPTS, extra={**fields, **log_fields(exc, kind, log.isEnabledFor(logging.DEBUG))})
                if attempt < WRITE_ATTEMPTS:
                    await asyncio.sleep(RETRY_DELAYS[attempt - 1])
                continue
            self._metrics.dead_letters.labels("written").inc()
            log.info("dead letter written", extra=fields)
            self._resolve(pending)
            return
        self._drop(letter, f"not written after {WRITE_ATTEMPTS} attempts")
        self._resolve(pending)

    # ASYNC109: on expiry close still logs what is left and stops the writer, which a caller's
    # asyncio.timeout() would cancel instead.
    async def close(self, timeout: float) -> None:  # noqa: ASYNC109
        """Write what is queued (within `timeout`), then stop. Letters still pending then are neither
        written nor dropped: no checkpoint passed their events, so the next owner submits them again."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            left = sum(len(letters) for letters in self._pending.values())
            log.warning("dead letters not written at shutdown: %d (no checkpoint passed their events: the next "
                        "owner of their partitions dead-letters them again)", left,
                        extra={"partitions": sorted(self._pending)})
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
