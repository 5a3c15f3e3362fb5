"""Dead-letter: keep the bodies that yielded no records, so nothing is lost without a trace.

Each rejected body is written as one blob to a container of the checkpoint storage account, named
`<eventhub>/<consumer group>/<partition>/<sequence number>.body` (so a replay of the same event
overwrites rather than duplicates), with the partition, sequence number, offset, enqueued time,
reason and size as blob metadata. Bodies over `max_body_bytes` are cut to that size (metadata
`truncated=true`). Writes happen in the background from a bounded queue, at most
`max_blobs_per_minute`; what cannot be queued or written is counted (`dropped`, `error`) and logged
with its partition and sequence number, and processing never waits on storage.

Read them back with `acs-sms-consumer replay <local download folder>`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from consumer.config import DeadLetterSettings
from consumer.logs import event_fields
from consumer.metrics import ConsumerMetrics

log = logging.getLogger("consumer.deadletter")

QUEUE_SIZE = 256


@dataclass(frozen=True, slots=True)
class DeadLetter:
    body: bytes
    partition: str
    sequence_number: int | None
    offset: str | None
    enqueued_time: float | None
    reason: str
    detail: str


def blob_name(eventhub: str, consumer_group: str, letter: DeadLetter) -> str:
    sequence = "unknown" if letter.sequence_number is None else str(letter.sequence_number)
    return f"{eventhub}/{consumer_group}/{letter.partition}/{sequence}.body".replace("$", "")


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
    """Background writer. `container` is an `azure.storage.blob.aio.ContainerClient`."""

    def __init__(self, container: Any, settings: DeadLetterSettings, metrics: ConsumerMetrics,
                 eventhub: str, consumer_group: str) -> None:
        self._container = container
        self._settings = settings
        self._metrics = metrics
        self._eventhub = eventhub
        self._consumer_group = consumer_group
        self._queue: asyncio.Queue[DeadLetter] = asyncio.Queue(QUEUE_SIZE)
        self._window_start = 0.0
        self._written_in_window = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deadletter-writer")

    def submit(self, letter: DeadLetter) -> None:
        now = time.monotonic()
        if now - self._window_start >= 60:
            self._window_start, self._written_in_window = now, 0
        if self._written_in_window >= self._settings.max_blobs_per_minute:
            self._drop(letter, "over max_blobs_per_minute")
            return
        try:
            self._queue.put_nowait(letter)
        except asyncio.QueueFull:
            self._drop(letter, "queue full")
            return
        self._written_in_window += 1

    def _drop(self, letter: DeadLetter, why: str) -> None:
        self._metrics.dead_letters.labels("dropped").inc()
        log.warning("dead letter dropped: %s", why, extra=event_fields(letter.partition, letter.sequence_number, offset=letter.offset, reason=letter.reason))

    async def _run(self) -> None:
        while True:
            letter = await self._queue.get()
            try:
                await self._write(letter)
            finally:
                self._queue.task_done()

    async def _write(self, letter: DeadLetter) -> None:
        cap = self._settings.max_body_bytes
        data = letter.body[:cap]
        name = blob_name(self._eventhub, self._consumer_group, letter)
        fields = event_fields(letter.partition, letter.sequence_number, offset=letter.offset, reason=letter.reason, blob=name)
        try:
            await self._container.upload_blob(
                name, data, overwrite=True, metadata=blob_metadata(letter, len(letter.body), len(letter.body) > cap)
            )
        except Exception as exc:  # storage down, auth, throttling: counted and logged, never fatal
            self._metrics.dead_letters.labels("error").inc()
            log.warning("dead letter not written: %s", type(exc).__name__, extra=fields)
            return
        self._metrics.dead_letters.labels("written").inc()
        log.info("dead letter written", extra=fields)

    async def close(self, timeout: float) -> None:
        """Write what is queued (within `timeout`), then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            log.warning("dead letters still queued at shutdown: %d", self._queue.qsize())
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
