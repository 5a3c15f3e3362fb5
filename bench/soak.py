"""Soak: the real consumer against the local harness for N minutes at a fixed rate.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 5000] [--partitions 4] [--report-every 60]

A soak run, not a test: it asserts nothing, it prints. It starts Azurite (the checkpoint store) and
the local Event Hubs endpoint (in this process), then `acs-sms-consumer run` as a child process,
exactly as a user runs it. The synthetic ACS traffic generator (`acs_sms_devtools.traffic`, fresh
records all the way, so nothing is a duplicate) writes `--rate` records per second into the hub's
partitions, paced by the generator's own clock. Every `--report-every` seconds it scrapes /metrics and
prints a line:

    t, records/s counted in the interval, events published − events counted (exact lag),
    the consumer's own lag gauge (sum over partitions), p99 batch processing time in the interval
    (from the histogram's buckets), the consumer's CPU (share of one core), RSS, checkpoint errors.

At the end it stops publishing, waits for the consumer to catch up, sends SIGTERM, and prints the
summary: throughput, p99 batch time over the whole run, CPU, RSS after warm-up, at half time and at
the end (growth over the run and over its second half: the duplicate and correlation windows fill in
the first minutes at 5,000 records/s, so the second half shows whether anything else grows),
lag (first, max, last report), events lost (published − counted: must be 0), shutdown time and exit
code. Bounded: publishing stops after `--minutes`, catching up waits at most 120 s, shutdown 60 s.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import yaml

from acs_sms_devtools.azurite import Azurite
from acs_sms_devtools.eventhubs import EventHubsEndpoint
from acs_sms_devtools.scrape import Samples, free_port, total
from acs_sms_devtools.scrape import scrape as scrape_url
from acs_sms_devtools.traffic import TrafficGenerator, TrafficOptions


def scrape(port: int) -> Samples:
    return scrape_url(f"http://127.0.0.1:{port}/metrics")


def buckets(samples: Samples, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram without labels, by upper bound."""
    out: dict[float, float] = {}
    for (n, labels), value in samples.items():
        if n == f"{name}_bucket":
            out[float(dict(labels)["le"])] = value
    return out


def quantile(q: float, now: dict[float, float], before: dict[float, float] | None = None) -> float:
    """`histogram_quantile` over cumulative buckets (optionally the increase since `before`),
    interpolated linearly inside the bucket as Prometheus does."""
    bounds = sorted(now)
    counts = [now[b] - (before or {}).get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, count in zip(bounds, counts):
        if count >= rank:
            if math.isinf(bound):
                return lower  # above the highest finite bucket: its bound is all we know
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return lower


def write_config(path: Path, endpoint: EventHubsEndpoint, storage: str, port: int, batch: int) -> None:
    config = {
        "eventhub": {
            "connection_string": endpoint.connection_string,
            "name": endpoint.hub.name,
            "initial_position": "earliest",
            "max_batch_size": batch,
            "prefetch": 2 * batch,
        },
        "checkpoint_store": {"connection_string": storage, "container": "soak"},
        "deadletter": {"container": "soak-deadletter"},
        "http": {"host": "127.0.0.1", "port": port},
        "logging": {"level": "WARNING"},
    }
    path.write_text(yaml.safe_dump(config))


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="publishing time (default 30)")
    parser.add_argument("--rate", type=float, default=5000.0, help="records per second (default 5000)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--report-every", type=float, default=60.0, help="seconds between report lines (default 60)")
    parser.add_argument("--warm-up", type=float, default=120.0,
                        help="RSS growth is measured from the first report after this many seconds (default 120)")
    parser.add_argument("--batch-size", type=int, default=300, help="eventhub.max_batch_size of the consumer")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    duration = args.minutes * 60.0

    print(f"soak: {args.minutes:g} min at {args.rate:,.0f} records/s, {args.partitions} partitions, "
          f"batch {args.batch_size}; {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    retention = int(args.rate * duration / 50 / args.partitions * 1.2) + 10_000
    with Azurite() as azurite, EventHubsEndpoint(partitions=args.partitions,
                                                  max_events_per_partition=retention) as endpoint:
        port = free_port()
        config = workdir / "config.yaml"
        write_config(config, endpoint, azurite.connection_string, port, args.batch_size)
        log = (workdir / "consumer.log").open("ab")
        consumer = subprocess.Popen([sys.executable, "-m", "consumer", "run", "--config", str(config)],
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            return soak(args, duration, endpoint, consumer, port, workdir)
        finally:
            if consumer.poll() is None:
                consumer.kill()
                consumer.wait()
            log.close()


def soak(args: argparse.Namespace, duration: float, endpoint: EventHubsEndpoint, consumer: subprocess.Popen[bytes],
         port: int, workdir: Path) -> int:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                break
        except OSError:
            if consumer.poll() is not None or time.monotonic() > deadline:
                print(f"consumer did not become ready; log: {workdir / 'consumer.log'}")
                return 1
            time.sleep(0.2)

    options = TrafficOptions(rate=args.rate, duration=duration, seed=args.seed, start=datetime.now(UTC), drain=False)
    generator = TrafficGenerator(options)
    partitions = itertools.cycle(endpoint.partition_ids)
    first = scrape(port)
    batch_name = "acs_consumer_batch_processing_seconds"
    rows: list[dict[str, float]] = []
    previous = {"t": 0.0, "records": total(first, "acs_consumer_records_total"), "buckets": buckets(first, batch_name),
                "cpu": total(first, "process_cpu_seconds_total")}
    published_records = 0
    started = time.monotonic()
    next_report = started + args.report_every
    print(f"{'t':>6} {'records/s':>10} {'lag events':>10} {'lag gauge':>9} {'p99 batch':>10} {'CPU':>5} {'RSS':>9} "
          f"{'ckpt err':>8}")

    def report(now: float) -> None:
        samples = scrape(port)
        t = now - started
        records = total(samples, "acs_consumer_records_total")
        counted = total(samples, "acs_consumer_events_total")
        cpu = total(samples, "process_cpu_seconds_total")
        row = {
            "t": t,
            "rate": (records - previous["records"]) / (t - previous["t"]),
            "lag": endpoint.event_count() - counted,
            "gauge": total(samples, "acs_consumer_partition_lag_events"),
            "p99": quantile(0.99, buckets(samples, batch_name), previous["buckets"]),  # type: ignore[arg-type]
            "cpu": (cpu - previous["cpu"]) / (t - previous["t"]),  # type: ignore[operator]
            "rss": total(samples, "process_resident_memory_bytes"),
            "errors": total(samples, "acs_consumer_checkpoints_total", outcome="error"),
        }
        rows.append(row)
        previous.update(t=t, records=records, buckets=buckets(samples, batch_name), cpu=cpu)
        print(f"{t:6.0f} {row['rate']:10,.0f} {row['lag']:10,.0f} {row['gauge']:9,.0f} {1000 * row['p99']:8.1f}ms "
              f"{100 * row['cpu']:4.0f}% {mb(row['rss']):>9} {row['errors']:8.0f}", flush=True)

    for body in generator.bodies():
        due = started + body.at
        while (now := time.monotonic()) < due:
            if now >= next_report:
                report(now)
                next_report += args.report_every
            time.sleep(min(due - now, next_report - now, 0.05))
        if consumer.poll() is not None:
            print(f"consumer exited ({consumer.returncode}) mid-run; log: {workdir / 'consumer.log'}")
            return 1
        endpoint.publish(next(partitions), [body.encode()])
        published_records += len(body.records)
    publishing = time.monotonic() - started
    published = endpoint.event_count()

    catch_up_started = time.monotonic()
    while time.monotonic() - catch_up_started < 120:
        if total(scrape(port), "acs_consumer_events_total") >= published:
            break
        time.sleep(0.5)
    catch_up = time.monotonic() - catch_up_started
    final = scrape(port)
    report(time.monotonic())

    stopping = time.monotonic()
    consumer.send_signal(signal.SIGTERM)
    try:
        code = consumer.wait(60)
    except subprocess.TimeoutExpired:
        code = None
    shutdown = time.monotonic() - stopping

    counted = total(final, "acs_consumer_events_total")
    records = total(final, "acs_consumer_records_total")
    processed = total(final, "acs_consumer_records_total", outcome="processed")
    warm = next((r for r in rows if r["t"] >= args.warm_up), rows[0])
    half = next((r for r in rows if r["t"] >= publishing / 2), rows[-1])
    end = rows[-1]
    cpu_run = (total(final, "process_cpu_seconds_total") - total(first, "process_cpu_seconds_total")) / publishing
    p99_all = quantile(0.99, buckets(final, batch_name), buckets(first, batch_name))
    batch_sum = total(final, f"{batch_name}_sum") - total(first, f"{batch_name}_sum")
    batch_count = total(final, f"{batch_name}_count") - total(first, f"{batch_name}_count")
    lags = [r["lag"] for r in rows[:-1]] or [end["lag"]]
    print()
    print(f"published: {published_records:,} records in {published:,} events over {publishing:.0f} s "
          f"({published_records / publishing:,.0f} records/s offered)")
    print(f"counted:   {records:,.0f} records ({processed:,.0f} processed) in {counted:,.0f} events; "
          f"events lost (published − counted): {published - counted:,.0f}; caught up {catch_up:.1f} s after "
          f"publishing stopped")
    print(f"throughput: {records / publishing:,.0f} records/s sustained over the run")
    print(f"batch processing: p99 {1000 * p99_all:.1f} ms, mean {1000 * batch_sum / max(batch_count, 1):.1f} ms "
          f"over {batch_count:,.0f} batches")
    print(f"consumer CPU: {100 * cpu_run:.0f}% of one core over the run")
    print(f"RSS: {mb(warm['rss'])} at {warm['t']:.0f} s (after warm-up), {mb(half['rss'])} at {half['t']:.0f} s, "
          f"{mb(end['rss'])} at the end: growth {100 * (end['rss'] / warm['rss'] - 1):+.1f}% since warm-up, "
          f"{100 * (end['rss'] / half['rss'] - 1):+.1f}% over the second half")
    print(f"lag (published − counted events) at the reports: first {lags[0]:,.0f}, max {max(lags):,.0f}, "
          f"last {lags[-1]:,.0f}")
    print(f"checkpoint errors: {end['errors']:.0f}; shutdown after SIGTERM {shutdown:.1f} s, exit code {code}")
    print(f"consumer log: {workdir / 'consumer.log'}")
    return 0 if code == 0 and published == counted else 1


if __name__ == "__main__":
    sys.exit(main())
