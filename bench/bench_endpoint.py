"""Benchmark: how fast the local Event Hubs endpoint serves events to the real async SDK consumer.

    .venv/bin/python bench/bench_endpoint.py [--events N] [--body-kb KB] [--partitions P]
                                             [--batch B] [--prefetch F] [--timeout S] [--profile]

A benchmark, not a test: it asserts nothing, it prints. The endpoint runs in a child process (so
that it does not share the GIL with the consumer) with N events preloaded (default 50,000 bodies
of ~20 KB shaped like ``{"records": [...]}``, spread over the partitions). The parent reads them
all with ``azure.eventhub.aio.EventHubConsumerClient.receive_batch`` (one receiver per partition,
from the start) and prints events/s and MB/s, plus the CPU time the endpoint process used during
the read: when the endpoint's CPU share is well below 100 % of one core while the consumer's is
near it, the endpoint is not the bottleneck. ``--profile`` prints the endpoint's top functions.
Bounded: it stops by itself after ``--timeout`` seconds and reports what it got.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_bodies(body_kb: int, variants: int = 16) -> list[bytes]:
    """A few distinct ~body_kb KB JSON bodies like the diagnostic-log exports."""
    bodies = []
    for v in range(variants):
        records, size, i = [], 0, 0
        while size < body_kb * 1024:
            record = {
                "time": f"2026-01-01T00:00:{i % 60:02d}.000Z",
                "resourceId": "/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/X",
                "operationName": "SMSMessagesOutgoing",
                "category": "SMSOperational",
                "correlationId": f"{v:04d}-{i:08d}",
                "properties": {"DeliveryStatus": "Delivered", "NumberType": "LongCodeNumber", "Country": "US"},
            }
            records.append(record)
            size += len(json.dumps(record)) + 2
            i += 1
        bodies.append(json.dumps({"records": records}).encode())
    return bodies


def endpoint_process(conn: Connection, events: int, body_kb: int, partitions: int, profile: bool) -> None:
    """Child: run the endpoint, preload, answer 'cpu' / 'stop' requests."""
    from acs_sms_devtools.eventhubs import EventHubsEndpoint

    endpoint = EventHubsEndpoint("bench", partitions, max_events_per_partition=events + 1).start()
    bodies = make_bodies(body_kb)
    started = time.perf_counter()
    per_partition = [events // partitions + (1 if p < events % partitions else 0) for p in range(partitions)]
    for pid, count in enumerate(per_partition):
        for chunk in range(0, count, 5000):
            n = min(5000, count - chunk)
            endpoint.publish(str(pid), [bodies[(chunk + i) % len(bodies)] for i in range(n)])
    preload_s = time.perf_counter() - started
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()

        async def enable() -> None:
            profiler.enable()  # profiles the endpoint's loop thread

        endpoint._call(enable())  # noqa: SLF001 - bench-only access
    conn.send({"connection_string": endpoint.connection_string, "preload_s": preload_s,
               "bytes": sum(len(bodies[i % len(bodies)]) for i in range(events))})
    while True:
        request = conn.recv()
        if request == "cpu":
            conn.send(time.process_time())
        elif request == "stop":
            break
    if profiler is not None:
        async def disable() -> None:
            profiler.disable()

        endpoint._call(disable())  # noqa: SLF001
        import pstats

        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(18)
    endpoint.close()
    conn.send("stopped")


async def consume(connection_string: str, events: int, batch: int, prefetch: int, timeout: float) -> dict[str, Any]:
    from azure.eventhub.aio import EventHubConsumerClient

    client = EventHubConsumerClient.from_connection_string(
        connection_string, consumer_group="$Default", prefetch=prefetch
    )
    received = 0
    body_bytes = 0
    first: float | None = None
    done = asyncio.Event()

    async def on_batch(context: Any, batch_events: list[Any]) -> None:
        nonlocal received, body_bytes, first
        if first is None and batch_events:
            first = time.perf_counter()
        for event in batch_events:
            body_bytes += len(next(event.body))
        received += len(batch_events)
        if received >= events:
            done.set()

    started = time.perf_counter()
    cpu_started = time.process_time()
    task = asyncio.create_task(
        client.receive_batch(on_batch, max_batch_size=batch, starting_position="-1", max_wait_time=None)
    )
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except asyncio.TimeoutError:
        print(f"timeout after {timeout}s: stopping with what was received", file=sys.stderr)
    ended = time.perf_counter()
    cpu = time.process_time() - cpu_started
    await client.close()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return {"received": received, "bytes": body_bytes, "first": first, "started": started, "ended": ended,
            "consumer_cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--body-kb", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch", type=int, default=300, help="receive_batch max_batch_size")
    parser.add_argument("--prefetch", type=int, default=300, help="consumer prefetch (link credit)")
    parser.add_argument("--timeout", type=float, default=300.0, help="stop after this many seconds")
    parser.add_argument("--profile", action="store_true", help="print the endpoint's cProfile top functions")
    args = parser.parse_args(argv)

    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(
        target=endpoint_process, args=(child, args.events, args.body_kb, args.partitions, args.profile), daemon=True
    )
    process.start()
    if not parent.poll(args.timeout):
        print("endpoint did not start", file=sys.stderr)
        process.kill()
        return 1
    info = parent.recv()
    print(f"preloaded {args.events} events (~{args.body_kb} KB, {info['bytes'] / 1e6:.0f} MB) over "
          f"{args.partitions} partitions in {info['preload_s']:.1f}s")
    parent.send("cpu")
    server_cpu_start = parent.recv()
    result = asyncio.run(consume(info["connection_string"], args.events, args.batch, args.prefetch, args.timeout))
    parent.send("cpu")
    server_cpu = parent.recv() - server_cpu_start
    parent.send("stop")
    parent.poll(30) and parent.recv()
    process.join(10)

    total = result["ended"] - result["started"]
    streaming = result["ended"] - (result["first"] or result["started"])
    n, mb = result["received"], result["bytes"] / 1e6
    print(f"received {n} events, {mb:.0f} MB of bodies with EventHubConsumerClient(aio).receive_batch "
          f"(max_batch_size={args.batch}, prefetch={args.prefetch})")
    print(f"  wall time {total:.2f}s (incl. connect), streaming {streaming:.2f}s")
    print(f"  throughput: {n / streaming:,.0f} events/s, {mb / streaming:,.1f} MB/s "
          f"(incl. connect: {n / total:,.0f} events/s, {mb / total:,.1f} MB/s)")
    print(f"  CPU: endpoint process {server_cpu:.2f}s ({100 * server_cpu / total:.0f}% of one core), "
          f"consumer process {result['consumer_cpu']:.2f}s ({100 * result['consumer_cpu'] / total:.0f}%)")
    return 0 if n >= args.events else 1


if __name__ == "__main__":
    sys.exit(main())
