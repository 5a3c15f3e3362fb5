"""At least once into Prometheus: checkpoints name only what a completed /metrics scrape has read.

`acs-sms-consumer run` as a subprocess on the local Event Hubs endpoint and Azurite. The hub is filled
in fixed steps (no stream), so every count is exact. Whether the consumer has counted something is
read from its "progress" log lines (the last sequence number of each partition), never from
/metrics, because a GET of /metrics as Prometheus sends it is a scrape and moves the checkpoints.

- kill -9 with events counted but never scraped: the next replica counts exactly those again (with
  alignment off, the control case, it counts none of them: they are lost to Prometheus); the same
  when a `curl` (a GET without Prometheus' scrape-timeout header) has read them: it is no scrape;
- SIGTERM: the lame duck serves /metrics (readiness 503) until a scrape has read the final counts,
  then the final checkpoints name every counted event and it exits 0; without a scrape it exits after
  `shutdown_final_scrape_wait_seconds` with the final checkpoints at the last scrape, and the next
  replica counts the rest;
- no scrape for `checkpoint.no_scrape_seconds`: checkpoints go on, counted as unscraped, with one
  warning per episode.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from acs_sms_devtools.scrape import parse, total
from tests.e2e.replicas import BODIES, start_consumer
from tests.e2e.support import ConsumerProcess, checkpoint_blobs, events_by_partition, log_lines

FIRST = 30  # events per partition, counted and scraped
SECOND = 40  # events per partition, counted and never scraped
RECORDS_PER_BODY = 5


class Hub:
    """Fills the endpoint's partitions with distinct bodies, step by step; knows what it published."""

    def __init__(self, endpoint: Any) -> None:
        self.endpoint = endpoint
        self.next_body = 0

    def publish(self, per_partition: int) -> dict[str, int]:
        """`per_partition` more events in each partition; returns the events each partition holds."""
        for partition in self.endpoint.partition_ids:
            self.endpoint.publish(partition, BODIES[self.next_body:self.next_body + per_partition])
            self.next_body += per_partition
        return self.endpoint.event_counts()


def counted_up_to(consumer: ConsumerProcess) -> dict[str, int]:
    """The last counted sequence number of each partition, from the last "progress" log line."""
    lines = [line for line in log_lines(consumer) if line.get("message") == "progress"]
    return lines[-1].get("last_sequence_numbers", {}) if lines else {}


def progress_lines(consumer: ConsumerProcess) -> int:
    return sum(1 for line in log_lines(consumer) if line.get("message") == "progress")


def wait_counted_unscraped(consumer: ConsumerProcess, held: dict[str, int]) -> None:
    """Until the consumer has counted every event the hub holds, without scraping it."""
    consumer.wait_until(lambda: counted_up_to(consumer) == {p: n - 1 for p, n in held.items()}, 30,
                        f"counted up to {held} (progress log)")


def wait_progress_lines(consumer: ConsumerProcess, more: int) -> None:
    """Let `more` progress intervals (1 s each: a checkpoint interval each) pass on the consumer's clock."""
    target = progress_lines(consumer) + more
    consumer.wait_until(lambda: progress_lines(consumer) >= target, 30, f"{more} more progress lines")


def scraped_and_checkpointed(consumer: ConsumerProcess, held: dict[str, int], azurite: Any, container: str,
                             endpoint: Any) -> None:
    """Scrape until the consumer shows every event the hub holds; then its checkpoints reach the end."""
    consumer.wait_until(lambda: events_by_partition(consumer) == held, 30, f"a scrape showing {held}")
    consumer.wait_until(lambda: checkpoint_blobs(azurite.connection_string, container, endpoint)
                        == {p: n - 1 for p, n in held.items()}, 30, "checkpoints at the scraped end")


def scraped_then_unscraped(consumer: ConsumerProcess, hub: Hub, azurite: Any, container: str,
                           endpoint: Any) -> dict[str, int]:
    """FIRST events per partition counted, scraped and checkpointed, then SECOND more counted and not
    scraped; returns what the hub holds per partition."""
    held = hub.publish(FIRST)
    scraped_and_checkpointed(consumer, held, azurite, container, endpoint)
    held = hub.publish(SECOND)
    wait_counted_unscraped(consumer, held)
    return held


def next_replica_counts(endpoint: Any, hub: Hub, azurite: Any, container: str, tmp_path: Path,
                        name: str) -> dict[str, float]:
    """A new replica on the same checkpoints; one marker event per partition published once it owns
    them all. Returns what it counted once it has counted the markers (and a moment more for replays)."""
    replica = start_consumer(endpoint, azurite.connection_string, container, tmp_path, name=name)
    try:
        replica.wait_until(lambda: replica.total("acs_consumer_owned_partitions") == 4, 30, "owning the partitions")
        held = hub.publish(1)
        # Each partition is counted in order from its checkpoint: once the marker is, so is every replay.
        replica.wait_until(lambda: counted_up_to(replica) == {p: n - 1 for p, n in held.items()}, 30,
                           "the markers counted")
        samples = replica.metrics()
        counts = events_by_partition(samples)
        counts["records"] = total(samples, "acs_consumer_records_total")
        return counts
    finally:
        replica.stop(signal.SIGKILL)


def resumed_lines(consumer: ConsumerProcess) -> list[dict[str, Any]]:
    return [line for line in log_lines(consumer) if line.get("message", "").startswith("a /metrics scrape completed after")]


@pytest.mark.parametrize("aligned, curl", [(True, False), (True, True), (False, False)],
                         ids=["scrape_aligned", "curl_is_no_scrape", "alignment_off"])
def test_kill_9_the_next_replica_counts_everything_no_scrape_had_read(eventhubs, azurite, blob_container,
                                                                     tmp_path: Path, aligned: bool, curl: bool) -> None:
    hub = Hub(eventhubs)
    consumer = start_consumer(eventhubs, azurite.connection_string, blob_container, tmp_path,
                              checkpoint__scrape_aligned=aligned)
    try:
        held = scraped_then_unscraped(consumer, hub, azurite, blob_container, eventhubs)
        if curl:  # an operator's curl shows the unscraped counts, but Prometheus has not read them
            _, text = consumer.get("/metrics", scrape=False)
            assert events_by_partition(parse(text.decode())) == held
        if aligned:
            wait_progress_lines(consumer, 3)  # three checkpoint intervals with nothing scraped
        else:
            consumer.wait_until(lambda: checkpoint_blobs(azurite.connection_string, blob_container, eventhubs)
                                == {p: n - 1 for p, n in held.items()}, 30, "checkpoints at the last counted event")
        saved = checkpoint_blobs(azurite.connection_string, blob_container, eventhubs)
        consumer.process.send_signal(signal.SIGKILL)
        consumer.process.wait(10)
    finally:
        consumer.stop(signal.SIGKILL)
    if aligned:
        assert saved == {p: FIRST - 1 for p in eventhubs.partition_ids}  # at the last scrape, not beyond
    else:
        assert saved == {p: FIRST + SECOND - 1 for p in eventhubs.partition_ids}

    counts = next_replica_counts(eventhubs, hub, azurite, blob_container, tmp_path, "next")
    replayed = SECOND if aligned else 0
    print(f"\nscrape_aligned={aligned}, curl={curl}: checkpoints at kill -9 {saved}; the next replica counted {counts} "
          f"({SECOND} counted per partition and never scraped, then 1 marker)")
    # Exactly the unscraped events and the marker, in every partition: none of what Prometheus had
    # seen again, none of what it had not seen skipped (with alignment off: all of those skipped).
    assert {p: counts.get(p, 0) for p in eventhubs.partition_ids} == {p: replayed + 1 for p in eventhubs.partition_ids}
    assert counts["records"] == 4 * (replayed + 1) * RECORDS_PER_BODY


def test_sigterm_serves_metrics_until_a_scrape_reads_the_final_counts(eventhubs, azurite, blob_container,
                                                                      tmp_path: Path) -> None:
    wait = 30.0
    hub = Hub(eventhubs)
    consumer = start_consumer(eventhubs, azurite.connection_string, blob_container, tmp_path,
                              shutdown_final_scrape_wait_seconds=wait)
    try:
        held = scraped_then_unscraped(consumer, hub, azurite, blob_container, eventhubs)
        signalled = time.monotonic()
        consumer.process.send_signal(signal.SIGTERM)
        consumer.wait_until(lambda: any(line.get("message") == "shutting down" for line in log_lines(consumer)),
                            10, "shutting down")
        # The lame duck: not ready (the Service stops routing), still running, checkpoints unmoved.
        readiness = []
        while time.monotonic() - signalled < 2:
            status, body = consumer.get("/readyz")
            readiness.append(status)
            assert consumer.process.poll() is None, consumer.logs()[-3000:]
            time.sleep(0.2)
        assert set(readiness) == {503}, readiness
        checks = json.loads(body)["checks"]
        assert checks["shutdown"]["ok"] is False and checks["eventhub"]["ok"] is True, checks
        assert checkpoint_blobs(azurite.connection_string, blob_container, eventhubs) == \
            {p: FIRST - 1 for p in eventhubs.partition_ids}
        # The scrape that reads the final counts ends it.
        final = consumer.metrics()
        scraped_at = time.monotonic()
        code = consumer.process.wait(15)
        exited_after_scrape = time.monotonic() - scraped_at
        lines = log_lines(consumer)
    finally:
        consumer.stop(signal.SIGKILL)
    messages = [line.get("message") for line in lines]
    saved = checkpoint_blobs(azurite.connection_string, blob_container, eventhubs)
    print(f"\nSIGTERM with a scrape after 2 s of lame duck: exit {code} {exited_after_scrape:.2f} s after the "
          f"scrape (wait up to {wait} s); final checkpoints {saved}")
    assert code == 0, "\n".join(map(str, lines[-20:]))
    assert events_by_partition(final) == held
    assert "final counts scraped" in messages
    assert saved == {p: n - 1 for p, n in held.items()}  # every counted event: the scrape read them all
    assert exited_after_scrape < wait / 2

    counts = next_replica_counts(eventhubs, hub, azurite, blob_container, tmp_path, "next")
    assert {p: counts.get(p, 0) for p in eventhubs.partition_ids} == {p: 1 for p in eventhubs.partition_ids}


def test_sigterm_without_a_scrape_exits_after_the_wait_and_the_next_replica_counts_the_rest(
        eventhubs, azurite, blob_container, tmp_path: Path) -> None:
    wait = 3.0
    hub = Hub(eventhubs)
    consumer = start_consumer(eventhubs, azurite.connection_string, blob_container, tmp_path,
                              shutdown_final_scrape_wait_seconds=wait)
    try:
        scraped_then_unscraped(consumer, hub, azurite, blob_container, eventhubs)
        signalled = time.monotonic()
        consumer.process.send_signal(signal.SIGTERM)
        code = consumer.process.wait(wait + 15)
        took = time.monotonic() - signalled
        lines = log_lines(consumer)
    finally:
        consumer.stop(signal.SIGKILL)
    saved = checkpoint_blobs(azurite.connection_string, blob_container, eventhubs)
    print(f"\nSIGTERM without a scrape: exit {code} after {took:.2f} s (final scrape wait {wait} s); "
          f"final checkpoints {saved}")
    assert code == 0, "\n".join(map(str, lines[-20:]))
    assert wait <= took < wait + 10, took
    assert f"no /metrics scrape read the final counts within {wait:.0f} s: the final checkpoints stop at the last " \
           "scrape, the next owner counts the rest again" in [line.get("message") for line in lines]
    assert saved == {p: FIRST - 1 for p in eventhubs.partition_ids}
    counts = next_replica_counts(eventhubs, hub, azurite, blob_container, tmp_path, "next")
    assert {p: counts.get(p, 0) for p in eventhubs.partition_ids} == {p: SECOND + 1 for p in eventhubs.partition_ids}


def test_without_scrapes_for_no_scrape_seconds_checkpoints_go_on_counted_and_warned_once_per_episode(
        eventhubs, azurite, blob_container, tmp_path: Path) -> None:
    hub = Hub(eventhubs)
    silence = 2.0
    consumer = start_consumer(eventhubs, azurite.connection_string, blob_container, tmp_path,
                              checkpoint__no_scrape_seconds=silence)
    warning = "no /metrics scrape for"
    try:
        episodes = []
        for step in (FIRST, SECOND):
            held = hub.publish(step)
            wait_counted_unscraped(consumer, held)
            # No scrape: after `silence` seconds the checkpoints go on to the last counted event.
            consumer.wait_until(lambda: checkpoint_blobs(azurite.connection_string, blob_container, eventhubs)
                                == {p: n - 1 for p, n in held.items()}, 30, "unscraped checkpoints at the end")
            warnings = [line for line in log_lines(consumer) if line.get("message", "").startswith(warning)]
            unscraped = consumer.total("acs_consumer_unscraped_checkpoints_total")  # a scrape: ends the episode
            episodes.append((len(warnings), unscraped))
            consumer.wait_until(lambda: len(resumed_lines(consumer)) == len(episodes), 10, "the end of the episode logged")
    finally:
        consumer.stop(signal.SIGKILL)
    resumed = resumed_lines(consumer)
    print(f"\nno scrape for {silence} s: (warnings, unscraped checkpoints) after each episode {episodes}; "
          f"episodes ended {[line['silent_seconds'] for line in resumed]} s")
    (warned_first, unscraped_first), (warned_second, unscraped_second) = episodes
    assert (warned_first, warned_second) == (1, 2)  # once per episode
    assert len(resumed) == 2 and all(line["silent_seconds"] >= silence for line in resumed)
    assert unscraped_first >= 4  # at least one per partition
    assert unscraped_second >= unscraped_first + 4
