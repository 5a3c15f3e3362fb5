"""Runs the pipeline for the shell: never two bodies at once, and never a costly body on the event loop.

The event loop also answers /healthz, /readyz and /metrics and renews partition ownership, so no
single body may hold it for long. A body of at least `pipeline.offload_min_bytes` (64 KiB), or one
whose processing is estimated to cost more than `INLINE_MAX_NANOSECONDS` (5 ms; `inline_cost`), is
processed on one worker thread while the loop goes on (the thread gives the loop the GIL at least
every `sys.getswitchinterval()`, 5 ms, between Python bytecodes, but not inside one C call: the
decoder repairs in 64 KiB steps, and the longest single calls left, orjson's parse of a 1 MiB body
with the collector paused and the collection after it, take ~20-25 ms of CPU; see consumer.decode).
Other bodies, the vast majority, are processed inline: a thread hop costs more than they do.

Size alone does not bound the cost: what a body costs is mostly per record, and a record can be two
bytes (`1,`), so a 63 KiB body of tiny records held the loop 30-48 ms while a 63 KiB body of real
records takes 0.5 ms. The estimate counts what costs (`inline_cost`: C, ~20-30 µs for 64 KiB).

The pipeline's state (metric dicts, correlation and duplicate windows, label sets) is not locked
inside; `PipelineWorker` keeps it to one thread at a time: an `asyncio.Lock` is held for as long as the
worker thread processes a body (even if the awaiting task is cancelled), and the inline path is taken
only while that lock is free. Every other use of the pipeline from the shell (`expire`, the count of
an event that failed outside the pipeline) goes through `call`, under the same lock. A scrape reads the
pipeline's metric dicts from the event loop while the thread may write them: each family is copied
in one C-level call under the GIL before it is rendered (see `consumer.metrics`), so a scrape sees a
body half-applied at worst, never a broken exposition.

Whatever the pipeline raises for one body is caught here (`process_guarded`): the body is rejected
with reason `internal`, so that one event never stops its partition.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from consumer.decode import DecodeError
from consumer.pipeline import BodyResult, EventContext, Pipeline

T = TypeVar("T")

#: CPU nanoseconds per byte, per comma and per `{` of a body: upper bounds of what each costs inline,
#: measured with the crafted shapes of tests/crafted.py and record-shaped bodies (bench/bench_loop_hold.py,
#: docs/input-hardening.md). Every byte is decoded (and maybe repaired: ~25 ns at most); every
#: record or value but the first of its array or object follows a comma (a record that is a bare
#: value or an empty list costs ~1.3 µs); every record object opens a `{` (a small invalid one costs
#: ~5 µs with its comma). A real record has ~20 commas and 2 braces in ~900 bytes, so a real body is
#: overestimated (~4.5 ms for 64 KiB that take ~0.5 ms) but stays under the budget.
NANOSECONDS_PER_BYTE, NANOSECONDS_PER_COMMA, NANOSECONDS_PER_OBJECT = 25, 1_500, 3_200
#: A body estimated to cost more than this (CPU on the machine the figures above were measured on)
#: goes to the worker thread whatever its size: about the longest a body may hold the loop.
INLINE_MAX_NANOSECONDS = 5_000_000
#: Every byte but `,` and `{`: what `inline_cost` deletes to count those two in one pass.
_NOT_COUNTED = bytes(byte for byte in range(256) if byte not in b",{")


def inline_cost(body: bytes) -> int:
    """What processing `body` on the event loop is estimated to cost at most, in CPU nanoseconds.
    Linear and in C, no parse: one pass keeps the commas and braces (a real body keeps ~2 % of its
    bytes), one count of the braces among them (~0.5 ns per byte of the body in all)."""
    kept = body.translate(None, _NOT_COUNTED)
    objects = kept.count(b"{")
    return (len(body) * NANOSECONDS_PER_BYTE + (len(kept) - objects) * NANOSECONDS_PER_COMMA
            + objects * NANOSECONDS_PER_OBJECT)


def failure_detail(error: BaseException) -> str:
    """The exception's type and where it was raised (file, line, function), never its message: a
    message may quote the input (`ValueError: invalid literal ... '<body text>'`)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return type(error).__name__
    frame = frames[-1]
    return f"{type(error).__name__} at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}"


def process_guarded(pipeline: Pipeline, body: bytes, now: float, context: EventContext) -> BodyResult:
    """`pipeline.process`, with whatever it raises turned into a rejection of this one body for reason
    `internal` (counted in `acs_consumer_decode_errors_total`). What the pipeline counted of the body
    before it raised stays counted."""
    try:
        return pipeline.process(body, now, context)
    except Exception as error:  # a bug or an unforeseen input: this event fails, never its partition
        pipeline.metrics.decode_errors.inc((DecodeError.INTERNAL.value,))
        return BodyResult(decode_error=DecodeError.INTERNAL, detail=failure_detail(error))


class PipelineWorker:
    """The pipeline, one body at a time; large or costly bodies on a worker thread."""

    def __init__(self, pipeline: Pipeline, offload_min_bytes: int) -> None:
        self.pipeline = pipeline
        self.offload_min_bytes = offload_min_bytes
        self._lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None  # made at the first offloaded body

    def offloads(self, body: bytes) -> bool:
        """Whether `body` is processed on the worker thread: it is large, or costly (`inline_cost`)."""
        return len(body) >= self.offload_min_bytes or inline_cost(body) > INLINE_MAX_NANOSECONDS

    def inline(self, body: bytes) -> bool:
        """Whether `body` may be processed right now on the loop (`process_now`)."""
        return not self._lock.locked() and not self.offloads(body)

    def process_now(self, body: bytes, now: float, context: EventContext) -> BodyResult:
        """Inline processing; only when `inline(body)` said so, with no await in between."""
        return process_guarded(self.pipeline, body, now, context)

    async def process(self, body: bytes, now: float, context: EventContext) -> BodyResult:
        """Waits for the pipeline to be free, then processes the body (on the worker thread when
        `offloads(body)`)."""
        async with self._lock:
            if not self.offloads(body):
                return process_guarded(self.pipeline, body, now, context)
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline")
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, process_guarded, self.pipeline, body, now, context)
            try:
                return await asyncio.shield(future)
            finally:
                if not future.done():  # cancelled meanwhile: the lock is kept until the thread is done
                    await asyncio.wait([future])

    async def call(self, function: Callable[..., T], *args: object) -> T:
        """`function(*args)` on the loop, while no body is being processed."""
        async with self._lock:
            return function(*args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
