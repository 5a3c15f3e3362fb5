"""Shutdown while blob storage is in trouble (a TCP proxy in front of Azurite), under a steady
stream: the final checkpoints and the release of ownership go to storage.

- storage slow (every chunk held 1 s): SIGTERM still writes every final checkpoint, at the last
  counted event, and exits 0;
- storage black-holed (requests hang): SIGTERM ends the process at `shutdown_timeout_seconds`
  (exit 1, logged), and a second signal ends it at once (exit 128 + signal).

A shutdown with healthy storage is in test_failover.py.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from acs_sms_devtools.azurite import development_connection_string
from tests.e2e.proxy import TcpProxy
from tests.e2e.replicas import BODIES, RATE, SCRAPE_INTERVAL, start_consumer
from tests.e2e.support import (
    FINAL_SCRAPE_WAIT,
    ConsumerProcess,
    Scraper,
    Stream,
    checkpoint_blobs,
    checkpoints,
    events_by_partition,
    log_lines,
    ownership_blobs,
    released_at_shutdown,
)


@contextmanager
def counting_through_proxy(eventhubs: Any, azurite: Any, container: str, tmp_path: Path,
                           shutdown_timeout: float) -> Iterator[tuple[ConsumerProcess, TcpProxy]]:
    """A ready consumer counting a stream, its storage account behind a proxy for the test to spoil.
    Ownership expires after 30 s, so a shutdown of seconds releases ownership that is still its own
    (the SDK releases only unexpired ownership)."""
    proxy = TcpProxy("127.0.0.1", azurite.port).start()
    consumer = start_consumer(eventhubs, development_connection_string("127.0.0.1", proxy.port), container,
                              tmp_path, shutdown_timeout_seconds=shutdown_timeout,
                              eventhub__partition_ownership_expiration_interval_seconds=30)
    stream = Stream(eventhubs, RATE, BODIES).start()
    scraper = Scraper(consumer, SCRAPE_INTERVAL).start()  # checkpoints are scrape-aligned; the lame duck ends at a scrape
    try:
        consumer.wait_until(lambda: consumer.get("/readyz")[0] == 200, 30, "ready")
        consumer.wait_until(lambda: len(events_by_partition(consumer)) == 4, 30, "counting on every partition")
        # Checkpoints written (storage answered), and a stream to leave unsaved events behind (20 a
        # second a partition) for the final checkpoints.
        consumer.wait_until(lambda: all(n >= 2 for n in checkpoints(consumer.metrics(), "ok").values())
                            and len(checkpoints(consumer.metrics(), "ok")) == 4, 30, "two checkpoints on every partition")
        # The test spoils storage and signals at once, while the SDK's load-balancing loop most likely
        # sleeps between two rounds (a round takes milliseconds of each LB_INTERVAL): its next round
        # then comes during the shutdown.
        yield consumer, proxy
    finally:
        stream.stop()
        scraper.stop()
        consumer.stop(signal.SIGKILL)
        proxy.close()


def wait_exit(consumer: ConsumerProcess, timeout: float) -> tuple[int, float]:
    """(exit code, seconds it took from now)."""
    started = time.monotonic()
    try:
        code = consumer.process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running {timeout} s later:\n{consumer.logs()[-3000:]}") from None
    return code, time.monotonic() - started


def test_a_shutdown_that_cannot_finish_ends_at_the_timeout_with_exit_1(eventhubs, azurite, blob_container,
                                                                        tmp_path: Path) -> None:
    timeout = 3.0
    with counting_through_proxy(eventhubs, azurite, blob_container, tmp_path, timeout) as (consumer, proxy):
        proxy.mode = "blackhole"
        consumer.process.send_signal(signal.SIGTERM)
        code, took = wait_exit(consumer, 30)
        lines = log_lines(consumer)
    messages = [line.get("message", "") for line in lines]
    print(f"\nSIGTERM with storage black-holed: exit {code} after {took:.2f} s (shutdown timeout {timeout} s)")
    assert code == 1, consumer.logs()[-3000:]
    # The exit code and the log line below prove that the timeout ended it; the figure is printed
    # (measured 3.2-3.5 s: before the timeout runs, the lame duck waits for a scrape, every
    # SCRAPE_INTERVAL here, at most FINAL_SCRAPE_WAIT). The upper bound is 5x that: hanging storage
    # calls wait up to 10 s each (CHECKPOINT_TIMEOUT_SECONDS) and retry, far more without the timeout.
    assert timeout <= took < 5 * (timeout + 0.5), took
    assert "shutting down" in messages
    assert f"shutdown did not finish within {timeout:.0f} s" in messages, messages[-10:]
    stopped = [line for line in lines if line.get("message") == "stopped"]
    assert stopped and stopped[-1]["exit_code"] == 1


def test_a_second_signal_during_shutdown_exits_at_once(eventhubs, azurite, blob_container, tmp_path: Path) -> None:
    timeout = 30.0
    with counting_through_proxy(eventhubs, azurite, blob_container, tmp_path, timeout) as (consumer, proxy):
        proxy.mode = "blackhole"
        consumer.process.send_signal(signal.SIGTERM)
        # Past the lame duck (the scraper ends it), the shutdown is held up by storage.
        consumer.wait_until(lambda: "final counts scraped" in [line.get("message") for line in log_lines(consumer)],
                            10 + FINAL_SCRAPE_WAIT, "the lame duck's end")
        assert consumer.process.poll() is None, "the first signal alone should be held up by storage here"
        consumer.process.send_signal(signal.SIGINT)
        code, took = wait_exit(consumer, 5)
        messages = [line.get("message", "") for line in log_lines(consumer)]
    print(f"\nsecond signal during a held-up shutdown: exit {code} after {took:.2f} s (shutdown timeout {timeout} s)")
    assert code == 128 + signal.SIGINT.value, consumer.logs()[-3000:]
    assert took < 2, took  # measured 0.02 s
    assert "second SIGINT: exiting at once" in messages, messages[-10:]
    assert "stopped" not in messages


def test_slow_storage_at_shutdown_still_gets_every_final_checkpoint(eventhubs, azurite, blob_container,
                                                                     tmp_path: Path) -> None:
    timeout = 20.0
    with counting_through_proxy(eventhubs, azurite, blob_container, tmp_path, timeout) as (consumer, proxy):
        proxy.delay = 1.0
        consumer.process.send_signal(signal.SIGTERM)
        code, took = wait_exit(consumer, timeout + 10)
        lines = log_lines(consumer)
    released = {p: line["sequence_number"] for p, line in released_at_shutdown(lines).items()}
    saved = checkpoint_blobs(azurite.connection_string, blob_container, eventhubs)
    owners = ownership_blobs(azurite.connection_string, blob_container, eventhubs)
    print(f"\nSIGTERM with every storage chunk held 1 s: exit {code} after {took:.2f} s (shutdown timeout "
          f"{timeout} s); released at {released}, checkpoints at {saved}")
    assert code == 0, consumer.logs()[-3000:]
    assert took >= 1, took  # the final checkpoints waited for the slow storage
    assert not [line for line in lines if line.get("message", "").startswith("checkpoint failed")]
    assert set(released) == set(eventhubs.partition_ids), released
    assert saved == released  # every partition's last counted event, nothing after, nothing before
    assert owners == {p: "" for p in eventhubs.partition_ids}, owners  # released, for the next replica at once
