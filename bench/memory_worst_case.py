"""Benchmark: the worst-case memory of one replica, for the deployment's memory request and limit.

    .venv/bin/python bench/memory_worst_case.py [--part windows|prefetch|both] [--prefetch-events N]

A benchmark, not a test: it prints. Two parts, each measured as RSS (VmRSS of /proc/self/status):

- **windows**: one `Pipeline` with the default settings, its correlation and duplicate windows filled
  to their default capacity (200,000 entries each) with records whose MessageIds are 8 KB (the
  worst case for a window that would keep ids), its label memos full of 256-character keys (the
  longest a memo takes), and one series in every family. What the pipeline keeps between bodies.
- **prefetch**: what the Event Hubs SDK holds for prefetched events of the hub's maximum size
  (1 MiB on Standard/Premium). The local endpoint (a child process) holds N events of 1 MiB on one
  partition; the real async SDK consumer reads them with `prefetch=N` and `max_batch_size=1`, and the
  handler holds the first batch for a few seconds, while the SDK fills its buffer. RSS growth per
  buffered event is the figure; the deployment's worst case is that × `eventhub.prefetch` × the
  partitions a replica owns (plus the batch in hand, `max_batch_size` events).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1024 * 1024
ID_BYTES = 8 * 1024


def rss() -> int:
    """Resident set size of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def windows() -> None:
    from consumer.config import PipelineSettings
    from consumer.metrics import Metrics
    from consumer.pipeline import LABEL_MEMO_SIZE, MAX_MEMO_KEY_LENGTH, Pipeline

    settings = PipelineSettings()
    metrics = Metrics(settings.buckets, "bench", process_metrics=True)
    pipeline = Pipeline(settings, metrics.domain)
    gc.collect()
    start = rss()
    now = 1_800_000_000.0
    pad = "x" * (ID_BYTES - 16)
    per_body = 100  # 100 × 8 KB ids: ~0.9 MB bodies, under the 1 MiB limit
    started = time.perf_counter()
    template = ('{"time":"2027-01-15T08:00:00.1234567Z","category":"SMSOperational","operationName":'
                '"SMSMessagesSent","resultType":"Succeeded","resultSignature":202,"durationMs":10,"properties":'
                '{"MessageId":"%s","NumberType":"LongCodeNumber","Country":"US","OutgoingMessageLength":20}}')
    sends = settings.correlation_max_entries
    for first in range(0, sends, per_body):
        records = ",".join(template % f"{i:016d}{pad}" for i in range(first, first + per_body))
        pipeline.process(('{"records":[' + records + "]}").encode(), now)
    assert len(pipeline.correlator) == settings.correlation_max_entries, len(pipeline.correlator)
    assert len(pipeline._seen) == settings.duplicates_max_entries  # noqa: SLF001 - a benchmark looks inside
    filled = rss()
    # The label memos, full of the longest keys they take (values that map to `other`).
    long_value = "y" * (MAX_MEMO_KEY_LENGTH - 8)
    memo_template = ('{"time":"2027-01-15T08:00:00.1234567Z","category":"SMSOperational","operationName":'
                     '"SMSMessagesReceived","resultType":"%s","resultSignature":"%s","properties":'
                     '{"NumberType":"%s","Country":"%s"}}')
    for canonical in (True, False):  # each decoder has its memo
        pipeline.canonical = canonical
        for first in range(0, LABEL_MEMO_SIZE - 1, 100):
            records = ",".join(memo_template % ((f"{i:08d}{long_value}",) * 4) for i in range(first, first + 100))
            pipeline.process(('{"records":[' + records + "]}").encode(), now)
    for first in range(0, LABEL_MEMO_SIZE - 1, 100):
        records = ",".join('{"time":"2027-01-15T08:00:00Z","category":"Usage","operationName":"Usage","properties":'
                           '{"UsageType":"%s","UnitType":"%s","Quantity":1}}' % ((f"{i:08d}{long_value}",) * 2)
                           for i in range(first, first + 100))
        pipeline.process(('{"records":[' + records + "]}").encode(), now)
    gc.collect()
    end = rss()
    render = len(metrics.render())
    print(f"windows: {sends:,} sends with {ID_BYTES // 1024} KB MessageIds in {time.perf_counter() - started:.0f} s")
    print(f"  correlation window {len(pipeline.correlator):,} entries, duplicate window "
          f"{len(pipeline._seen):,} entries: RSS +{(filled - start) / MIB:.0f} MiB "  # noqa: SLF001
          f"({(filled - start) / (2 * sends):.0f} bytes per entry)")
    print(f"  label memos full of {MAX_MEMO_KEY_LENGTH}-character keys: RSS +{(end - filled) / MIB:.0f} MiB")
    print(f"  total: RSS {start / MIB:.0f} MiB before, {end / MIB:.0f} MiB after (+{(end - start) / MIB:.0f} MiB); "
          f"/metrics {render / 1024:.0f} KB")


def endpoint_process(conn: Connection, events: int) -> None:
    """Child: the local endpoint with `events` bodies of 1 MiB on partition 0."""
    from acs_sms_devtools.eventhubs import EventHubsEndpoint

    endpoint = EventHubsEndpoint("bench", 1, max_events_per_partition=events + 1).start()
    body = b'{"records":[{"category":"x","operationName":"y","pad":"' + b"z" * (MIB - 100) + b'"}]}'
    assert len(body) <= MIB
    endpoint.publish("0", [body] * events)
    conn.send(endpoint.connection_string)
    conn.recv()
    endpoint.stop()


async def hold_prefetch(connection_string: str, events: int, hold: float) -> tuple[int, int, int]:
    from azure.eventhub.aio import EventHubConsumerClient

    client = EventHubConsumerClient.from_connection_string(connection_string, consumer_group="$Default",
                                                           prefetch=events)
    gc.collect()
    before = rss()
    peak = before
    got = 0

    async def on_batch(partition_context, batch) -> None:  # noqa: ANN001
        nonlocal got, peak
        got += len(batch)
        if got == 1:  # hold the first event: the SDK's buffer fills behind it
            deadline = time.monotonic() + hold
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                peak = max(peak, rss())
        peak = max(peak, rss())

    task = asyncio.ensure_future(client.receive_batch(on_batch, max_batch_size=1, starting_position="-1",
                                                      partition_id="0"))
    deadline = time.monotonic() + hold + 30
    while got < events and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await client.close()
    task.cancel()
    return before, peak, got


def prefetch(events: int, hold: float) -> None:
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(target=endpoint_process, args=(child, events), daemon=True)
    process.start()
    connection_string = parent.recv()
    try:
        before, peak, got = asyncio.run(hold_prefetch(connection_string, events, hold))
    finally:
        parent.send("stop")
        process.join(10)
    per_event = (peak - before) / max(1, events - 1)
    print(f"prefetch: {events} events of 1 MiB, prefetch={events}, max_batch_size=1 ({got} received)")
    print(f"  RSS {before / MIB:.0f} MiB before, peak {peak / MIB:.0f} MiB while the first batch was held: "
          f"+{(peak - before) / MIB:.0f} MiB, {per_event / MIB:.2f} MiB per buffered 1 MiB event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("windows", "prefetch", "both"), default="both")
    parser.add_argument("--prefetch-events", type=int, default=64)
    parser.add_argument("--hold", type=float, default=8.0, help="seconds the first batch is held")
    args = parser.parse_args()
    if args.part in ("windows", "both"):
        windows()
    if args.part in ("prefetch", "both"):
        prefetch(args.prefetch_events, args.hold)


if __name__ == "__main__":
    main()
