"""Scale-out, crash failover and graceful handover: several `acs-sms-consumer run` processes on one
hub and one Azurite, short load-balancing intervals and ownership expiry so takeovers are quick.

Accounting is per event: `acs_consumer_events_total{partition}` summed over the replicas against the
events the hub holds per partition (the stream stores them directly, so the hub's count is the
ground truth). Lost = published − counted (must be ≤ 0); duplicates = counted − published.
Checkpoints are scrape-aligned, so every replica is scraped as Prometheus would (`Scraper`, every
SCRAPE_INTERVAL).
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from consumer.devtools.scrape import total as sample_total
from consumer.devtools.traffic import generate_corpus
from tests.e2e.support import (
    ConsumerProcess,
    Scraper,
    Stream,
    checkpoint_blobs,
    events_by_partition,
    free_port,
    kill_once_counted,
    log_lines,
    owned_partitions,
    released_at_shutdown,
    write_config,
)

LB_INTERVAL = 1.0
CHECKPOINT_INTERVAL = 1.0
EVERY_EVENTS = 100
MAX_BATCH = 50
RATE = 20  # events per second per partition
SCRAPE_INTERVAL = 0.5
BODIES = generate_corpus(2000, records_per_body=5, seed=21)


def start_replicas(count: int, endpoint: Any, storage: Any, container: str, tmp_path: Path, expiry: float,
                   **overrides: Any) -> list[ConsumerProcess]:
    replicas = []
    for index in range(count):
        port = free_port()
        config = write_config(
            tmp_path / f"replica{index}.yaml", endpoint.connection_string, endpoint.hub.name,
            storage.connection_string, container, port,
            eventhub__load_balancing_interval_seconds=LB_INTERVAL,
            eventhub__partition_ownership_expiration_interval_seconds=expiry,
            eventhub__max_batch_size=MAX_BATCH, eventhub__prefetch=2 * MAX_BATCH,
            checkpoint__interval_seconds=CHECKPOINT_INTERVAL, checkpoint__every_events=EVERY_EVENTS,
            **overrides,
        )
        replicas.append(ConsumerProcess(config, port, tmp_path / f"replica{index}.log").start())
    return replicas


def wait_for(condition: Callable[[], bool], timeout: float, what: str, replicas: list[ConsumerProcess],
             details: Callable[[], str] | None = None) -> float:
    """Poll until `condition()`; returns the monotonic time it first held. On a timeout the message
    holds `details()` and the replicas' last log lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for replica in replicas:
            if replica.process.poll() is not None:
                raise AssertionError(f"replica exited ({replica.process.returncode}) waiting for {what}:\n"
                                     + replica.logs()[-3000:])
        try:
            if condition():
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.1)
    tails = "\n---\n".join(replica.logs()[-2000:] for replica in replicas)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{details() if details else ''}\n{tails}")


def wait_balanced(replicas: list[ConsumerProcess], partitions: int, stable_for: float, timeout: float) -> list[set[str]]:
    """Wait until the replicas own every partition exactly once, unchanged for `stable_for` seconds."""
    deadline = time.monotonic() + timeout
    last: list[set[str]] | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        owned = [owned_partitions(replica) for replica in replicas]
        exact = sum(len(o) for o in owned) == partitions and len(set().union(*owned)) == partitions
        if owned != last or not exact:
            last, since = owned, time.monotonic()
        elif time.monotonic() - since >= stable_for:
            return owned
        time.sleep(0.2)
    raise AssertionError(f"ownership did not settle: {last}")


def counted(scrapes: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for scrape in scrapes:
        for partition, value in scrape.items():
            total[partition] = total.get(partition, 0) + value
    return total


def test_three_replicas_balance_and_a_killed_replica_is_taken_over_without_loss(
        eventhubs_factory, azurite, blob_container, tmp_path: Path) -> None:
    endpoint = eventhubs_factory(partitions=8)
    expiry = 5.0
    replicas = start_replicas(3, endpoint, azurite, blob_container, tmp_path, expiry)
    stream = None
    scrapers: list[Scraper] = []
    try:
        # 1. Balance with an empty hub (no replays from the initial shuffling).
        owned = wait_balanced(replicas, 8, stable_for=3 * LB_INTERVAL, timeout=45)
        limit = math.ceil(8 / 3) + 1
        print(f"\nbalanced ownership: {[sorted(o) for o in owned]}")
        assert all(len(o) <= limit for o in owned), owned
        assert all(replica.total("acs_consumer_owned_partitions") == len(o) for replica, o in zip(replicas, owned))

        # 2. Steady stream; every replica counts its own partitions and is scraped.
        scrapers = [Scraper(replica, SCRAPE_INTERVAL).start() for replica in replicas]
        stream = Stream(endpoint, RATE, BODIES).start()
        wait_for(lambda: all(replica.total("acs_consumer_events_total") > 0 for replica in replicas), 20,
                 "every replica counting", replicas)
        # Half-way between two checkpoints (each partition writes one about every CHECKPOINT_INTERVAL,
        # in step with the stream's start), so the kill leaves events counted and not checkpointed.
        time.sleep(3 + CHECKPOINT_INTERVAL / 2)

        # 3. kill -9 the replica with the most partitions, mid-stream: the stream pauses for the moment
        # it takes the victim to count what its partitions hold (tens of milliseconds, far less than a
        # checkpoint interval), so the scrape before the kill is exactly what it counted.
        index = max(range(3), key=lambda i: len(owned[i]))
        victim, survivors = replicas[index], [r for i, r in enumerate(replicas) if i != index]
        victim_partitions = owned[index]
        with stream.paused() as held:
            paused_at = time.monotonic()
            victim_samples = kill_once_counted(victim, {p: held[p] for p in victim_partitions}, timeout=10)
            killed_at = time.monotonic()
        scrapers[index].stop()
        victim_counts = events_by_partition(victim_samples)
        before = counted([events_by_partition(s) for s in survivors])
        # The victim's last checkpoints (no one else writes them before its ownership expires): every
        # event it checkpointed, it had counted (at-least-once), so the survivors start after them.
        checkpointed = {p: sequence_number + 1  # events up to and including the one named
                        for p, sequence_number in checkpoint_blobs(azurite.connection_string, blob_container, endpoint).items()
                        if p in victim_partitions}
        assert all(n <= victim_counts.get(p, 0) for p, n in checkpointed.items()), (checkpointed, victim_counts)

        # 4. Its partitions are claimed by the survivors, and their counts move again.
        claimed_at = wait_for(lambda: victim_partitions <= set().union(*(owned_partitions(s) for s in survivors)),
                              expiry + 15, "takeover", survivors)
        resumed_at = wait_for(
            lambda: all(counted([events_by_partition(s) for s in survivors]).get(p, 0) > before.get(p, 0)
                        for p in victim_partitions), 15, "processing resumed", survivors)
        time.sleep(2)
        published = stream.stop()
        records_published = stream.records
        stream = None

        # 5. Catch up; then nothing lost, duplicates bounded.
        def caught_up() -> bool:
            total = counted([victim_counts, *(events_by_partition(s) for s in survivors)])
            return all(total.get(p, 0) >= n for p, n in published.items())

        wait_for(caught_up, 30, "survivors catching up", survivors, lambda: (
            f"published {published}; counted by the victim {victim_counts}, checkpointed by it {checkpointed}; "
            f"by the survivors {[events_by_partition(s) for s in survivors]}"))
        time.sleep(1.5)  # late replays would show up as more
        final = [s.metrics() for s in survivors]
        total = counted([victim_counts, *(events_by_partition(s) for s in final)])
        lost = {p: n - total.get(p, 0) for p, n in published.items() if total.get(p, 0) < n}
        duplicates = {p: int(total.get(p, 0) - n) for p, n in published.items()}
        records_counted = sample_total(victim_samples, "acs_consumer_records_total") + sum(
            sample_total(s, "acs_consumer_records_total") for s in final)
        takeover = claimed_at - killed_at
        resumed = resumed_at - killed_at
        one_interval = math.ceil(RATE * CHECKPOINT_INTERVAL)
        one_scrape = math.ceil(RATE * SCRAPE_INTERVAL)
        print(f"victim owned {sorted(victim_partitions)}; stream paused {killed_at - paused_at:.3f} s for the kill; "
              f"takeover {takeover:.2f} s, processing resumed {resumed:.2f} s after kill -9 (ownership expiry "
              f"{expiry} s, load-balancing interval {LB_INTERVAL} s); the victim's last checkpoints {checkpointed} "
              f"of its counts {victim_counts}")
        print(f"published {sum(published.values())} events ({records_published} records); duplicates per "
              f"partition {duplicates} (taken over: {sorted(victim_partitions)}; one checkpoint interval = "
              f"{one_interval} events, one scrape interval = {one_scrape})")
        assert not lost, lost
        assert records_counted >= records_published
        assert takeover <= expiry + 3 * LB_INTERVAL + 2, takeover
        # Replays: what the victim processed after its last checkpoint (≤ one checkpoint interval plus
        # one scrape interval of events, plus the batch it was in) — per taken-over partition.
        bound = one_interval + one_scrape + MAX_BATCH
        assert all(duplicates[p] <= bound for p in victim_partitions), (duplicates, bound)
        # Partitions that did not change hands after the kill are not replayed... unless the two
        # survivors rebalanced between them; bounded the same way.
        assert all(d <= bound for d in duplicates.values()), (duplicates, bound)
        # The survivors split the 8 partitions between them.
        owned_after = [owned_partitions(s) for s in survivors]
        assert sum(len(o) for o in owned_after) == 8 and all(len(o) <= math.ceil(8 / 2) + 1 for o in owned_after)
    finally:
        if stream is not None:
            stream.stop()
        for scraper in scrapers:
            scraper.stop()
        for replica in replicas:
            replica.stop(signal.SIGKILL)


def test_sigterm_finishes_checkpoints_and_hands_partitions_over_at_once(
        eventhubs_factory, azurite, blob_container, tmp_path: Path) -> None:
    endpoint = eventhubs_factory(partitions=4)
    expiry = 30.0  # a handover "at once" is then far from a takeover after expiry
    shutdown_timeout = 10.0
    replicas = start_replicas(2, endpoint, azurite, blob_container, tmp_path, expiry,
                              shutdown_timeout_seconds=shutdown_timeout)
    leaving, staying = replicas
    stream = None
    scrapers = [Scraper(replica, SCRAPE_INTERVAL).start() for replica in replicas]
    try:
        owned = wait_balanced(replicas, 4, stable_for=3 * LB_INTERVAL, timeout=45)
        assert [len(o) for o in owned] == [2, 2], owned
        handed = owned[0]
        stream = Stream(endpoint, RATE, BODIES).start()
        wait_for(lambda: all(r.total("acs_consumer_events_total") > 0 for r in replicas), 20, "counting", replicas)
        time.sleep(2)

        signalled = time.monotonic()
        leaving.process.send_signal(signal.SIGTERM)
        handed_at = wait_for(lambda: owned_partitions(staying) >= handed, expiry, "handover", [staying])
        code = leaving.process.wait(shutdown_timeout + 5)
        exited_at = time.monotonic()
        leaving.stop()
        time.sleep(2)
        published = stream.stop()
        stream = None

        lines = log_lines(leaving)
        released = released_at_shutdown(lines)
        assert set(released) == handed, released
        assert all(line["reason"] == "shutdown" for line in released.values()), released
        last = {p: released[p]["sequence_number"] for p in handed}
        # The lame duck's scrape read the final counts, so the final checkpoints name every counted event.
        assert {p: released[p]["checkpoint"] for p in handed} == last, released
        assert "final counts scraped" in [line.get("message") for line in lines]
        assert not [line for line in log_lines(leaving) if line.get("message", "").startswith("checkpoint failed")]
        stopped = [line for line in log_lines(leaving) if line.get("message") == "stopped"]
        assert stopped and stopped[-1]["exit_code"] == 0

        wait_for(lambda: all(events_by_partition(staying).get(p, 0) >= published[p] - 1 - last[p] for p in handed)
                 and all(events_by_partition(staying).get(p, 0) >= published[p] for p in owned[1]),
                 20, "catch-up", [staying])
        time.sleep(1)
        counts = events_by_partition(staying)
        shutdown = exited_at - signalled
        handover = handed_at - signalled
        print(f"\nSIGTERM: exit {code} after {shutdown:.2f} s (timeout {shutdown_timeout} s); the other replica "
              f"held {sorted(handed)} {handover:.2f} s after the signal (ownership expiry {expiry} s); "
              f"last sequence numbers at release {last}")
        assert code == 0, leaving.logs()[-3000:]
        assert shutdown < shutdown_timeout
        assert handover < 3 * LB_INTERVAL + 2 < expiry
        # The staying replica started each handed partition right after the final checkpoint of the
        # leaving one, and the leaving one had counted up to it: none lost, none counted twice.
        for p in handed:
            assert counts[p] == published[p] - 1 - last[p], (p, counts[p], published[p], last[p])
        for p in owned[1]:
            assert counts[p] == published[p], (p, counts[p], published[p])
        # Checkpoints now at the end of every partition.
        assert checkpoint_blobs(azurite.connection_string, blob_container, endpoint) == {p: n - 1 for p, n in published.items()}
    finally:
        if stream is not None:
            stream.stop()
        for scraper in scrapers:
            scraper.stop()
        for replica in replicas:
            replica.stop(signal.SIGKILL)
