"""Memory is bounded in bytes, not only in entries: what the pipeline keeps between bodies (the
correlation and duplicate windows, the label memos) does not grow with the length of the raw values.

A flood of records whose MessageIds (or label fields) are 8 KB each: 10,000 of them would keep ~80 MB
alive if the windows held the ids or the memos held the values; the pipeline keeps fixed-size keys
and does not memoise over-long values. Measured with tracemalloc (allocations by Python), after the
bodies themselves are gone. (Before the windows kept fixed-size keys and the memos refused long
values, these floods kept 33-82 MB; now about 4 MB.)
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable

import pytest

from consumer.config import PipelineSettings
from consumer.metrics import Metrics
from consumer.pipeline import Pipeline

NOW = 1_800_000_000.0
RECORDS = 10_000
PER_BODY = 50  # two 8 KB values a record: bodies stay under the 1 MiB limit
ID_BYTES = 8 * 1024
#: What 10,000 records may leave behind: fixed-size window entries (~100-200 bytes each, both windows)
#: and metric children. The ids alone are 80 MB; a quarter of their memo (4,096 of 10,000) is 32 MB.
GROWTH_LIMIT = 8 * 1024 * 1024


def _long(i: int, tag: str) -> str:
    head = f"{tag}-{i:06d}-"
    return head + "x" * (ID_BYTES - len(head))


def _sms(i: int, **overrides: str) -> dict:
    operation = "SMSMessagesSent" if i % 2 == 0 else "SMSDeliveryReportsReceived"
    props = {"MessageId": _long(i, "id"), "NumberType": "LongCodeNumber", "Country": "US"}
    props.update(overrides)
    return {"time": "2027-01-15T08:00:00.1234567Z", "category": "SMSOperational", "operationName": operation,
            "resultType": "Succeeded", "resultSignature": 202, "durationMs": 10, "properties": props}


#: Distinct long label values in the label floods: just under the memos' entry limit (4,096), so a
#: memo that kept them would hold all of them at the end (32 MB).
DISTINCT_VALUES = 4000


def _usage(i: int) -> dict:
    return {"time": "2027-01-15T08:00:00.1234567Z", "category": "Usage", "operationName": "Usage",
            "properties": {"RecordId": _long(i, "rec"), "UsageType": _long(i % DISTINCT_VALUES, "usage"),
                           "UnitType": "Message", "Quantity": 1}}


def _growth(make_record: Callable[[int], dict], canonical: bool) -> int:
    """Bytes still allocated after RECORDS records of `make_record` went through one pipeline."""
    metrics = Metrics(PipelineSettings().buckets, "test")
    pipeline = Pipeline(PipelineSettings(), metrics.domain)
    pipeline.canonical = canonical
    pipeline.process(json.dumps({"records": [_sms(-1), _usage(-1)]}).encode(), NOW)  # first-use allocations
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for start in range(0, RECORDS, PER_BODY):
            body = json.dumps({"records": [make_record(i) for i in range(start, start + PER_BODY)]}).encode()
            result = pipeline.process(body, NOW)
            assert result.processed == PER_BODY, result
        del body, result
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("canonical", [True, False])
def test_long_message_ids_are_not_kept(canonical: bool) -> None:
    growth = _growth(_sms, canonical)
    assert growth < GROWTH_LIMIT, f"{growth / 2**20:.1f} MiB kept for {RECORDS} records"


@pytest.mark.parametrize("field, canonical", [("NumberType", True), ("Country", False)])  # each decoder's memo
def test_long_label_values_are_not_memoised(canonical: bool, field: str) -> None:
    # short MessageIds: only the label values are long here
    growth = _growth(lambda i: _sms(i, MessageId=f"m{i}", **{field: _long(i % DISTINCT_VALUES, field)}), canonical)
    assert growth < GROWTH_LIMIT, f"{growth / 2**20:.1f} MiB kept for {RECORDS} records"


def test_long_usage_values_are_not_memoised() -> None:
    growth = _growth(_usage, True)
    assert growth < GROWTH_LIMIT, f"{growth / 2**20:.1f} MiB kept for {RECORDS} records"


@pytest.mark.parametrize("field, canonical", [("NumberType", True), ("Country", False)])  # each decoder's memo
def test_short_non_ascii_label_values_are_not_memoised(canonical: bool, field: str) -> None:
    # Within the memo's length bound (256 characters), but 4 bytes a character (an emoji makes the str
    # UCS-4): 4,000 distinct values of ~1 KB each would keep ~4 MB per field in a memo, and each memo key
    # holds four such fields (resultType, NumberType, Country, resourceId): ~16 MB.
    def value(i: int, tag: str) -> str:
        head = f"{tag}-{i % DISTINCT_VALUES:06d}-"
        return head + "\U0001f600" * (250 - len(head))

    def record(i: int) -> dict:
        raw = _sms(i, MessageId=f"m{i}", NumberType=value(i, "n"), Country=value(i, "c"))
        return raw | {"resultType": value(i, "r"), "resourceId": value(i, "x")}

    growth = _growth(record, canonical)
    assert growth < GROWTH_LIMIT, f"{growth / 2**20:.1f} MiB kept for {RECORDS} records"
