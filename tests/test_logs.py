"""consumer.logs: one JSON object per line; what the Azure SDKs log goes out scrubbed."""

from __future__ import annotations

import io
import json
import logging

import pytest

from consumer.errors import classify
from consumer.logs import configure


@pytest.fixture
def lines():
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure("INFO", stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_an_sdk_warning_is_logged_without_addresses_or_keys(lines):
    # what azure-eventhub's event processor logs when the namespace refuses the connection
    logging.getLogger("azure.eventhub.aio._eventprocessor.event_processor").warning(
        "An error occurred while load-balancing. The exception is %r.",
        ConnectionRefusedError("Connect call failed ('10.20.30.40', 5671); SharedAccessKey=c2VjcmV0Cg=="))
    [line] = lines()
    assert line["logger"] == "azure.eventhub.aio._eventprocessor.event_processor"
    assert "10.20.30.40" not in line["message"] and "c2VjcmV0Cg" not in line["message"]
    assert "Connect call failed ('***', 5671)" in line["message"]
    assert line["kind"] == "unreachable"  # the cause named as acs_consumer_errors_total names it
    assert line["error_type"] == "ConnectionRefusedError"
    assert line["error_reason"] == "Connect call failed ('***', 5671); SharedAccessKey=***"


def test_a_library_line_without_an_exception_has_no_kind(lines):
    logging.getLogger("azure.eventhub").warning("retrying in %d s", 2)
    [line] = lines()
    assert "kind" not in line and line["message"] == "retrying in 2 s"


def test_an_exception_logged_with_its_traceback_is_scrubbed(lines):
    try:
        raise OSError("no route to 10.20.30.40 for +4915112345678")
    except OSError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    [line] = lines()
    assert line["error"] == "OSError: no route to *** for ***"
    assert line["kind"] == classify(OSError())


def test_the_services_own_lines_are_left_as_they_are(lines):
    # they never put a value in the message (consumer/errors.py scrubs what they quote); a partition
    # and a sequence number are fields, and a message may name a count or a size
    logging.getLogger("consumer.eventhub").warning("invalid records: %d of %d", 1234567890, 1234567891,
                                                   extra={"partition": "0", "sequence_number": 12})
    [line] = lines()
    assert line["message"] == "invalid records: 1234567890 of 1234567891"
    assert (line["partition"], line["sequence_number"]) == ("0", 12)
