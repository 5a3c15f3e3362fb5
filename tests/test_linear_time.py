"""Every step that reads a body or a `properties` string is linear in its size, proven by growth.

For each crafted shape (tests/crafted.py) the CPU time of the step is measured at 64 KiB, 128 KiB, ...,
1 MiB (the least of a few runs per size, the garbage collector off). A linear step costs about 2x per
doubling, a quadratic one 4x: the median of the four doubling ratios must stay at or below 2.5 and
1 MiB may cost at most 2.5**4 (39) times 64 KiB (linear: 16, quadratic: 256). No wall-clock limit,
except a generous one that stops a quadratic step before it runs for minutes: a single call at one
of these sizes taking more than 3 s (the goal is 50 ms for 1 MiB) fails at once. The sizes are
measured in turn, and a measurement that fails is made again (up to three in all): a quadratic step
fails all of them, a busy machine seldom two.

The quadratic repair this replaced (a backtracking string regex) failed here at once: 21 s for the
64 KiB `escaped_quote_run` body (1.3 s for 16 KiB, 4x per doubling).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from consumer.config import PipelineSettings
from consumer.decode import decode_body
from consumer.metrics import Metrics
from consumer.pipeline import Pipeline
from tests.crafted import MAX_EVENT_BYTES, SHAPES
from tests.models import normalise

SIZES = [64 * 1024 * 2**k for k in range(5)]  # 64 KiB .. 1 MiB
assert SIZES[-1] == MAX_EVENT_BYTES
MAX_DOUBLING = 2.5
STOP_SECONDS = 3.0


def _cpu_seconds(steps: list[Callable[[], Any]]) -> list[float]:
    """The least CPU time of each step over 2 to 9 rounds that run every step once, in turn (so that a
    change of load on the machine weighs on every size alike; more rounds when the steps are quick)."""
    best = [float("inf")] * len(steps)
    rounds = 0
    spent = 0.0
    while rounds < 2 or (rounds < 9 and spent < 0.1):
        for index, step in enumerate(steps):
            start = time.process_time()
            step()
            took = time.process_time() - start
            if took > STOP_SECONDS:
                pytest.fail(f"one call took {took:.1f} s (goal: 50 ms for 1 MiB): not linear")
            best[index] = min(best[index], took)
            spent += took
        rounds += 1
    return [max(t, 1e-6) for t in best]


def assert_linear(make_step: Callable[[int], Callable[[], Any]], attempts: int = 3) -> None:
    """Growth within bounds in one of `attempts` measurements: a quadratic step fails every one of
    them (x4 per doubling), while a linear one on a busy machine may now and then show x2.6 for a
    doubling that leaves the caches (a plain list of dicts does as much)."""
    steps = [make_step(size) for size in SIZES]
    problems = []
    for _ in range(attempts):
        gc.collect()
        gc.disable()
        try:
            times = _cpu_seconds(steps)
        finally:
            gc.enable()
        ratios = [later / earlier for earlier, later in zip(times, times[1:], strict=False)]
        shown = ", ".join(f"{t * 1e3:.2f} ms" for t in times)
        if statistics.median(ratios) > MAX_DOUBLING:
            problems.append(f"per doubling x{statistics.median(ratios):.2f}: {shown}")
        elif times[-1] / times[0] > MAX_DOUBLING**4:
            problems.append(f"64 KiB -> 1 MiB x{times[-1] / times[0]:.1f}: {shown}")
        else:
            return
    pytest.fail("; ".join(problems))


@pytest.mark.parametrize("shape", SHAPES)
def test_decode_body_is_linear(shape: str) -> None:
    def make_step(size: int) -> Callable[[], Any]:
        body = SHAPES[shape](size)
        return lambda: decode_body(body, 2 * MAX_EVENT_BYTES)

    assert_linear(make_step)


def _properties_string(shape: str, size: int) -> str:
    """The shape as the `properties` string of a record (for `properties_escaped_quotes`, the
    string its one record carries)."""
    body = SHAPES[shape](size)
    if shape == "properties_escaped_quotes":
        return orjson.loads(body)["records"][0]["properties"]
    return body.decode("utf-8")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_properties_string_is_linear(shape: str) -> None:
    def make_step(size: int) -> Callable[[], Any]:
        record = {"category": "SMSOperational", "operationName": "SMSMessagesSent",
                  "properties": _properties_string(shape, size)}
        return lambda: normalise(record)

    assert_linear(make_step)


BASE = {"time": "2026-11-02T09:15:01Z", "category": "SMSOperational", "operationName": "SMSMessagesSent"}
# A record with one very long value in a field the record layer parses (times, numbers as strings,
# labels, ids), in both shapes.
LONG_FIELDS: dict[str, Callable[[int], dict[str, Any]]] = {
    "time digits": lambda n: {**BASE, "time": "2026-11-02T09:15:01." + "1" * n + "Z"},
    "time padded": lambda n: {**BASE, "time": "11/02/2026" + " " * n + "x"},
    "time junk": lambda n: {**BASE, "TimeGenerated": "1" * n},
    "country": lambda n: {**BASE, "properties": {"Country": "U" * n}},
    "attempts": lambda n: {**BASE, "properties": {"DeliveryAttempts": "9" * n}},
    "duration": lambda n: {**BASE, "durationMs": "1." + "1" * n},
    "quantity": lambda n: {**BASE, "category": "Usage", "properties": {"Quantity": "1" * n}},
    "signature": lambda n: {**BASE, "resultSignature": "1" * n},
    "category": lambda n: {**BASE, "category": " " * n + "x"},
    "message id": lambda n: {**BASE, "properties": {"MessageId": "m" * n}},
    "resource id": lambda n: {**BASE, "resourceId": "/SUBSCRIPTIONS/S/PROVIDERS/MICROSOFT.COMMUNICATION/"
                                                     "COMMUNICATIONSERVICES/" + "A" * n},
    "result type": lambda n: {**BASE, "resultType": "F" * n},
    "number type": lambda n: {**BASE, "properties": {"NumberType": "L" * n}},
    "usage type": lambda n: {**BASE, "category": "Usage", "properties": {"UsageType": "U" * n, "Quantity": 1}},
}


@pytest.mark.parametrize("field", LONG_FIELDS)
def test_a_long_field_is_linear(field: str) -> None:
    def make_step(size: int) -> Callable[[], Any]:
        record = LONG_FIELDS[field](size)
        return lambda: normalise(record)

    assert_linear(make_step)



@pytest.mark.parametrize("canonical", [True, False], ids=["canonical", "general"])
@pytest.mark.parametrize("field", LONG_FIELDS)
def test_a_long_field_is_linear_through_the_pipeline(field: str, canonical: bool) -> None:
    """The same records through `Pipeline.process` (each decoder): what `normalise` does not reach,
    the label mapping (`consumer.labels`: a resource name cut out of a long resourceId, values too
    long for the label memos) and the correlation and duplicate keys."""
    metrics = Metrics(PipelineSettings().buckets, "test")
    pipeline = Pipeline(PipelineSettings(), metrics.domain)
    pipeline.canonical = canonical

    def make_step(size: int) -> Callable[[], Any]:
        body = orjson.dumps({"records": [LONG_FIELDS[field](size - 512)]})  # within `max_body_bytes`
        result = pipeline.process(body, 1_800_000_000.0)
        assert result.decode_error is None and result.records == 1, result  # the record was read
        return lambda: pipeline.process(body, 1_800_000_000.0)

    assert_linear(make_step)
