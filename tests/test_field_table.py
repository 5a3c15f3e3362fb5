"""consumer.fields is the one declaration of each record field: both decoders follow it.

The general decoder (`convert`: pydantic models, spelling lookups) and the canonical decoder
(`decode_canonical`: msgspec Structs) are built from the table when `consumer.records` is imported,
so a changed table is tried in a fresh interpreter, where the table is changed before that import.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import orjson
import pytest

from consumer.decode import DecodeError, decode_body
from consumer.fields import FIELDS, IGNORED, NESTED_PROPERTIES, NUMBERS, PROPERTIES, Field, spellings
from consumer.labels import SMS_OPERATIONAL, USAGE
from consumer.records import (
    CanonicalProperties,
    CanonicalRecord,
    Invalid,
    SmsOperational,
    Usage,
    convert,
    decode_canonical,
)

TIME = "2026-11-02T10:00:00.0000000Z"
REQUIRED = {SMS_OPERATIONAL: {}, USAGE: {"Quantity": 1}}  # the fields each category needs in `properties`


def _record(field: Field, value: Any) -> dict[str, Any]:
    """A record of the Event Hubs shape, in the category of `field`, that holds `value` for it."""
    category = USAGE if field.category == "usage" else SMS_OPERATIONAL
    record: dict[str, Any] = {"time": TIME, "category": category, "operationName": "SMSMessagesSent"}
    properties = dict(REQUIRED[category])
    (properties if field.nested else record)[field.event_hubs] = value
    return record | {"properties": properties}


def _canonical(record: dict[str, Any]) -> Any:
    """The canonical decoder's one record of a body holding `record`, or None when it declines."""
    records = decode_canonical(orjson.dumps({"records": [record]}))
    return None if records is None else records[0]


def _value(record: Any, field: Field) -> Any:
    return getattr(record.properties if field.nested else record, field.event_hubs)


def _in_fresh_interpreter(change: str, check: str) -> Any:
    """Run `change` (to `consumer.fields`, imported as `fields`) before `consumer.records` is imported,
    then `check`, which sets `out`; returns `out` (through JSON)."""
    script = "\n".join([
        "import json",
        "import consumer.fields as fields",
        textwrap.dedent(change),
        "from consumer.records import Invalid, SmsOperational, convert, decode_canonical",
        textwrap.dedent(check),
        "print(json.dumps(out))",
    ])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_field_added_to_the_table_is_carried_by_both_decoders() -> None:
    out = _in_fresh_interpreter(
        """
        fields.FIELDS += (fields.Field("segment_count", "SegmentCount", True, "count", "sms", ("Segments",)),)
        """,
        """
        base = {"time": "2026-11-02T10:00:00Z", "category": "SMSOperational", "operationName": "SMSMessagesSent"}
        def body(value):
            return json.dumps({"records": [base | {"properties": {"SegmentCount": value}}]}).encode()
        out = {
            "model": "segment_count" in SmsOperational.model_fields,
            "canonical": decode_canonical(body(3))[0].properties.SegmentCount,
            "general": convert(base | {"Segments": " 4 "}).properties.SegmentCount,
            "any casing": convert(base | {"properties": {"segmentcount": 5}}).properties.SegmentCount,
            "canonical, over the bound": decode_canonical(body(fields.MAX_COUNT + 1)),
            "general, over the bound": convert(base | {"SegmentCount": fields.MAX_COUNT + 1}).reason,
        }
        """,
    )
    assert out == {
        "model": True,
        "canonical": 3,
        "general": 4,
        "any casing": 5,
        "canonical, over the bound": None,
        "general, over the bound": "SegmentCount input should be less than or equal to 1000000",
    }


def test_a_bound_changed_in_the_table_is_the_bound_of_both_decoders() -> None:
    out = _in_fresh_interpreter(
        """
        fields.NUMBERS["count"] = fields.Bounds(int, 2, 10)
        """,
        """
        base = {"time": "2026-11-02T10:00:00Z", "category": "SMSOperational", "operationName": "SMSMessagesSent"}
        def body(value):
            return json.dumps({"records": [base | {"properties": {"DeliveryAttempts": value}}]}).encode()
        out = {
            str(value): [decode_canonical(body(value)) is not None,
                         type(convert(base | {"properties": {"DeliveryAttempts": value}})) is not Invalid]
            for value in (1, 2, 10, 11)
        }
        """,
    )
    assert out == {"1": [False, False], "2": [True, True], "10": [True, True], "11": [False, False]}


def test_both_decoders_have_exactly_the_fields_of_the_table() -> None:
    for model, category in ((SmsOperational, "sms"), (Usage, "usage")):
        table = {f.name for f in FIELDS if f.category in ("common", category)}
        assert set(model.model_fields) - {"time_problem"} == table
    top = {f.event_hubs for f in [*FIELDS, *IGNORED] if not f.nested and f.event_hubs is not None}
    nested = {f.event_hubs for f in [*FIELDS, *IGNORED] if f.nested and f.event_hubs is not None}
    assert set(CanonicalRecord.__struct_fields__) == top | {PROPERTIES}
    assert set(CanonicalProperties.__struct_fields__) == nested | {NESTED_PROPERTIES}


NUMBER_FIELDS = [f for f in FIELDS if f.kind in NUMBERS]


@pytest.mark.parametrize("field", NUMBER_FIELDS, ids=[f.name for f in NUMBER_FIELDS])
def test_both_decoders_take_numbers_within_the_table_bounds_only(field: Field) -> None:
    bounds = NUMBERS[field.kind]
    for inside in (bounds.low, bounds.high):
        record = _record(field, inside)
        assert _value(_canonical(record), field) == inside
        assert _value(convert(record), field) == inside
    for outside in (bounds.low - 1, bounds.high + 1):
        record = _record(field, outside)
        assert _canonical(record) is None
        outcome = convert(record)
        assert type(outcome) is Invalid and outcome.reason.startswith(field.event_hubs), outcome


PII_FIELDS = [f for f in FIELDS if f.pii]


@pytest.mark.parametrize("field", PII_FIELDS, ids=[f.name for f in PII_FIELDS])
def test_a_personal_field_is_kept_but_never_in_repr_or_dumps(field: Field) -> None:
    secret = "+15550109999"
    model = SmsOperational if field.category in ("common", "sms") else Usage
    record = model.model_validate({"operation_name": "SMSMessagesSent", "category": "x", "quantity": 1,
                                   field.name: secret})
    assert getattr(record, field.name) == secret
    assert secret not in repr(record) + json.dumps(record.model_dump(), default=str) + record.model_dump_json()


def test_the_personal_fields_of_the_table() -> None:
    # a field becomes personal (out of repr and dumps) by its flag alone: this list says which are
    assert [f.name for f in PII_FIELDS] == ["sender"]


MARKERS = sorted({s for f in FIELDS if f.marks_record for s in spellings(f)})
OTHERS = sorted({s for f in FIELDS if not f.marks_record for s in spellings(f)})


@pytest.mark.parametrize("spelling", MARKERS)
def test_a_lone_object_with_a_marker_field_is_a_record(spelling: str) -> None:
    for key in (spelling, spelling.upper(), spelling.lower()):
        assert decode_body(orjson.dumps({key: "x"}), 1024).records == [{key: "x"}]


@pytest.mark.parametrize("spelling", OTHERS)
def test_a_lone_object_without_a_marker_field_is_not_records(spelling: str) -> None:
    assert decode_body(orjson.dumps({spelling: "x"}), 1024).error is DecodeError.NOT_RECORDS
