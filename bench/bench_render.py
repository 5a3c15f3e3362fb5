"""Benchmark: how long one /metrics render takes when the families are at their series budget.

    .venv/bin/python bench/bench_render.py [--budget 2000] [--renders 200]

A benchmark, not a test: it prints p50/p99/max of `Metrics.render()` (the 0.0.4 text format that
`/metrics` serves by default) and of the OpenMetrics render, in two states:

- **reachable**: the worst case real input can make. Every per-record family holds as many series as
  its labels allow, capped at the budget: `acs_sms_operations_total`, `acs_sms_failures_total` and the
  two `acs_usage_*` families (whose label combinations exceed 2,000) at the budget plus their `other`
  series; the latency histogram at 6 results × 7 number types × 2 sources = 84; the other histograms
  and counters at the size of their closed label sets; 32 partitions.
- **every family at the budget**: all per-record families, histograms included, with `budget` series
  each — more than any input can reach (the labels of most families cannot combine that far), an
  upper bound.

The goal (issue 14.5) is p99 < 100 ms for the reachable state.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumer.config import PipelineSettings  # noqa: E402
from consumer.labels import NUMBER_TYPES, RESULTS, SMS_OPERATIONS  # noqa: E402
from consumer.metrics import FastCounter, FastHistogram, Metrics  # noqa: E402


def fill(family: FastCounter | FastHistogram, count: int, value_of: int = 7) -> None:
    """`count` distinct label combinations (synthetic values), each updated once."""
    width = len(family.labelnames)
    for i in range(count):
        key = tuple(f"v{i}_{j}" for j in range(width))
        if isinstance(family, FastCounter):
            family.inc(key, float(value_of))
        else:
            family.observe(key, float(i % 400))


def reachable(budget: int) -> Metrics:
    metrics = Metrics(PipelineSettings().buckets, "bench", process_metrics=True)
    d = metrics.domain
    d.limit_series(budget)
    results, types = (*RESULTS, "other"), (*NUMBER_TYPES, "other", "unknown")
    for family in (d.operations, d.failures, d.usage_quantity, d.usage_records):
        fill(family, budget + 10)  # the budget, then folds into `other`
    for result in results:
        for number_type in types:
            for source in ("paired", "message_id"):
                d.delivery_latency.observe((result, number_type, source, "acs-a"), 3.0)
        d.delivery_attempts.observe((result,), 1.0)
        d.unmatched_reports.inc((result, "acs-a"))
    for operation in (*SMS_OPERATIONS, "other"):
        d.api_duration.observe((operation,), 0.1)
    fill(d.record_age, 43)  # documented categories + 20 first seen + other + unknown
    fill(d.records, 43 * 4)
    fill(d.decode_errors, 5)
    fill(d.correlation_evictions, 6)
    fill(d.message_characters, 2)
    fill(d.events, 32)
    d.event_age.observe((), 1.0)
    c = metrics.consumer
    for partition in range(32):
        c.checkpoints.labels(str(partition), "ok").inc()
        c.partition_lag.labels(str(partition)).set(1)
        c.last_event_timestamp.labels(str(partition)).set(1)
    return metrics


def everything(budget: int) -> Metrics:
    metrics = Metrics(PipelineSettings().buckets, "bench", process_metrics=True)
    metrics.domain.limit_series(budget)
    for family in metrics.domain.families():
        if family.labelnames:
            fill(family, budget)
    return metrics


def measure(name: str, render, renders: int) -> None:  # noqa: ANN001
    times, cpu = [], []
    size = 0
    for _ in range(renders):
        started, started_cpu = time.perf_counter(), time.process_time()
        size = len(render())
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    times.sort()
    cpu.sort()

    def p99(values: list[float]) -> float:
        return values[min(len(values) - 1, int(len(values) * 0.99))]

    print(f"  {name:<11} wall p50 {statistics.median(times):6.1f} ms  p99 {p99(times):6.1f} ms  max {times[-1]:6.1f} ms;"
          f"  CPU p50 {statistics.median(cpu):6.1f} ms  p99 {p99(cpu):6.1f} ms  ({size / 1024:,.0f} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=PipelineSettings().labels.series_per_family)
    parser.add_argument("--renders", type=int, default=100)
    args = parser.parse_args()
    for title, build, renders in (("reachable worst case", reachable, args.renders),
                                  ("every family at the budget (upper bound)", everything, max(10, args.renders // 10))):
        metrics = build(args.budget)
        series = sum(len(f.values if isinstance(f, FastCounter) else f.children) for f in metrics.domain.families())
        lines = metrics.render().count(b"\n")
        print(f"{title}: budget {args.budget}, {series:,} series in the per-record families, {lines:,} lines; "
              f"{renders} renders")
        measure("text 0.0.4", metrics.render, renders)
        measure("OpenMetrics", lambda: metrics.render_for("application/openmetrics-text")[0], renders)


if __name__ == "__main__":
    main()
