"""consumer.worker: large bodies off the loop, one body at a time, failures isolated per body."""

from __future__ import annotations

import asyncio
import threading
import time

from consumer.config import PipelineSettings
from consumer.metrics import Metrics
from consumer.pipeline import EventContext, Pipeline
from consumer.worker import PipelineWorker

GOOD = b'{"records": [{"category": "Usage", "operationName": "SMS", "properties": {"Quantity": 1, "UsageType": "SMS"}}]}'
LARGE = GOOD[:-1] + b', "pad": "' + b"x" * 1000 + b'"}'  # over the test's offload_min_bytes of 500
CONTEXT = EventContext("0", 1)


class Watched(Pipeline):
    """Records the thread of every body and how many ran at once; with `gated`, holds each large body
    until the test sets `gate` (so the test waits on conditions, not on sleeps)."""

    def __init__(self, *args, gated: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.gated = gated
        self.gate = threading.Event()
        self.threads: list[tuple[int, int]] = []  # (body size, thread id)
        self.active = 0
        self.most_active = 0
        self.guard = threading.Lock()

    def process(self, body, now, context=None):
        with self.guard:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            self.threads.append((len(body), threading.get_ident()))
            if len(body) >= 500 and self.gated:
                assert self.gate.wait(10), "the test never released the large body"
            if b"raise" in body:
                raise RuntimeError(body.decode())
            return super().process(body, now, context)
        finally:
            with self.guard:
                self.active -= 1


def make(gated: bool = False) -> tuple[PipelineWorker, Watched]:
    settings = PipelineSettings()
    pipeline = Watched(settings, Metrics(settings.buckets, "test").domain, gated=gated)
    return PipelineWorker(pipeline, offload_min_bytes=500), pipeline


async def until(condition, timeout: float = 10.0) -> None:
    """Poll `condition()` on the loop until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def process(worker: PipelineWorker, body: bytes):
    """What `Receiver._process` does for one body."""
    if worker.inline(body):
        return worker.process_now(body, time.time(), CONTEXT)
    return await worker.process(body, time.time(), CONTEXT)


def test_large_bodies_go_to_one_worker_thread_small_ones_stay_inline():
    worker, pipeline = make()

    async def main():
        for body in (GOOD, LARGE, GOOD, LARGE):
            assert (await process(worker, body)).processed == 1
        worker.close()
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    threads = dict.fromkeys(ident for size, ident in pipeline.threads if size >= 500)
    assert [ident for size, ident in pipeline.threads if size < 500] == [loop_thread, loop_thread]
    assert len(threads) == 1 and loop_thread not in threads
    assert pipeline.metrics.records.get("Usage", "processed") == 4


def test_the_loop_runs_while_a_large_body_is_processed_and_nothing_runs_beside_it():
    worker, pipeline = make(gated=True)
    ticks = []
    order = []

    async def ticker():
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def small_ones():
        await until(lambda: pipeline.active == 1)  # the large body is in the thread
        assert not worker.inline(GOOD)
        for _ in range(3):
            await process(worker, GOOD)
            order.append("small")

    async def release():
        await until(lambda: pipeline.active == 1)
        held_from = len(ticks)
        await until(lambda: len(ticks) - held_from >= 20)  # the loop ticks on while the thread holds the body
        assert order == [] and pipeline.active == 1
        pipeline.gate.set()

    async def main():
        ticking = asyncio.create_task(ticker())
        large = asyncio.create_task(process(worker, LARGE))
        await asyncio.gather(large, small_ones(), release())
        ticking.cancel()
        worker.close()

    asyncio.run(main())
    assert pipeline.most_active == 1  # never two bodies at once
    assert [size >= 500 for size, _ in pipeline.threads] == [True, False, False, False]  # small ones waited
    assert order == ["small"] * 3


def test_a_body_that_raises_on_the_thread_is_rejected_as_internal():
    worker, pipeline = make()

    async def main():
        result = await process(worker, LARGE.replace(b'"pad"', b'"raise"'))
        inline = await process(worker, b'{"raise": 1}')
        worker.close()
        return result, inline

    result, inline = asyncio.run(main())
    for r in (result, inline):
        assert r.decode_error == "internal" and r.detail.startswith("RuntimeError at test_worker.py:")
        assert "raise" not in r.detail.split(" in ")[0]
    assert pipeline.metrics.decode_errors.values == {("internal",): 2}


def test_a_cancelled_wait_keeps_the_pipeline_locked_until_the_thread_is_done():
    worker, pipeline = make(gated=True)

    async def main():
        large = asyncio.create_task(worker.process(LARGE, time.time(), CONTEXT))
        await until(lambda: pipeline.active == 1)
        large.cancel()
        for _ in range(100):  # the cancellation reaches the task, which keeps the lock while the thread runs
            await asyncio.sleep(0)
        locked_while_thread_runs = not worker.inline(GOOD) and pipeline.active == 1 and not large.done()
        pipeline.gate.set()
        await asyncio.gather(large, return_exceptions=True)
        done = worker.inline(GOOD) and pipeline.active == 0
        worker.close()
        return locked_while_thread_runs, done, large.cancelled()

    assert asyncio.run(main()) == (True, True, True)


def test_call_waits_for_the_body_in_the_thread():
    worker, pipeline = make(gated=True)
    seen = []

    async def main():
        large = asyncio.create_task(worker.process(LARGE, time.time(), CONTEXT))
        await until(lambda: pipeline.active == 1)
        call = asyncio.create_task(worker.call(lambda: seen.append(pipeline.active)))
        for _ in range(100):
            await asyncio.sleep(0)
        assert not call.done() and seen == []  # held while the body is in the thread
        pipeline.gate.set()
        await call
        await large
        worker.close()

    asyncio.run(main())
    assert seen == [0]


def test_metrics_render_correctly_while_the_thread_updates_them():
    """Scrapes on the loop while the worker thread applies large bodies: every render parses, and the
    counts only grow, to exactly what the bodies hold."""
    from prometheus_client.parser import text_string_to_metric_families

    from acs_sms_devtools.traffic import generate_corpus

    bodies = generate_corpus(3000, records_per_body=300, seed=4)  # ~240 KB each: all on the thread
    settings = PipelineSettings()
    metrics = Metrics(settings.buckets, "test")
    worker = PipelineWorker(Pipeline(settings, metrics.domain), offload_min_bytes=64 * 1024)
    assert min(map(len, bodies)) >= worker.offload_min_bytes
    seen: list[float] = []

    def records_total() -> float:
        text = metrics.render().decode()
        return sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name == "acs_consumer_records" for sample in family.samples)

    async def main():
        async def scrapes():
            while True:
                seen.append(records_total())
                await asyncio.sleep(0)

        scraping = asyncio.create_task(scrapes())
        for index, body in enumerate(bodies):
            await worker.process(body, time.time(), EventContext("0", index))
        scraping.cancel()
        worker.close()

    asyncio.run(main())
    assert len(seen) >= 10
    assert seen == sorted(seen) and records_total() == 3000
