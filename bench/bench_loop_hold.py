"""Benchmark: how long one worst-case body holds the event loop, through the shell's `PipelineWorker`.

    .venv/bin/python bench/bench_loop_hold.py [--size BYTES] [--skip SHAPE ...] [--repeat N]

A benchmark, not a test: it prints. For every crafted shape of `tests/crafted.py` (`SHAPES` and
`RECORD_SHAPES`) at `--size` bytes (default: the hub's 1 MiB maximum event size less 4 KiB of AMQP
overhead), and for a valid body of 1,250 generated records, it processes the body the way `run` does
(`PipelineWorker.process`: at least `pipeline.offload_min_bytes`, or an estimated cost over
`consumer.worker.INLINE_MAX_NANOSECONDS` → the worker thread; the `offloaded` column) while a task on
the event loop ticks every 1 ms,
and prints the processing time, the longest gap between two ticks (the longest the loop was held)
and the longest pause of the garbage collector meanwhile (a collection is one C call too). With
`--repeat N` every body is measured N times and the median and the largest of each figure printed:
on a shared machine a thread holding the GIL can itself wait for a core, which the median mostly
leaves out. The last column does not depend on the load: the CPU time (of the calling thread) of
the longest single C call `decode_body` makes on the body, the least of 3 runs under
`sys.setprofile` (the calls a profiler sees: not the collector's pauses, the column before, nor
big-integer operators, which the repair's 64 KiB steps bound).

A worker thread gives the loop the GIL between Python bytecodes (every 5 ms at most), but not inside
one C call: the longest hold is that of the longest single C call made on the body. The decoder
repairs in steps of at most 64 KiB (`consumer.repair.STEP`), so what is left is orjson building all
the values of a body in one call (with the collector paused) and the collections that follow it.
Shapes a decoder under test takes hours on (quadratic) can be left out with `--skip`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consumer.config import PipelineSettings  # noqa: E402
from consumer.decode import decode_body  # noqa: E402
from acs_sms_devtools.traffic import generate_corpus  # noqa: E402
from consumer.metrics import Metrics  # noqa: E402
from consumer.pipeline import EventContext, Pipeline  # noqa: E402
from consumer.worker import PipelineWorker  # noqa: E402
from tests.crafted import MAX_EVENT_BYTES, RECORD_SHAPES, SHAPES  # noqa: E402


async def measure(worker: PipelineWorker, body: bytes) -> tuple[float, float, float]:
    """(processing seconds, longest loop hold in seconds, longest collector pause in seconds) of one
    body."""
    gaps: list[float] = []
    done = asyncio.Event()
    pauses = [0.0]
    started_gc = [0.0]

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started_gc[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started_gc[0])

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    gc.callbacks.append(collector)
    try:
        started = time.perf_counter()
        await worker.process(body, time.time(), EventContext("0", 1))
        took = time.perf_counter() - started
        done.set()
        await ticking
    finally:
        gc.callbacks.remove(collector)
    return took, max(gaps), max(pauses)


def longest_c_call(body: bytes) -> float:
    """CPU seconds of the longest single C call `decode_body` makes on `body` (least of 3 runs)."""
    least = float("inf")
    for _ in range(3):
        started: list[float] = []
        longest = 0.0

        def profile(frame: object, event: str, arg: object) -> None:
            nonlocal longest
            if event == "c_call":
                started.append(time.thread_time())
            elif event in ("c_return", "c_exception") and started:
                longest = max(longest, time.thread_time() - started.pop())

        sys.setprofile(profile)
        try:
            decode_body(body, 2 * len(body))
        finally:
            sys.setprofile(None)
        least = min(least, longest)
    return least


async def main(size: int, skip: set[str], repeat: int) -> None:
    settings = PipelineSettings()
    bodies = {name: shape(size) for name, shape in {**SHAPES, **RECORD_SHAPES}.items() if name not in skip}
    bodies["valid_1250_records"] = generate_corpus(1250, records_per_body=1250, seed=3)[0]
    print(f"offload_min_bytes {settings.offload_min_bytes}; {sys.version.split()[0]}")
    figures = "median / max of " + str(repeat) if repeat > 1 else "one run"
    print(f"{'body':28s} {'bytes':>9s} {'processing':>13s} {'longest loop hold':>18s} {'longest gc':>15s} "
          f"{'longest C call (CPU)':>21s} {'offloaded':>9s}  ({figures})")
    for name, body in bodies.items():
        runs = []
        for _ in range(repeat):
            worker = PipelineWorker(Pipeline(settings, Metrics(settings.buckets, "bench").domain),
                                    settings.offload_min_bytes)
            runs.append(await measure(worker, body))
            offloaded = worker.offloads(body)
            worker.close()
        shown = []
        for column in zip(*runs, strict=True):
            median, most = statistics.median(column) * 1000, max(column) * 1000
            shown.append(f"{median:.1f} / {most:.1f}" if repeat > 1 else f"{most:.1f}")
        print(f"{name:28s} {len(body):9d} {shown[0]:>10s} ms {shown[1]:>15s} ms {shown[2]:>12s} ms "
              f"{longest_c_call(body) * 1000:18.1f} ms {'yes' if offloaded else 'no':>9s}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=MAX_EVENT_BYTES - 4096)
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted({**SHAPES, **RECORD_SHAPES}))
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.size, set(args.skip), args.repeat))
