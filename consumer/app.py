"""The `run` lifecycle: configuration, start-up, signals, graceful shutdown; and `check-config`.

Start-up: logs the version and the effective configuration (secrets redacted), serves HTTP, then
creates the checkpoint and dead-letter containers if missing, then starts receiving. HTTP comes
before any call to storage, identity or Event Hubs: however long those take, /healthz answers and
/readyz names what is missing (a SIGTERM meanwhile exits at once, 0).

Readiness (`/readyz`, the checks in consumer/readiness.py) passes when all of these hold:
- `eventhub`: the receive loop runs and Event Hubs answers: events arrive, or the hub answered its
  partition ids (the SDK or the probe every `EVENTHUB_PROBE_SECONDS`) within
  `readiness_eventhub_max_age_seconds`, and not every attempt fails; else the detail names the last
  error kind (`unreachable`, `unauthorized`, `entity_not_found`, ...; see consumer/readiness.py);
- `checkpoint_store`: the checkpoint storage account answered a request (a checkpoint write or the
  periodic probe every `STORE_PROBE_SECONDS`) within `readiness_checkpoint_store_max_age_seconds`;
- `partitions`: no owned partition has had events waiting without processing one for longer than
  `readiness_partition_stalled_max_seconds` (the detail names the stalled partitions);
- `shutdown`: the process is not shutting down (it fails from SIGTERM on, so the Service stops
  routing to it while `/metrics` is still served: see Shutdown).
While storage is unreachable the consumer keeps processing (checkpoints are retried), but reports not
ready so the outage is visible. Liveness (`/healthz`) only needs the event loop to answer.

Shutdown on SIGTERM/SIGINT, in two bounded phases (the protocol and why: docs/reliability.md):
1. the lame duck, at most `shutdown_final_scrape_wait_seconds`: `/readyz` 503, nothing new counted,
   `/metrics` served until a scrape has read the last counts;
2. finish the batch in hand, settle dead letters, write the final (scrape-aligned) checkpoints, close
   the client (releasing ownership), exit 0 — within `shutdown_timeout_seconds`, else exit 1.
A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumer import __version__
from consumer.config import ConfigError, Settings, load_config, redacted
from consumer.config_sources import annotated_yaml
from consumer.correlation import EVICT_STEP
from consumer.deadletter import DeadLetterWriter
from consumer.errors import classify, log_fields, reason as error_reason, scrub_secrets
from consumer.eventhub import Receiver, eventhub_name, namespace_of
from consumer.http import Health, HttpServer
from consumer.logs import configure
from consumer.metrics import Metrics
from consumer.network import credential_options, storage_options, unused_proxy_variables
from consumer.pipeline import Pipeline
from consumer.readiness import StoreReadiness, eventhub_check, partitions_check, shutdown_check
from consumer.scrape_auth import BearerToken, TokenFileError
from consumer.streams import close_stdout_quietly

log = logging.getLogger("consumer.app")

STORE_PROBE_SECONDS = 10.0
EVENTHUB_PROBE_SECONDS = 10.0
#: Storage calls of the consumer fail fast and are retried by us, not held for minutes by the SDK.
#: The storage SDK's own `ExponentialRetry` reads `initial_backoff`/`increment_base`/
#: `random_jitter_range` (not azure-core's `retry_backoff_*`); its defaults wait 15 s ± 3 before the
#: first retry and 18 s ± 3 before the second. Here: 0–2 s, then 2–4 s.
STORAGE_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "initial_backoff": 1,
    "increment_base": 2,
    "random_jitter_range": 1,
    "connection_timeout": 5,
    "read_timeout": 10,
}


def check_config(path: str, secrets_dir: str | None = None) -> int:
    """Print the effective configuration with secrets redacted, each value with where it came from;
    exit 2 when it is invalid."""
    try:
        loaded = load_config(path, secrets_dir=secrets_dir)
    except ConfigError as exc:
        print(scrub_secrets(str(exc)), file=sys.stderr)
        return 2
    try:
        sys.stdout.write(scrub_secrets(annotated_yaml(redacted(loaded.settings), loaded)))
        sys.stdout.flush()
    except BrokenPipeError:  # `check-config ... | head`: the verdict stands, the rest of the print is not wanted
        close_stdout_quietly()
    if (warning := unused_proxy_variables(loaded.settings, os.environ)) is not None:
        print(f"# warning: {warning}", file=sys.stderr)
    print(f"# {path}: configuration is valid\n# {NOT_CHECKED}", file=sys.stderr)
    return 0


#: What `check-config` cannot know offline; it says so, so that "valid" is not read as "works".
NOT_CHECKED = ("not checked (offline): the credentials (keys, SAS, Azure AD role assignments), that the hub, "
               "the consumer group and the storage account exist, and that they are reachable from where "
               "`run` will run; `run` checks them at start-up (/readyz, acs_consumer_errors_total{kind})")


#: glibc's `mallopt` parameter number of the mmap threshold (malloc.h).
_M_MMAP_THRESHOLD = -3
#: Allocations at least this large get their own mapping, returned to the system when freed.
MMAP_THRESHOLD_BYTES = 128 * 1024


def fix_mmap_threshold() -> bool:
    """Keep glibc's mmap threshold at its initial 128 KiB (as `MALLOC_MMAP_THRESHOLD_=131072` would).

    By default glibc raises the threshold to the size of every large block freed (up to 32 MiB), so
    event bodies and their parse buffers (up to 1 MiB each) then come from the heap. With the worker
    thread decoding large bodies while the event loop receives the next ones, those blocks interleave
    with long-lived ones (correlation and duplicate windows) and the heap cannot shrink: measured
    +58 MiB RSS over the hostile-input flood of tests/e2e/test_hostile.py, against +10 MiB with the
    threshold fixed. Setting it also turns glibc's adjustment off. A no-op without glibc."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to fix
        return False


#: Event loops `run --loop` offers: the standard library's, or uvloop (`pip install acs-sms-consumer[uvloop]`).
LOOPS = ("asyncio", "uvloop")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop factory for `asyncio.Runner` (None: the standard library's loop)."""
    if name == "asyncio":
        return None
    if name == "uvloop":
        import uvloop  # optional dependency: ImportError names it

        return uvloop.new_event_loop
    raise ValueError(f"unknown event loop {name!r}: one of {', '.join(LOOPS)}")


def run(path: str, loop: str = "asyncio", secrets_dir: str | None = None) -> int:
    try:
        loaded = load_config(path, secrets_dir=secrets_dir)
    except ConfigError as exc:
        print(scrub_secrets(str(exc)), file=sys.stderr)
        return 2
    settings = loaded.settings
    if settings.http.bearer_token_path:  # before anything starts: a token file that is not there is a config error
        try:
            BearerToken(Path(settings.http.bearer_token_path))
        except TokenFileError as exc:
            print(exc, file=sys.stderr)
            return 2
    try:
        factory = loop_factory(loop)
    except ImportError:
        print(f"--loop {loop}: the {loop} package is not installed (pip install 'acs-sms-consumer[{loop}]')",
              file=sys.stderr)
        return 2
    fix_mmap_threshold()
    configure(settings.logging.level)
    # config_sources: where each value that is not a default came from (file, variable, secret file).
    sources = {key: str(origin) for key, origin in loaded.origins.items()}
    log.info("starting acs-sms-consumer", extra={"version": __version__, "config": redacted(settings), "loop": loop,
                                                 "config_sources": sources})
    if (warning := unused_proxy_variables(settings, os.environ)) is not None:
        log.warning(warning)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(Service(settings).serve())
    except KeyboardInterrupt:
        return 130


class Service:
    """Owns every long-lived part of a running consumer."""

    def __init__(self, settings: Settings, checkpoint_store: Any = None) -> None:
        """`checkpoint_store` replaces the Blob checkpoint store of the settings (the `demo` uses an
        in-memory one when Azurite is not installed); dead letters then need a storage account too."""
        self.settings = settings
        self._checkpoint_store = checkpoint_store
        self.metrics = Metrics(settings.pipeline.buckets, __version__, process_metrics=True)
        self.pipeline = Pipeline(settings.pipeline, self.metrics.domain)
        self.health = Health()
        self.store = StoreReadiness(settings.readiness_checkpoint_store_max_age_seconds)
        self.http_port: int | None = None  # the bound port, once serving (0 in the settings picks one)
        self._stop = asyncio.Event()
        self._signals = 0
        self.shutting_down = False
        self.starting: str | None = "starting"  # what start-up waits for, until the receive loop starts

    # --- storage ----------------------------------------------------------------------------------

    def _storage(self) -> tuple[Any, Any, Any]:
        """(checkpoint store, blob service client or None, credential or None)."""
        from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
        from azure.storage.blob.aio import BlobServiceClient

        if self._checkpoint_store is not None:
            return self._checkpoint_store, None, None
        store_settings = self.settings.checkpoint_store
        credential = None
        needs_credential = store_settings.connection_string is None or self.settings.eventhub.connection_string is None
        if needs_credential:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential(**credential_options(self.settings))
        options = {**STORAGE_CLIENT_OPTIONS, **storage_options(self.settings)}
        if store_settings.connection_string is not None:
            secret = store_settings.connection_string.get_secret_value()
            store = BlobCheckpointStore.from_connection_string(secret, store_settings.container, **options)
            service = BlobServiceClient.from_connection_string(secret, **options)
        else:
            account_url = store_settings.account_url
            if account_url is None:  # CheckpointStoreSettings requires it without a connection string
                raise ConfigError("checkpoint_store: set connection_string or account_url")
            store = BlobCheckpointStore(account_url, store_settings.container, credential=credential, **options)
            service = BlobServiceClient(account_url, credential=credential, **options)
        return store, service, credential

    async def _ensure_container(self, service: Any, name: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            await service.get_container_client(name).create_container()
            log.info("created blob container", extra={"container": name})
        except ResourceExistsError:
            pass
        except Exception as exc:  # no permission to create, or storage down: the probe will tell
            kind = classify(exc)
            log.warning("could not create blob container %s: %s: %s", name, kind, error_reason(exc),
                        extra={"container": name, **log_fields(exc, kind, log.isEnabledFor(logging.DEBUG))})

    async def _probe_store(self, store: Any) -> None:
        hub = self.settings.eventhub
        namespace = namespace_of(self.settings)
        while True:
            try:
                await store.list_ownership(namespace, eventhub_name(self.settings), hub.consumer_group)
                self.store.answered()
            except Exception as exc:
                kind = classify(exc)
                log.warning("checkpoint store probe failed: %s: %s", kind, error_reason(exc),
                            extra=log_fields(exc, kind, log.isEnabledFor(logging.DEBUG)))
            await asyncio.sleep(STORE_PROBE_SECONDS)

    # --- lifecycle -------------------------------------------------------------------------------

    async def serve(self) -> int:
        settings = self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

        # Nothing here calls storage, identity or Event Hubs before the HTTP server is up: a slow or
        # silent dependency then shows as a /readyz reason instead of a failed startup probe.
        store, service, credential = self._storage()
        deadletters = None
        if settings.deadletter.enabled and service is not None:
            deadletters = DeadLetterWriter(service.get_container_client(settings.deadletter.container),
                                           settings.deadletter, self.metrics.consumer, namespace_of(settings),
                                           eventhub_name(settings), settings.eventhub.consumer_group)
            deadletters.start()

        receiver = Receiver(settings, self.pipeline, self.metrics, store, deadletters, credential,
                            on_store_answer=self.store.answered)
        self._add_checks(receiver)

        http = HttpServer(self.metrics, self.health, settings.http.host, settings.http.port, scrapes=receiver,
                          scrapers=settings.checkpoint.scrapers, settings=settings.http)
        await http.start()
        self.http_port = http.port
        log.info("serving http", extra={"host": settings.http.host, "port": http.port})

        probing = asyncio.create_task(receiver.probe(EVENTHUB_PROBE_SECONDS), name="eventhub-probe")
        background = [
            asyncio.create_task(self._probe_store(store), name="store-probe"),
            probing,
            asyncio.create_task(self._progress(receiver), name="progress"),
            asyncio.create_task(self._expire_windows(receiver), name="expire-windows"),
        ]
        receiving = asyncio.create_task(self._receive(receiver, service), name="receive")
        stop = asyncio.create_task(self._stop.wait(), name="stop")
        await asyncio.wait([receiving, stop], return_when=asyncio.FIRST_COMPLETED)
        exit_code = 0
        if receiving.done() and not stop.done():
            error = receiving.exception()
            if error is None:
                log.error("event hubs receive loop stopped unexpectedly: returned")
            else:
                log.error("event hubs receive loop stopped unexpectedly: %s: %s", classify(error), error_reason(error),
                          extra=log_fields(error, debug=log.isEnabledFor(logging.DEBUG)))
            exit_code = 1

        started = time.monotonic()
        self.shutting_down = True
        if not receiver.running and not receiving.done():
            # Stopped during start-up (still waiting for storage): nothing was received, so nothing
            # is to drain or checkpoint; the receive loop must not start after the client's close.
            receiving.cancel()
            log.info("stopped during start-up", extra={"waiting_for": self.starting})
        probing.cancel()  # readiness is 503 from here on; no Event Hubs call beside the client's close
        # Without scrape alignment the final checkpoints name every counted event anyway: no scrape to wait for.
        aligned = settings.checkpoint.scrape_aligned
        wait = settings.shutdown_final_scrape_wait_seconds if aligned else 0.0
        log.info("shutting down", extra={"final_scrape_wait_seconds": wait,
                                         "timeout_seconds": settings.shutdown_timeout_seconds})
        scraped = await receiver.drain(wait)
        if aligned and scraped:
            log.info("final counts scraped", extra={"seconds": round(time.monotonic() - started, 3)})
        elif aligned:
            log.warning("no /metrics scrape read the final counts within %.0f s: the final checkpoints stop at the "
                        "last scrape, the next owner counts the rest again", wait)
        try:
            await asyncio.wait_for(self._shutdown(receiver, receiving, deadletters), settings.shutdown_timeout_seconds)
        except TimeoutError:
            log.error("shutdown did not finish within %.0f s", settings.shutdown_timeout_seconds)
            exit_code = 1
        for task in (*background, stop):
            task.cancel()
        await asyncio.gather(*background, stop, return_exceptions=True)
        await http.stop()
        receiver.worker.close()
        await _close_quietly(store, service, credential)
        gc.unfreeze()  # a process that serves again (tests, the benchmark) collects this service's objects
        log.info("stopped", extra={"seconds": round(time.monotonic() - started, 3), "exit_code": exit_code})
        return exit_code

    async def _receive(self, receiver: Receiver, service: Any) -> None:
        """Start-up's calls to storage (the two blob containers), then the receive loop. It runs
        behind the HTTP server, so that however long storage or identity take (each call of the
        storage client may take ~36 s with its retries), /readyz says what is missing meanwhile
        (`checkpoint_store`), and a SIGTERM ends it (the shutdown cancels it before it receives)."""
        settings = self.settings
        if service is not None:
            self.starting = "creating the blob containers"
            await self._ensure_container(service, settings.checkpoint_store.container)
            if settings.deadletter.enabled:
                await self._ensure_container(service, settings.deadletter.container)
        self.starting = None
        # What start-up made (modules, the SDK's and storage clients, pydantic models, metric families)
        # lives as long as the process: frozen, it is no longer traversed by every full collection,
        # which otherwise pauses the event loop for tens of milliseconds and costs ~5% of throughput.
        gc.collect()
        gc.freeze()
        await receiver.run()

    async def _shutdown(self, receiver: Receiver, receiving: asyncio.Task[None],
                        deadletters: DeadLetterWriter | None) -> None:
        await receiver.close()  # cancels receiving, waits for batches in hand, final checkpoints, releases ownership
        # What may still run is `receive_batch`'s load-balancing loop: the SDK's loop only sees the stop
        # after its sleep between rounds (up to 1.2 × load_balancing_interval) or its current storage
        # call (retries included). Every partition is closed and released by now, and a round that ran
        # on could claim partitions again, so it is cancelled.
        if not receiving.done():
            receiving.cancel()
            log.debug("event hubs load-balancing loop cancelled after the partitions were released")
        await asyncio.gather(receiving, return_exceptions=True)
        if deadletters is not None:
            await deadletters.close(timeout=max(1.0, self.settings.shutdown_timeout_seconds / 4))

    def request_stop(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does."""
        self._stop.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second %s: exiting at once", sig.name)
            logging.shutdown()
            os._exit(128 + sig.value)
        log.info("received %s: stopping", sig.name)
        self._stop.set()

    def _add_checks(self, receiver: Receiver) -> None:
        """The /readyz checks (consumer/readiness.py), fed from this service and its receiver."""
        limit = self.settings.readiness_partition_stalled_max_seconds
        self.health.add("eventhub", lambda: eventhub_check(receiver.running, self.starting, receiver.readiness))
        self.health.add("checkpoint_store", lambda: self.store.check(self.starting))
        self.health.add("partitions", lambda: partitions_check(receiver.stalled(), limit))
        self.health.add("shutdown", lambda: shutdown_check(self.shutting_down))

    async def _progress(self, receiver: Receiver) -> None:
        """An INFO line every `logging.progress_interval_seconds`: rates, owned partitions and their lag."""
        interval = self.settings.logging.progress_interval_seconds
        events, records, last_time = 0, 0, receiver.ticks()
        while True:
            await asyncio.sleep(interval)
            now = receiver.ticks()
            log.info("progress", extra=progress_fields(receiver, now - last_time, events, records))
            events, records, last_time = receiver.events_processed, receiver.records_processed, now

    async def _expire_windows(self, receiver: Receiver) -> None:
        """Evict what has waited too long from the correlation and duplicate windows every
        `pipeline.expire_interval_seconds`, also when no record arrives to do it; in steps of
        `EVICT_STEP` entries, on the receiver's worker (which owns the pipeline), the event loop free
        between them."""
        while True:
            await asyncio.sleep(self.settings.pipeline.expire_interval_seconds)
            now = receiver.clock()
            # Not a poll (ASYNC110's concern): each call evicts one step, on the event loop, and
            # sleep(0) lets the loop run other tasks between steps.
            while await receiver.worker.call(self.pipeline.expire, now, EVICT_STEP):  # noqa: ASYNC110
                await asyncio.sleep(0)


def progress_fields(receiver: Receiver, elapsed: float, events_before: int, records_before: int) -> dict[str, Any]:
    """The fields of the progress line: rates over the last `elapsed` seconds (from the counts
    `events_before`, `records_before`), owned partitions, their lag (the metric's) and last counted event."""
    elapsed = max(elapsed, 1e-9)
    partitions = receiver.partitions
    return {
        "events_per_second": round((receiver.events_processed - events_before) / elapsed, 1),
        "records_per_second": round((receiver.records_processed - records_before) / elapsed, 1),
        "owned_partitions": sorted(partitions),
        "lag_events": receiver.lags(),
        # the last counted event of each partition
        "last_sequence_numbers": {partition: progress.last_sequence_number for partition, progress in partitions.items()
                                  if progress.last_sequence_number is not None},
    }


async def _close_quietly(*clients: Any) -> None:
    for client in clients:
        if client is None:
            continue
        try:
            await client.close()
        except Exception:  # closing is best effort at shutdown
            pass
