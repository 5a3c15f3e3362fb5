"""Benchmark: what one /metrics answer costs in each format: render time and size, plain and gzip.

    .venv/bin/python bench/bench_exposition.py [--records N] [--partitions P] [--repeat R]

A benchmark, not a test: it asserts nothing, it prints. The registry is the service's (`Metrics`, with
the process collector, and the gauges a `Pipeline` adds) after `--records` generated records of the
realistic mix (`acs_sms_devtools.traffic.generate_corpus`) and `--partitions` partitions' worth of
per-partition series. For each format the consumer can answer (the 0.0.4 text format, what /metrics
always answered before, and OpenMetrics 1.0, what Prometheus asks for first) it prints the median CPU
time (`time.process_time`) of `Metrics.render_for` over `--repeat` renders, the size, and the
same with the gzip compression aiohttp applies when the scrape sends `Accept-Encoding: gzip`
(zlib's default level, the body compressed in one piece).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consumer.config import Buckets, PipelineSettings  # noqa: E402
from acs_sms_devtools.traffic import generate_corpus  # noqa: E402
from consumer.metrics import Metrics  # noqa: E402
from consumer.pipeline import EventContext, Pipeline  # noqa: E402

FORMATS = {
    "text 0.0.4": "",
    "OpenMetrics 1.0": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
}


def service_metrics(records: int, partitions: int) -> Metrics:
    settings = PipelineSettings()
    metrics = Metrics(Buckets(), "0.0.0-bench", process_metrics=True)
    pipeline = Pipeline(settings, metrics.domain)
    now = 1_800_000_000.0
    for index, body in enumerate(generate_corpus(records)):
        now += 0.05
        pipeline.process(body, now, EventContext(partition=str(index % partitions)))
    c = metrics.consumer
    for partition in map(str, range(partitions)):
        c.checkpoints.labels(partition, "ok").inc(10)
        c.partition_lag.labels(partition).set(3)
        c.last_event_timestamp.labels(partition).set(now)
    c.owned_partitions.set(partitions)
    c.batch_duration.observe(0.01)
    return metrics


def gzip_compress(body: bytes) -> bytes:
    """What aiohttp's Response does with `enable_compression()` and Accept-Encoding: gzip."""
    compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


def median_cpu_ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        function()
        times.append((time.process_time() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)

    metrics = service_metrics(args.records, args.partitions)
    series = sum(1 for line in metrics.render().splitlines() if line and not line.startswith(b"#"))
    print(f"{platform.python_implementation()} {platform.python_version()}, {args.records:,} records, "
          f"{args.partitions} partitions: {series:,} series; median of {args.repeat} renders (CPU time)")
    print("| format | render ms | size KB | + gzip ms | gzip KB | ratio |")
    print("|---|---|---|---|---|---|")
    for name, accept in FORMATS.items():
        body, _ = metrics.render_for(accept)
        render_ms = median_cpu_ms(lambda: metrics.render_for(accept), args.repeat)
        compressed = gzip_compress(body)
        gzip_ms = median_cpu_ms(lambda: gzip_compress(body), args.repeat)
        print(f"| {name} | {render_ms:.2f} | {len(body) / 1024:.1f} | {gzip_ms:.2f} | "
              f"{len(compressed) / 1024:.1f} | {len(body) / len(compressed):.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
