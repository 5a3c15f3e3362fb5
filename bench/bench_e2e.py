"""Benchmark: records/s end to end — local Event Hubs endpoint → real async SDK → `Service` → /metrics.

    .venv/bin/python bench/bench_e2e.py [--records N] [--partitions P] [--batch-size B] [--prefetch F]
                                        [--store azurite|memory] [--no-sweep | --sweep BxP,...] [--repeat N]
                                        [--timeout S] [--loop asyncio|uvloop] [--bare-loop asyncio|uvloop]
                                        [--split N]
                                        [--profiler sample|pyinstrument|cprofile|none]

The headline is a ratio: the consumer's streaming rate over a **bare SDK receiver**'s on the same
preloaded data, in the same run (``run_bare``: ``EventHubConsumerClient.receive_batch`` with the same
client and receive settings and the same checkpoint store kind, counting ``len(events)`` and nothing
else). Absolute rates on a shared machine move by 2× from run to run; the ratio of runs made side by
side moves much less. ``--repeat N`` makes N pairs, alternating which side runs first, and prints the
median ratio. ``--split N`` adds N pairs of a prototype that parses in a second process (``run_split``)
against the bare receiver.

A benchmark, not a test: it asserts nothing, it prints. Bounded: every run stops by itself when the
corpus has gone through, or after ``--timeout`` seconds with what it got.

What runs where (2 cores are assumed to be shared):

- **endpoint**: a child process (``multiprocessing`` spawn) running ``EventHubsEndpoint`` (the same
  server as ``acs-sms-consumer emulator``) preloaded with ``generate_corpus(N)`` — the realistic mix,
  50 records per body — round-robin over the partitions. Its CPU (``time.process_time`` in that process) and the bytes
  handed to its sockets (a counter wrapped around its connections' flush) are read before and after each run, so the
  endpoint's own events/s and MB/s served to the SDK are measured, not assumed.
- **checkpoint store**: Azurite (``acs_sms_devtools.azurite``, a node child process; a fresh container
  per run, so every run starts from ``earliest`` again) — or ``--store memory``
  (``InMemoryCheckpointStore``, injected through ``Service(checkpoint_store=...)``).
- **consumer**: in this process: ``consumer.app.Service`` built by ``load_settings`` from a YAML config,
  exactly the production code path of ``acs-sms-consumer run`` (the Blob checkpoint store from the
  connection string, containers created, dead-letter writer). Production settings except:
  ``initial_position: earliest``, the batch/prefetch under test, ``load_balancing_interval_seconds: 2``
  and ``partition_ownership_expiration_interval_seconds: 12`` (the production ratio of 1:6, shorter so
  that a run of a few seconds sees several ownership renewals).
- **scraper**: a child process that GETs ``/healthz`` 20×/s and ``/metrics`` 5×/s over HTTP (one
  keep-alive connection each, like Prometheus and the kubelet), times every request, and reads
  ``acs_consumer_events_total`` from the scraped text; the run ends when it reaches the corpus size.
  Its first non-zero sample and the completion sample time the scraped "streaming" window (±200 ms);
  the consumer's own window (``Window``: before its first body, after its last) is exact. The
  CPU cost of one /metrics render is measured at the end and printed (Prometheus scrapes every 15 s
  or so; 20×/s of /metrics would spend a sizeable share of the consumer's CPU on rendering).

Measured in the consumer process while batches are processed: event-loop lag (a probe task's
``asyncio.sleep(0.01)`` overshoot) and ownership renewals: every ``claim_ownership`` call of the
checkpoint store is recorded (the SDK's load-balancing loop renews owned partitions through it), and
the interval between successive renewals of a partition is compared with the load-balancing interval
(with Azurite: the ``last_modified`` the ownership blob got from the service).

Runs: (1) the timed pairs (consumer, bare) with ``--batch-size``/``--prefetch`` and no profiler (``--repeat N``:
N pairs and the median ratio; the first consumer run printed in full); (2) the consumer again
profiled, for the CPU breakdown by module path — by default with a SIGPROF sampler of process CPU time
(1 ms; ~no overhead, C calls charged to their Python caller; ``--profiler cprofile|pyinstrument`` for
the tracing profilers, which slow call-heavy code several times and so skew the shares): SDK (``azure/eventhub`` incl. ``_pyamqp``; the checkpoint store: ``checkpointstoreblobaio``,
``azure/storage``, ``azure/core``), our code (``consumer/``; built-ins such as ``orjson.loads`` count
for their caller's module; ``prometheus_client``, which our metrics and /metrics call, is shown apart), other (asyncio, aiohttp, …);
(3) unless ``--no-sweep``: a pair for each max_batch_size × prefetch of ``--sweep``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acs_sms_devtools.scrape import prometheus_headers  # noqa: E402

HUB = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOAD_BALANCING_INTERVAL = 2.0
OWNERSHIP_EXPIRATION = 12.0
MAX_WAIT_TIME = 5.0  # eventhub.max_wait_time_seconds (the default; write_config leaves it)
#: /healthz every 50 ms (20×/s); /metrics every 4th tick (5×/s): a render costs milliseconds of CPU
#: of the consumer's loop (measured and printed), so 20 renders/s would tax the run itself.
METRICS_EVERY = 4


# --- /proc readings -------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """user + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- child: the endpoint ----------------------------------------------------------------------------


def endpoint_process(conn: Connection, records: int, partitions: int, seed: int) -> None:
    from acs_sms_devtools.eventhubs import EventHubsEndpoint, server
    from acs_sms_devtools.traffic import generate_corpus

    sent = [0]
    flush = server.Connection.flush

    def counting_flush(self: Any) -> None:  # bytes handed to the sockets (bench-only instrumentation)
        if self.transport is not None and not self.closed:
            sent[0] += sum(map(len, self._out))  # noqa: SLF001
        flush(self)

    server.Connection.flush = counting_flush  # type: ignore[method-assign]
    started = time.perf_counter()
    bodies = generate_corpus(records, 50, seed)
    generated = time.perf_counter() - started
    endpoint = EventHubsEndpoint(HUB, partitions, max_events_per_partition=len(bodies) + 1).start()
    started = time.perf_counter()
    for p in range(partitions):
        endpoint.publish(str(p), bodies[p::partitions])
    conn.send({"connection_string": endpoint.connection_string, "events": len(bodies),
               "bytes": sum(map(len, bodies)), "generate_s": generated,
               "preload_s": time.perf_counter() - started})
    del bodies
    while (request := conn.recv()) != "stop":
        if request == "stats":
            conn.send((time.process_time(), sent[0]))
    endpoint.close()
    conn.send("stopped")


# --- child: the scraper -----------------------------------------------------------------------------


SCRAPE_HEADERS = prometheus_headers(10)


def scraper_process(conn: Connection, port: int, events: int, timeout: float, metrics_every: int) -> None:
    """GET /healthz every 50 ms and /metrics every `metrics_every`-th tick; report when
    acs_consumer_events_total >= events."""
    connections: dict[str, http.client.HTTPConnection] = {}

    def get(path: str) -> tuple[float, bytes]:
        started = time.monotonic()
        for attempt in range(2):
            c = connections.get(path)
            if c is None:
                c = connections[path] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                # /metrics as Prometheus scrapes it (its timeout header): a scrape, so checkpoints follow
                c.request("GET", path, headers=SCRAPE_HEADERS if path == "/metrics" else {})
                response = c.getresponse()
                body = response.read()
                return time.monotonic() - started, body
            except (OSError, http.client.HTTPException):
                c.close()
                connections.pop(path, None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def events_total(text: bytes) -> float:
        total = 0.0
        for line in text.split(b"\n"):
            if line.startswith(b"acs_consumer_events_total"):
                total += float(line.rsplit(b" ", 1)[1])
        return total

    latencies: dict[str, list[float]] = {"/metrics": [], "/healthz": []}
    first = None
    done = None
    last_seen = 0.0
    deadline = time.monotonic() + timeout
    tick = time.monotonic()
    conn.send("ready")
    ticks = 0
    while time.monotonic() < deadline:
        try:
            if ticks % metrics_every == 0:
                took, body = get("/metrics")
                at = time.monotonic()
                latencies["/metrics"].append(took)
                last_seen = events_total(body)
                if first is None and last_seen > 0:
                    first = at
                if last_seen >= events:
                    done = at
                    break
            ticks += 1
            took, _ = get("/healthz")
            latencies["/healthz"].append(took)
        except (OSError, http.client.HTTPException):
            pass
        tick += 0.05
        pause = tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            tick = time.monotonic()
    conn.send({"first": first, "done": done, "events_seen": last_seen, "latencies": latencies})


# --- the consumer (this process) -------------------------------------------------------------------


class Renewals:
    """Records every claim_ownership of the checkpoint store (the SDK's claims and renewals)."""

    def __init__(self) -> None:
        self.calls: dict[str, list[tuple[float, float | None]]] = defaultdict(list)  # pid -> (monotonic, last_modified)
        self.durations: list[float] = []
        self.active = False

    def wrap(self, cls: Any) -> None:
        original = cls.claim_ownership
        if getattr(original, "_bench_wrapped", False):
            return
        renewals = self

        async def claim_ownership(store: Any, ownership_list: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            result = await original(store, ownership_list, **kwargs)
            if renewals.active:
                renewals.durations.append(time.monotonic() - started)
                for item in result or ():
                    renewals.calls[item["partition_id"]].append((started, item.get("last_modified_time")))
            return result

        claim_ownership._bench_wrapped = True  # type: ignore[attr-defined]
        cls.claim_ownership = claim_ownership

    def summary(self, interval: float) -> dict[str, Any]:
        gaps, blob_gaps = [], []
        for items in self.calls.values():
            for (t0, m0), (t1, m1) in zip(items, items[1:]):
                gaps.append(t1 - t0)
                if m0 is not None and m1 is not None:
                    blob_gaps.append(m1 - m0)
        late = [g for g in gaps if g > interval * 1.5]
        return {"renewals": sum(len(v) for v in self.calls.values()), "gaps": gaps, "blob_gaps": blob_gaps,
                "late": late, "claim_durations": self.durations}


def write_config(path: Path, connection_string: str, storage: str | None, container: str, batch: int,
                 prefetch: int) -> Path:
    import yaml

    config: dict[str, Any] = {
        "eventhub": {
            "connection_string": connection_string,
            "name": HUB,
            "initial_position": "earliest",
            "max_batch_size": batch,
            "prefetch": prefetch,
            "load_balancing_interval_seconds": LOAD_BALANCING_INTERVAL,
            "partition_ownership_expiration_interval_seconds": OWNERSHIP_EXPIRATION,
        },
        "checkpoint_store": {"connection_string": storage or "UseDevelopmentStorage=true", "container": container},
        "http": {"host": "127.0.0.1", "port": 0},
        "logging": {"level": "WARNING"},
    }
    if storage is None:
        config["deadletter"] = {"enabled": False}
    path.write_text(yaml.safe_dump(config))
    return path


class Window:
    """The streaming window, measured in this process: wraps `Pipeline.process` of the consumer and
    notes the wall clock before the first body and after each one, and the process CPU before the
    first body and after the last of the corpus (`events` bodies). One clock read per event, and
    exact where the scraper's window is ±200 ms."""

    def __init__(self, process: Any, events: int) -> None:
        self._process = process
        self._events = events
        self.calls = 0
        self.records = 0
        self.first: tuple[float, float] | None = None  # (perf_counter, process_time) before the first body
        self.last = float("nan")  # perf_counter after the latest body
        self.cpu_done = float("nan")  # process_time after the corpus's last body

    def __call__(self, body: bytes, now: float, context: Any = None) -> Any:
        if self.first is None:
            self.first = (time.perf_counter(), time.process_time())
        result = self._process(body, now, context)
        self.records += result.records
        self.calls += 1
        self.last = time.perf_counter()
        if self.calls == self._events:
            self.cpu_done = time.process_time()
        return result


async def run_consumer(config: Path, memory_store: bool, endpoint: Connection, azurite_pid: int | None,
                       events: int, timeout: float, renewals: Renewals, profile: str | None) -> dict[str, Any]:
    from consumer.app import Service
    from consumer.config import load_settings

    store = None
    if memory_store:
        from acs_sms_devtools.memory_store import InMemoryCheckpointStore

        store = InMemoryCheckpointStore()
        renewals.wrap(InMemoryCheckpointStore)
    else:
        from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore

        renewals.wrap(BlobCheckpointStore)
    renewals.calls.clear()
    renewals.durations.clear()
    settings = load_settings(str(config))
    service = Service(settings, checkpoint_store=store)
    window = service.pipeline.process = Window(service.pipeline.process, events)  # type: ignore[method-assign]

    profiler: Any = None
    if profile == "sample":
        profiler = Sampler()
    elif profile == "cprofile":
        import cProfile

        profiler = cProfile.Profile(time.process_time)
    elif profile == "pyinstrument":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")

    endpoint.send("stats")
    ep_cpu0, ep_bytes0 = endpoint.recv()
    az_cpu0 = proc_cpu(azurite_pid) if azurite_pid else 0.0
    wall0, cpu0 = time.monotonic(), time.process_time()
    renewals.active = True
    if profiler is not None:
        profiler.enable() if profile == "cprofile" else profiler.start()  # type: ignore[func-returns-value]
    serving = asyncio.create_task(service.serve())
    while service.http_port is None:
        if serving.done():
            await serving
            raise RuntimeError("service stopped before serving http")
        await asyncio.sleep(0.005)

    lags: list[tuple[float, float]] = []  # (started, overshoot)
    probing = True

    async def probe() -> None:
        while probing:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append((t, time.monotonic() - t - 0.01))

    probe_task = asyncio.create_task(probe())
    gc_pauses: list[tuple[int, float]] = []  # (generation, seconds) of every collection during the run
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], time.perf_counter() - gc_started[0]))

    gc.callbacks.append(on_gc)
    parent, child = mp.Pipe()
    scraper = mp.get_context("spawn").Process(target=scraper_process, args=(child, service.http_port, events, timeout, METRICS_EVERY),
                                               daemon=True)
    scraper.start()
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[Any] = loop.create_future()

    def readable() -> None:
        if not arrived.done():
            arrived.set_result(parent.recv())

    loop.add_reader(parent.fileno(), readable)
    assert (await arrived) == "ready"
    arrived = loop.create_future()
    result = await arrived
    loop.remove_reader(parent.fileno())
    wall1, cpu1 = time.monotonic(), time.process_time()
    endpoint.send("stats")
    ep_cpu1, ep_bytes1 = endpoint.recv()
    az_cpu1 = proc_cpu(azurite_pid) if azurite_pid else 0.0
    if profiler is not None:
        profiler.disable() if profile == "cprofile" else profiler.stop()  # type: ignore[func-returns-value]
    renewals.active = False
    probing = False
    await probe_task
    gc.callbacks.remove(on_gc)
    render_cpu = time.process_time()
    for _ in range(5):
        rendered = service.metrics.render()
    render_cpu = (time.process_time() - render_cpu) / 5
    service.request_stop()
    exit_code = await serving
    scraper.join(10)
    return {"wall": wall1 - wall0, "cpu": cpu1 - cpu0, "started": wall0, "ended": wall1, "exit_code": exit_code,
            "endpoint_cpu": ep_cpu1 - ep_cpu0, "endpoint_bytes": ep_bytes1 - ep_bytes0,
            "azurite_cpu": az_cpu1 - az_cpu0, "lags": lags, "render_cpu": render_cpu, "gc": gc_pauses,
            "render_bytes": len(rendered), "render_lines": rendered.count(b"\n"), "scrape": result, "profiler": profiler,
            "window": window,
            "renewals": renewals.summary(LOAD_BALANCING_INTERVAL)}


# --- the bare SDK receiver (this process) ------------------------------------------------------------


async def sdk_client(connection_string: str, storage: str | None, container: str) -> tuple[Any, Any]:
    """The SDK's async consumer client as the consumer configures it (greedy load balancing, the bench's
    intervals), on an in-memory checkpoint store (`storage` None) or a new blob container; and the blob
    store to close after it (None for the in-memory one)."""
    from azure.eventhub import LoadBalancingStrategy
    from azure.eventhub.aio import EventHubConsumerClient

    if storage is None:
        from acs_sms_devtools.memory_store import InMemoryCheckpointStore

        store: Any = InMemoryCheckpointStore()
    else:
        from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
        from azure.storage.blob.aio import ContainerClient

        async with ContainerClient.from_connection_string(storage, container) as created:
            await created.create_container()
        store = BlobCheckpointStore.from_connection_string(storage, container)
    client = EventHubConsumerClient.from_connection_string(
        connection_string, consumer_group="$Default", eventhub_name=HUB, checkpoint_store=store,
        load_balancing_strategy=LoadBalancingStrategy.GREEDY, load_balancing_interval=LOAD_BALANCING_INTERVAL,
        partition_ownership_expiration_interval=OWNERSHIP_EXPIRATION)
    return client, (store if storage is not None else None)


async def close_receiver(client: Any, task: asyncio.Task[Any], store: Any) -> None:
    """Close a bare receiver's client, end its receive task, close its checkpoint store (if any)."""
    await client.close()
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
    if store is not None:
        await store.close()


async def run_bare(connection_string: str, storage: str | None, container: str, events: int, records: int,
                   batch: int, prefetch: int, max_wait_time: float, timeout: float,
                   profile: bool = False) -> dict[str, Any]:
    """What the SDK alone delivers: `EventHubConsumerClient.receive_batch` with the consumer's client and
    receive settings (same checkpoint store kind, load balancing, prefetch, max_batch_size, max_wait_time,
    track_last_enqueued_event_properties) and a callback that only counts events: no body read, no
    checkpoint written. Timed like the consumer's `Window`: first batch in → last event counted."""
    client, store = await sdk_client(connection_string, storage, container)
    received = 0
    first: tuple[float, float] | None = None
    last = float("nan")
    cpu_done = float("nan")
    done = asyncio.Event()

    async def on_batch(_context: Any, batch_events: list[Any]) -> None:
        nonlocal received, first, last, cpu_done
        if not batch_events:
            return
        if first is None:
            first = (time.perf_counter(), time.process_time())
        received += len(batch_events)
        last = time.perf_counter()
        if received >= events and not done.is_set():
            cpu_done = time.process_time()
            done.set()

    started = time.perf_counter()
    sampler = Sampler() if profile else None
    cpu0 = time.process_time()
    if sampler is not None:
        sampler.start()
    task = asyncio.create_task(client.receive_batch(
        on_batch, max_batch_size=batch, max_wait_time=max_wait_time, prefetch=prefetch,
        track_last_enqueued_event_properties=True, starting_position="-1"))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        pass
    if sampler is not None:
        sampler.stop()
    cpu = time.process_time() - cpu0
    await close_receiver(client, task, store)
    per_event = records / events
    window_s = max(last - first[0], 1e-9) if first else float("nan")
    return {"complete": done.is_set(), "events": received, "records": received * per_event,
            "window_s": window_s, "records_s_window": received * per_event / window_s,
            "cpu_per_record_window_us": 1e6 * (cpu_done - first[1]) / max(received * per_event, 1) if first else float("nan"),
            "total": time.perf_counter() - started, "profiler": sampler, "cpu": cpu}


# --- prototype: parsing in a second process ---------------------------------------------------------


def parser_process(conn: Connection, events: int) -> None:
    """Child of `run_split`: the pure pipeline (`Pipeline.process`, fresh state, the default settings)
    on every body it is sent, a batch (partition, [(sequence_number, offset, enqueued, body)]) per
    message; tells the parent when `events` bodies have gone through."""
    from consumer.config import PipelineSettings
    from consumer.metrics import DomainMetrics
    from consumer.pipeline import EventContext, Pipeline

    settings = PipelineSettings()
    pipeline = Pipeline(settings, DomainMetrics(settings.buckets))
    conn.send("ready")
    processed = records = 0
    cpu0 = None
    while processed < events:
        message = conn.recv()
        if message == "stop":
            break
        if cpu0 is None:
            cpu0 = time.process_time()
        partition, batch = message
        now = time.time()
        for sequence_number, offset, enqueued, body in batch:
            records += pipeline.process(body, now, EventContext(partition, sequence_number, offset, enqueued)).records
        processed += len(batch)
    conn.send({"events": processed, "records": records, "cpu": time.process_time() - (cpu0 or 0.0)})


async def run_split(connection_string: str, storage: str | None, container: str, events: int, records: int,
                    batch: int, prefetch: int, max_wait_time: float, timeout: float) -> dict[str, Any]:
    """A prototype of the design that parses in a second process per replica: `run_bare`'s receiver
    (same settings) reads each event's body and position and sends the batch to a `parser_process`
    child over a pipe; timed from the first batch in to the child's report that the last body went
    through the pipeline. No checkpoints, no /metrics (the pipeline's counts stay in the child): it
    measures what the receiving process and the parsing process can carry side by side."""
    from consumer.eventhub import body_bytes, enqueued_seconds

    parent, child = mp.Pipe()
    parser = mp.get_context("spawn").Process(target=parser_process, args=(child, events), daemon=True)
    parser.start()
    assert parent.recv() == "ready"
    client, store = await sdk_client(connection_string, storage, container)
    first: tuple[float, float] | None = None
    sent = 0
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[Any] = loop.create_future()
    loop.add_reader(parent.fileno(), lambda: finished.done() or finished.set_result(parent.recv()))

    async def on_batch(context: Any, batch_events: list[Any]) -> None:
        nonlocal first, sent
        if not batch_events:
            return
        if first is None:
            first = (time.perf_counter(), time.process_time())
        parent.send((context.partition_id, [(e.sequence_number, str(e.offset), enqueued_seconds(e), body_bytes(e))
                                            for e in batch_events]))
        sent += len(batch_events)

    task = asyncio.create_task(client.receive_batch(
        on_batch, max_batch_size=batch, max_wait_time=max_wait_time, prefetch=prefetch,
        track_last_enqueued_event_properties=True, starting_position="-1"))
    try:
        report = await asyncio.wait_for(finished, timeout)
    except TimeoutError:
        report = None
    ended = (time.perf_counter(), time.process_time())
    loop.remove_reader(parent.fileno())
    if report is None:
        parent.send("stop")
        report = parent.recv() if parent.poll(10) else {"events": 0, "records": 0, "cpu": float("nan")}
    parser.join(10)
    await close_receiver(client, task, store)
    window_s = max(ended[0] - first[0], 1e-9) if first else float("nan")
    done = report["records"]
    return {"complete": report["events"] >= events, "records_s_window": done / window_s, "window_s": window_s,
            "receiver_cpu_us": 1e6 * (ended[1] - first[1]) / max(done, 1) if first else float("nan"),
            "parser_cpu_us": 1e6 * report["cpu"] / max(done, 1)}


# --- profile breakdown ------------------------------------------------------------------------------


def category(filename: str, ours: str, idle_selector: bool = False) -> str | None:
    if filename == "~" or filename.startswith("<"):
        return None  # built-in: charged to its callers
    path = filename.replace("\\", "/")
    if path.endswith("/selectors.py"):
        return IDLE if idle_selector else "other: asyncio"
    if "azure/eventhub/_pyamqp" in path:
        return "SDK: azure.eventhub._pyamqp"
    if "checkpointstoreblob" in path or "azure/storage" in path or "azure/core" in path:
        return "SDK: checkpoint store (blob, azure-core)"
    if "azure/eventhub" in path:
        return "SDK: azure.eventhub (client, processor)"
    if path.startswith(ours):
        return "ours: consumer/"
    if "prometheus_client" in path:
        return "ours (library): prometheus_client"
    if "/asyncio/" in path:
        return "other: asyncio"
    if "aiohttp" in path or "multidict" in path or "yarl" in path:
        return "other: aiohttp"
    return "other: rest"


IDLE = "idle: waiting in epoll"


class Sampler:
    """A CPU-time sampling profiler with next to no overhead: SIGPROF every `interval` s of process CPU
    (``setitimer(ITIMER_PROF)``), the handler counts the innermost Python frame of the main thread. A
    signal is handled between bytecodes, so time in a C call (``orjson.loads``, a socket send) lands on
    the Python function that made it; time waiting in epoll uses no CPU and is not sampled."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.samples: dict[tuple[str, int, str], int] = defaultdict(int)
        self.ours_by_file: list[tuple[str, float]] = []

    def _on_signal(self, _signum: int, frame: Any) -> None:
        if frame is not None:
            code = frame.f_code
            self.samples[(code.co_filename, code.co_firstlineno, code.co_name)] += 1

    def start(self) -> None:
        import signal

        signal.signal(signal.SIGPROF, self._on_signal)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        import signal

        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)

    def breakdown(self, cpu: float) -> tuple[dict[str, float], list[tuple[float, str]]]:
        """Shares of the samples, scaled to the process CPU `cpu` (the kernel delivers ITIMER_PROF at
        its tick, e.g. every 4 ms at HZ=250, whatever the interval asked for)."""
        import consumer

        ours = str(Path(consumer.__file__).resolve().parent) + "/"
        totals: dict[str, float] = defaultdict(float)
        top = []
        per_sample = cpu / max(1, sum(self.samples.values()))
        for (filename, line, name), n in self.samples.items():
            seconds = n * per_sample
            totals[category(filename, ours) or "other: rest"] += seconds
            top.append((seconds, f"{Path(filename).name}:{line}({name})"))
        top.sort(reverse=True)
        files: dict[str, float] = defaultdict(float)
        for (filename, _line, _name), n in self.samples.items():
            if filename.startswith(ours):
                files[filename[len(ours):]] += n * per_sample
        self.ours_by_file = sorted(files.items(), key=lambda kv: -kv[1])
        return dict(totals), top[:15]


def pyinstrument_breakdown(profiler: Any) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Self time by module path from pyinstrument's sampled call tree (wall clock; epoll waits apart)."""
    import consumer

    ours = str(Path(consumer.__file__).resolve().parent) + "/"
    totals: dict[str, float] = defaultdict(float)
    functions: dict[str, float] = defaultdict(float)
    stack = [(profiler.last_session.root_frame(), "other: rest", "root")]
    while stack:
        frame, inherited, name = stack.pop()  # a synthetic frame ([self], [await]) counts for its parent
        path = frame.file_path
        cat = (category(path, ours, idle_selector=True) if path else None) or inherited
        own = frame.time - sum(child.time for child in frame.children)
        totals[cat] += own
        functions[name] += own
        stack.extend((child, cat, f"{Path(child.file_path).name}:{child.line_no}({child.function})"
                       if child.file_path else name) for child in frame.children)
    top = sorted(((t, name) for name, t in functions.items() if "selectors.py" not in name), reverse=True)
    return dict(totals), top[:15]


def breakdown(profiler: Any) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Own CPU time by module path from cProfile; a built-in's time is shared among its callers."""
    import pstats

    import consumer

    ours = str(Path(consumer.__file__).resolve().parent) + "/"
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = defaultdict(float)
    top: list[tuple[float, str]] = []
    for (filename, line, name), (_cc, _nc, tt, _ct, callers) in stats.items():
        cat = category(filename, ours)
        top.append((tt, f"{Path(filename).name}:{line}({name})" if filename != "~" else name))
        if cat is not None:
            totals[cat] += tt
            continue
        weight = sum(v[2] for v in callers.values())
        if not callers or weight <= 0:
            totals["other: rest"] += tt
            continue
        for (cfile, _cl, _cn), v in callers.items():
            totals[category(cfile, ours) or "other: rest"] += tt * v[2] / weight
    top.sort(reverse=True)
    return dict(totals), top[:15]


# --- reporting --------------------------------------------------------------------------------------


def summarise(run: dict[str, Any], records: int, events: int, body_bytes: int) -> dict[str, Any]:
    scrape = run["scrape"]
    done = scrape["done"]
    first = scrape["first"] or run["started"]
    end = done or run["ended"]
    seen = scrape["events_seen"]
    fraction = min(1.0, seen / events) if events else 0.0
    total = end - run["started"]
    streaming = max(end - first, 1e-9)
    lags = [lag for t, lag in run["lags"] if first <= t <= end]  # while batches are processed
    window = run["window"]
    if window.first is not None and window.records:
        window_s = max(window.last - window.first[0], 1e-9)
        window_cpu = window.cpu_done - window.first[1]  # NaN when the corpus did not go through
    else:
        window_s = window_cpu = float("nan")
    return {
        "window_records": window.records, "window_s": window_s, "window_cpu": window_cpu,
        "records_s_window": window.records / window_s, "cpu_per_record_window_us": 1e6 * window_cpu / max(window.records, 1),
        "complete": done is not None, "events": seen, "records": records * fraction,
        "total": total, "streaming": streaming,
        "records_s": records * fraction / total, "events_s": seen / total,
        "records_s_streaming": records * fraction / streaming, "events_s_streaming": seen / streaming,
        "cpu": run["cpu"], "cpu_share": run["cpu"] / run["wall"],
        "cpu_per_record_us": 1e6 * run["cpu"] / max(records * fraction, 1),
        "endpoint_cpu": run["endpoint_cpu"], "endpoint_bytes": run["endpoint_bytes"],
        "azurite_cpu": run["azurite_cpu"], "wall": run["wall"],
        "lag_p50": percentile(lags, 0.5), "lag_p99": percentile(lags, 0.99), "lag_max": max(lags, default=float("nan")),
        "lag_n": len(lags), "latencies": scrape["latencies"], "renewals": run["renewals"],
        "body_mb": body_bytes * fraction / 1e6, "render_cpu": run["render_cpu"],
        "render_bytes": run["render_bytes"], "render_lines": run["render_lines"], "gc": run["gc"],
    }


def ms(x: float) -> str:
    return f"{1000 * x:.1f}"


def print_run(title: str, s: dict[str, Any]) -> None:
    print(f"\n== {title}")
    if not s["complete"]:
        print(f"  INCOMPLETE: timed out with {s['events']:.0f} events seen")
    print(f"  end to end: {s['records']:,.0f} records / {s['events']:,.0f} events in {s['total']:.2f}s wall from "
          f"start-up (connect, ownership claims), {s['streaming']:.2f}s from the first event counted to the last")
    print(f"    records/s: {s['records_s']:,.0f} incl. start-up, {s['records_s_streaming']:,.0f} streaming "
          "(scraped: first non-zero to complete /metrics, ±200 ms)")
    print(f"    streaming, timed in the consumer (first body in → last record counted): {s['records_s_window']:,.0f} "
          f"records/s over {s['window_s']:.2f}s; {s['cpu_per_record_window_us']:.1f} µs CPU/record "
          f"({100 * s['window_cpu'] / s['window_s']:.0f}% of one core)")
    print(f"    events/s:  {s['events_s']:,.0f} incl. start-up, {s['events_s_streaming']:,.0f} streaming "
          f"({s['body_mb'] / s['streaming']:.1f} MB/s of bodies)")
    print(f"    consumer CPU {s['cpu']:.2f}s = {100 * s['cpu_share']:.0f}% of one core over the run, "
          f"{s['cpu_per_record_us']:.1f} µs CPU/record → CPU-bound ceiling {1e6 / s['cpu_per_record_us']:,.0f} records/s")
    ep = s["endpoint_cpu"]
    print(f"  endpoint (own process): CPU {ep:.2f}s = {100 * ep / s['wall']:.0f}% of one core; served "
          f"{s['endpoint_bytes'] / 1e6:.0f} MB to the SDK = {s['endpoint_bytes'] / 1e6 / s['streaming']:.1f} MB/s, "
          f"{s['events_s_streaming']:,.0f} events/s; its own capacity at that CPU: "
          f"{s['events'] / max(ep, 1e-9):,.0f} events/s, {s['endpoint_bytes'] / 1e6 / max(ep, 1e-9):,.0f} MB/s per core")
    if s["azurite_cpu"]:
        print(f"  azurite (own process): CPU {s['azurite_cpu']:.2f}s = {100 * s['azurite_cpu'] / s['wall']:.0f}% of one core")
    for path, values in s["latencies"].items():
        print(f"  GET {path:9s} n={len(values):4d}  p50 {ms(percentile(values, 0.5))} ms  "
              f"p99 {ms(percentile(values, 0.99))} ms  max {ms(max(values, default=float('nan')))} ms")
    print(f"  one /metrics render at the end: {ms(s['render_cpu'])} ms CPU, {s['render_bytes'] / 1e3:.0f} KB, "
          f"{s['render_lines']} lines (20 renders/s would take {100 * 20 * s['render_cpu']:.0f}% of a core)")
    print(f"  event-loop lag (sleep(0.01) overshoot) n={s['lag_n']}  p50 {ms(s['lag_p50'])} ms  "
          f"p99 {ms(s['lag_p99'])} ms  max {ms(s['lag_max'])} ms")
    by_gen = {g: [p for gen, p in s["gc"] if gen == g] for g in (0, 1, 2)}
    print("  garbage collector pauses (whole run): " + ", ".join(
        f"gen{g} {len(v)}× max {ms(max(v, default=0.0))} ms total {ms(sum(v))} ms" for g, v in by_gen.items()))
    r = s["renewals"]
    gaps, blob_gaps = r["gaps"], r["blob_gaps"]
    line = (f"  ownership claims/renewals: {r['renewals']} (load_balancing_interval {LOAD_BALANCING_INTERVAL:g}s, "
            f"expiration {OWNERSHIP_EXPIRATION:g}s); interval between renewals of a partition ")
    if gaps:
        line += f"max {max(gaps):.2f}s (median {statistics.median(gaps):.2f}s)"
        if blob_gaps:
            line += f", ownership blob last_modified interval max {max(blob_gaps):.2f}s"
        line += f"; claim call max {ms(max(r['claim_durations']))} ms"
        line += f"; late (> 1.5 × interval): {len(r['late'])}"
    else:
        line += "n/a (run shorter than one load-balancing interval)"
    print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="corpus size in records (50 per body)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=300, help="eventhub.max_batch_size")
    parser.add_argument("--prefetch", type=int, default=600, help="eventhub.prefetch")
    parser.add_argument("--store", choices=("azurite", "memory"), default="azurite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0, help="per run: stop after this many seconds")
    parser.add_argument("--profiler", choices=("sample", "pyinstrument", "cprofile", "none"), default="sample",
                        help="profiled run: SIGPROF sampling of CPU time (default, ~no overhead), pyinstrument "
                        "(pip install it; hooks every call) or cProfile (CPU clock; per-call overhead)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the batch size × prefetch table")
    parser.add_argument("--sweep", default="100x300,100x1000,300x300,300x600,300x1000,1000x1000,1000x3000",
                        help="max_batch_size x prefetch pairs of the settings table, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="pairs of timed runs (consumer, bare SDK; order "
                        "alternating), each printed on one line, then the median ratio: absolute rates vary from run "
                        "to run on a shared machine, their ratio much less")
    parser.add_argument("--split", type=int, default=0, metavar="N",
                        help="also N pairs of the parse-in-a-second-process prototype (run_split) and the bare SDK")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="event loop of the consumer (uvloop: pip install uvloop)")
    parser.add_argument("--bare-loop", choices=("asyncio", "uvloop"), default=None,
                        help="event loop of the bare receiver (default: --loop); `--loop uvloop --bare-loop asyncio` "
                        "measures what uvloop gives the consumer against the same reference as `--loop asyncio`")
    args = parser.parse_args(argv)
    sweep = [] if args.no_sweep else [tuple(int(x) for x in item.split("x")) for item in args.sweep.split(",")]
    args.bare_loop = args.bare_loop or args.loop
    from consumer.app import loop_factory

    def arun(coro: Any, loop: str = args.loop) -> Any:
        with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
            return runner.run(coro)

    print(f"# bench_e2e  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}  cpus {os.cpu_count()}  "
          f"python {sys.version.split()[0]}")
    parent, child = mp.Pipe()
    endpoint = mp.get_context("spawn").Process(target=endpoint_process,
                                               args=(child, args.records, args.partitions, args.seed), daemon=True)
    endpoint.start()
    if not parent.poll(300):
        print("endpoint did not start", file=sys.stderr)
        endpoint.kill()
        return 1
    info = parent.recv()
    events, body_bytes = info["events"], info["bytes"]
    print(f"endpoint: child process {endpoint.pid} (EventHubsEndpoint, as `acs-sms-consumer emulator`), "
          f"{args.partitions} partitions, preloaded {args.records:,} records in {events:,} events "
          f"({body_bytes / 1e6:.0f} MB of bodies, {body_bytes / events / 1e3:.1f} KB/event) — corpus generated in "
          f"{info['generate_s']:.1f}s, stored in {info['preload_s']:.1f}s")

    azurite = None
    storage = None
    if args.store == "azurite":
        from acs_sms_devtools.azurite import Azurite

        azurite = Azurite().start()
        storage = azurite.connection_string
        print(f"checkpoint store: Azurite blob (node child process {azurite._process.pid}), "  # noqa: SLF001
              "BlobCheckpointStore via the production config path; a fresh container per run")
    else:
        print("checkpoint store: InMemoryCheckpointStore injected into Service (no storage process)")
    print("consumer: consumer.app.Service in this process (load_settings → Service.serve), scraper child process "
          "GETting /healthz 20×/s and /metrics 5×/s")

    renewals = Renewals()
    tmp = tempfile.TemporaryDirectory(prefix="bench-e2e-")
    counter = 0

    def one(batch: int, prefetch: int, profile: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        nonlocal counter
        counter += 1
        config = write_config(Path(tmp.name) / f"run{counter}.yaml", info["connection_string"], storage,
                              f"bench{counter}-{os.getpid()}", batch, prefetch)
        run = arun(run_consumer(config, azurite is None, parent,
                                       azurite._process.pid if azurite else None,  # noqa: SLF001
                                       events, args.timeout, renewals, profile))
        return run, summarise(run, args.records, events, body_bytes)

    def bare(batch: int, prefetch: int, profile: bool = False) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        return arun(run_bare(info["connection_string"], storage, f"bare{counter}-{os.getpid()}", events,
                             args.records, batch, prefetch, MAX_WAIT_TIME, args.timeout, profile), args.bare_loop)

    def split(batch: int, prefetch: int) -> dict[str, Any]:
        nonlocal counter
        counter += 1
        return arun(run_split(info["connection_string"], storage, f"split{counter}-{os.getpid()}", events,
                              args.records, batch, prefetch, MAX_WAIT_TIME, args.timeout), args.bare_loop)

    def pair(n: int, batch: int, prefetch: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """One consumer run and one bare run, in alternating order (drift hits both sides alike)."""
        if n % 2:
            b = bare(batch, prefetch)
            c = one(batch, prefetch, None)[1]
        else:
            c = one(batch, prefetch, None)[1]
            b = bare(batch, prefetch)
        return c, b

    def ratio(c: dict[str, Any], b: dict[str, Any]) -> float:
        return c["records_s_window"] / b["records_s_window"]

    try:
        print(f"\n== consumer / bare SDK receiver, max_batch_size={args.batch_size}, prefetch={args.prefetch}, "
              f"{args.repeat} pair(s), order alternating; streaming records/s timed in-process (first body in → "
              "last counted)")
        print(f"  bare: EventHubConsumerClient.receive_batch counting len(events) only, same client settings "
              f"(checkpoint store: {args.store}, no checkpoint written; prefetch, max_batch_size, max_wait_time, "
              f"track_last_enqueued_event_properties, load balancing); event loop: consumer {args.loop}, "
              f"bare {args.bare_loop}")
        runs, bares, ratios = [], [], []
        for n in range(args.repeat):
            c, b = pair(n, args.batch_size, args.prefetch)
            runs.append(c)
            bares.append(b)
            ratios.append(ratio(c, b))
            print(f"  pair {n + 1}: consumer {c['records_s_window']:9,.0f} ({c['cpu_per_record_window_us']:4.1f} µs "
                  f"CPU/record)  bare {b['records_s_window']:9,.0f} ({b['cpu_per_record_window_us']:4.1f} µs)  "
                  f"ratio {ratios[-1]:.2f}" + ("" if c["complete"] and b["complete"] else "  (incomplete)"))
        s = runs[0]
        print_run(f"first consumer run in full: max_batch_size={args.batch_size}, prefetch={args.prefetch} "
                  "(no profiler)", s)
        print(f"\n== RATIO consumer / bare SDK: median {statistics.median(ratios):.2f} of {len(ratios)} "
              f"(range {min(ratios):.2f} – {max(ratios):.2f}); consumer median "
              f"{statistics.median(r['records_s_window'] for r in runs):,.0f} records/s, bare median "
              f"{statistics.median(r['records_s_window'] for r in bares):,.0f} records/s; consumer µs CPU/record "
              f"median {statistics.median(r['cpu_per_record_window_us'] for r in runs):.1f}")
        cpu_ratios = [b["cpu_per_record_window_us"] / c["cpu_per_record_window_us"] for c, b in zip(runs, bares)]
        print(f"   CPU ratio (bare µs CPU/record ÷ consumer µs CPU/record, what the ratio becomes when each side "
              f"has a core to itself): median {statistics.median(cpu_ratios):.2f} "
              f"(range {min(cpu_ratios):.2f} – {max(cpu_ratios):.2f})")
        s = {**s, "complete": all(r["complete"] for r in runs + bares)}
        if args.split:
            print("\n== prototype: parsing in a second process (run_split: the bare receiver reads each body and "
                  "sends the batch over a pipe to a child running Pipeline.process); pairs with the bare SDK, "
                  "order alternating")
            split_ratios = []
            for n in range(args.split):
                if n % 2:
                    b = bare(args.batch_size, args.prefetch)
                    p = split(args.batch_size, args.prefetch)
                else:
                    p = split(args.batch_size, args.prefetch)
                    b = bare(args.batch_size, args.prefetch)
                split_ratios.append(p["records_s_window"] / b["records_s_window"])
                print(f"  pair {n + 1}: split {p['records_s_window']:9,.0f} (receiver {p['receiver_cpu_us']:4.1f} µs "
                      f"CPU/record, parser {p['parser_cpu_us']:4.1f} µs)  bare {b['records_s_window']:9,.0f}  "
                      f"ratio {split_ratios[-1]:.2f}" + ("" if p["complete"] and b["complete"] else "  (incomplete)"))
            print(f"  RATIO split / bare SDK: median {statistics.median(split_ratios):.2f} of {len(split_ratios)}")
        if args.profiler != "none":
            run, sp = one(args.batch_size, args.prefetch, args.profiler)
            if args.profiler == "sample":
                totals, top = run["profiler"].breakdown(sp["cpu"])
                how = (f"SIGPROF sampling of process CPU, {sum(run['profiler'].samples.values())} samples scaled to "
                       "the process CPU; C calls charged to their Python caller")
            elif args.profiler == "cprofile":
                totals, top = breakdown(run["profiler"])
                how = "cProfile, CPU clock — per-call overhead inflates call-heavy code (prometheus_client, pipeline)"
            else:
                totals, top = pyinstrument_breakdown(run["profiler"])
                how = "pyinstrument, sampling every 0.5 ms of wall clock, epoll waits shown apart"
            idle = totals.pop(IDLE, 0.0)
            total = sum(totals.values())
            print(f"\n== CPU breakdown ({how}); same settings, profiled run "
                  f"{sp['records_s_streaming']:,.0f} records/s streaming")
            print(f"  profiled time {total:.2f}s (idle in epoll, not counted: {idle:.2f}s) "
                  f"of a {sp['wall']:.2f}s run; process CPU {sp['cpu']:.2f}s")
            groups: dict[str, float] = defaultdict(float)
            for name, value in sorted(totals.items(), key=lambda kv: -kv[1]):
                print(f"    {name:42s} {value:7.2f}s  {100 * value / total:5.1f}%  "
                      f"{1e6 * value / max(sp['window_records'], 1):5.2f} µs/record")
                groups[name.split(":")[0].split(" (")[0]] += value
            print("  summary: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in
                                            sorted(groups.items(), key=lambda kv: -kv[1])))
            if args.profiler == "sample":
                b = bare(args.batch_size, args.prefetch, profile=True)
                bare_totals, _ = b["profiler"].breakdown(b["cpu"])
                bare_totals.pop(IDLE, None)
                print(f"  the bare SDK receiver, profiled the same way ({b['records_s_window']:,.0f} records/s, "
                      f"process CPU {b['cpu']:.2f}s from start-up): " + ", ".join(
                          f"{name} {1e6 * value / max(b['records'], 1):.2f} µs/record"
                          for name, value in sorted(bare_totals.items(), key=lambda kv: -kv[1]))
                      + f"; total {1e6 * b['cpu'] / max(b['records'], 1):.2f} µs/record")
                print("  ours by file: " + ", ".join(f"{name} {100 * t / total:.1f}%"
                                                    for name, t in run["profiler"].ours_by_file[:8]))
            print("  top functions by own time:")
            for tt, name in top:
                print(f"    {tt:6.2f}s  {name}")
        if sweep:
            print("\n== settings (max_batch_size × prefetch), no profiler, one consumer run and one bare run each")
            print("  (streaming records/s and µs CPU/record timed in the consumer; bare: the SDK alone, same settings)")
            print(f"  {'batch':>5s} {'prefetch':>8s} {'consumer':>9s} {'bare':>9s} {'ratio':>5s} {'cons.CPU%':>9s} "
                  f"{'µs/rec':>7s} {'lag p99':>8s} {'lag max':>8s} {'/metrics p99':>12s} "
                  f"{'/healthz p99':>12s} {'late renew.':>11s}")
            for n, (batch, prefetch) in enumerate(sweep):
                r, b = pair(n, batch, prefetch)
                lat = r["latencies"]
                print(f"  {batch:5d} {prefetch:8d} {r['records_s_window']:9,.0f} {b['records_s_window']:9,.0f} "
                      f"{ratio(r, b):5.2f} {100 * r['cpu_share']:8.0f}% {r['cpu_per_record_window_us']:7.1f} "
                      f"{ms(r['lag_p99']):>6s}ms {ms(r['lag_max']):>6s}ms "
                      f"{ms(percentile(lat['/metrics'], 0.99)):>10s}ms {ms(percentile(lat['/healthz'], 0.99)):>10s}ms "
                      f"{len(r['renewals']['late']):>11d}" + ("" if r["complete"] and b["complete"] else "  (incomplete)"))
    finally:
        parent.send("stop")
        parent.poll(30) and parent.recv()
        endpoint.join(10)
        if azurite is not None:
            azurite.close()
        tmp.cleanup()
    print(f"\n# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if s["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
