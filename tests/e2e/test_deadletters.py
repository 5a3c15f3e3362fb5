"""Dead letters before checkpoints, through `acs-sms-consumer run`: a checkpoint never passes an event
whose dead letter is neither written nor dropped, and after a crash the next owner submits it again.

The dead-letter container is deleted while the consumer runs, so the undecodable event's letter
cannot be written (each attempt fails; the letter stays pending for its 3 attempts, ~6 s). Meanwhile
the events after it are counted and scraped, and checkpoints, which would name them within about a
second (interval 1 s), stay at the event before the letter. The process is then killed (`kill -9`)
with the letter still pending; the container is created again and a second process, replaying from
that checkpoint, counts the rest again and writes the letter, byte for byte.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from tests.e2e.support import ConsumerProcess, checkpoint_blobs, free_port, write_config

GOOD = b'{"records": [{"category": "Usage", "operationName": "SMS", "properties": {"Quantity": 1, "UsageType": "SMS"}}]}'
BAD = b'{"records": [{"category": "Usage", "operationName": "SMS", "properties": {"Quantity": '  # truncated


def test_a_pending_dead_letter_holds_the_checkpoint_and_is_written_after_a_crash(eventhubs, azurite, blob_container,
                                                                                 tmp_path: Path) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    letters = service.get_container_client(f"{blob_container}-dl")
    checkpoint = lambda: checkpoint_blobs(azurite.connection_string, blob_container, eventhubs).get("0")  # noqa: E731
    port = free_port()
    config = write_config(tmp_path / "config.yaml", eventhubs.connection_string, eventhubs.hub.name,
                          azurite.connection_string, blob_container, port, checkpoint__every_events=1)
    first = ConsumerProcess(config, port, tmp_path / "first.log").start()
    try:
        first.wait_until(lambda: first.get("/readyz")[0] == 200, 60, "readiness")
        eventhubs.publish("0", [GOOD, GOOD, GOOD])  # 0..2
        first.wait_until(lambda: first.metrics() and checkpoint() == 2, 20, "a checkpoint at event 2 (scraped)")
        letters.delete_container()
        eventhubs.publish("0", [BAD, GOOD, GOOD, GOOD])  # 3 (undecodable), 4..6
        first.wait_until(lambda: first.total("acs_consumer_events_total", partition="0") == 7
                         and first.total("acs_consumer_dead_letters_total", outcome="error") >= 1, 20,
                         "the events after the letter counted, its first write failed")
        # Scraped (the polls above and below are scrapes) and due (interval 1 s): without the hold the
        # checkpoint would name event 6 within about a second.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert first.total("acs_consumer_events_total", partition="0") == 7
            assert checkpoint() == 2
            time.sleep(0.1)
        assert first.total("acs_consumer_dead_letters_total", outcome="dropped") == 0  # still pending
        assert first.total("acs_consumer_dead_letters_total", outcome="written") == 0
    finally:
        first.stop(signal.SIGKILL)
    assert checkpoint() == 2

    letters.create_container()
    second = ConsumerProcess(config, port, tmp_path / "second.log").start()
    try:
        second.wait_until(lambda: second.total("acs_consumer_dead_letters_total", outcome="written") == 1, 60,
                          "the letter written by the next owner")
        second.wait_until(lambda: second.metrics() and checkpoint() == 6, 20, "the checkpoint past the letter")
        assert second.total("acs_consumer_events_total", partition="0") == 4  # replayed from event 3
        assert second.total("acs_consumer_decode_errors_total", reason="invalid_json") == 1
    finally:
        assert second.stop() == 0, second.logs()[-3000:]
    [blob] = list(letters.list_blobs(include=["metadata"]))
    assert blob.name.endswith("/0/3.body") and blob.metadata["reason"] == "invalid_json"
    assert letters.download_blob(blob.name).readall() == BAD
    service.close()
