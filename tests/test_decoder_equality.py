"""The two decoders agree: for every body, the canonical decoder (`decode_canonical`, msgspec, one pass)
and the general decoder (`decode_body` + `convert` per record) give identical typed records (what the
apply loop reads of them), and the one apply loop (`Pipeline._apply`) fed either route makes identical
metrics and BodyResults."""

from __future__ import annotations

import copy
import json
import math
import string
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import StringConstraints, TypeAdapter

from acs_sms_devtools.traffic import generate_corpus
from consumer.config import PipelineSettings
from consumer.decode import decode_body
from consumer.fields import FIELDS
from consumer.labels import SMS_OPERATIONAL, USAGE
from consumer.metrics import Metrics
from consumer.pipeline import EventContext, Pipeline
from consumer.records import (
    NO_PROPERTIES,
    CanonicalRecord,
    Invalid,
    Skipped,
    SmsOperational,
    Usage,
    CATEGORY_SPELLINGS,
    NULL_SPELLINGS,
    convert,
    decode_canonical,
    parse_time,
    plain,
    time_stamp,
)
from tests.examples import EVENTHUBS_SMS
from tests.models import normalise

SAMPLES = Path(__file__).resolve().parent.parent / "consumer" / "samples"
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()

EVENTHUBS_USAGE: dict[str, Any] = {
    "time": "2026-11-02T09:15:02.5000000Z",
    "resourceId": "/SUBSCRIPTIONS/X",
    "operationName": "Usage",
    "operationVersion": "1.0",
    "category": "Usage",
    "correlationId": "c",
    "level": "Informational",
    "location": "global",
    "properties": {
        "RecordId": "c13733aa-5f64-45b0-9d7c-c2851a60c5c6",
        "UsageType": "SMS",
        "UnitType": "Message",
        "Quantity": 2,
        "Properties": '{"NumberType":"LongCodeNumber","Country":"CA"}',
    },
}
LOG_ANALYTICS_SMS: dict[str, Any] = {
    "TimeGenerated": "2022-09-26T15:58:30.100Z",
    "OperationName": "SMSDeliveryReportsReceived",
    "CorrelationId": "x",
    "Category": "SMSOperational",
    "ResultType": "Failed",
    "ResultSignature": 4001,
    "DurationMs": 130,
    "CallerIpAddress": "192.0.2.1",
    "Level": "Error",
    "URI": "https://example.invalid/",
    "OutgoingMessageLength": 0,
    "IncomingMessageLength": 0,
    "DeliveryAttempts": 3,
    "PhoneNumber": "+15550100099",
    "NumberType": "TollFreeNumber",
    "SdkType": "",
    "PlatformType": "",
    "Method": "POST",
    "MessageId": "Outgoing_2023_noam",
    "Country": "GB",
    "TenantId": "t",
    "Type": "ACSSMSIncomingOperations",
}
LOG_ANALYTICS_USAGE: dict[str, Any] = {
    "TimeGenerated": "2022-09-26T15:58:31Z",
    "OperationName": "Usage",
    "Category": "Usage",
    "RecordId": "r-1",
    "UsageType": "SMS",
    "UnitType": "Message",
    "Quantity": 1.5,
}
BASES = {"eh-sms": EVENTHUBS_SMS, "eh-usage": EVENTHUBS_USAGE, "la-sms": LOG_ANALYTICS_SMS, "la-usage": LOG_ANALYTICS_USAGE}

# Values that exercise the null spellings, coercions and every validation error.
ODD_VALUES: list[Any] = [
    None, "", " ", "  ", "null", "NULL", "Null", "None", "none", " null ", "x", "  padded  ", 0, -1, 1.5, 1e400,
    "7", "-3", "1.0", True, [], {}, [1], {"a": 1}, "NaN", "2026-11-02T09:15:01Z", "\u00e9t\u00e9", "a" * 200,
]
TIMES: list[Any] = [
    "2026-11-02T09:15:01.1234567Z", "2026-11-02T09:15:01Z", "2026-11-02T09:15:01+02:00", "2026-11-02 09:15:01",
    "11/02/2026 09:15:01", "11/02/2026 9:15:01 AM", "0001-01-01T00:00:00+01:00", "yesterday", "", " ", "null",
    None, 12, 1.5, [], {}, " 2026-11-02T09:15:01Z ",
]


#: The fields the apply loop reads of a record of each category.
_READ = {SMS_OPERATIONAL: [f for f in FIELDS if f.category == "sms"
                           or f.name in ("time", "operation_name", "result_type", "result_signature")],
         USAGE: [f for f in FIELDS if f.category == "usage" or f.name == "time"]}


UNUSUAL = "\0unusual"  # `clean`: a value only the general decoder may interpret


def clean(value: str | None) -> str | None:
    """What the general decoder makes of a string value: None for a null spelling, the value itself
    when it is `plain`, UNUSUAL when it has something to strip."""
    if value is None or value in NULL_SPELLINGS:
        return None
    return value if plain(value) else UNUSUAL


def _read(record: CanonicalRecord, canonical: bool) -> dict[str, Any] | Skipped | None:
    """What the apply loop reads of a typed record: the fields of its category (a number signature as
    its text, the time as `time_stamp` makes it); for the canonical decoder's records the values
    cleaned as the loop cleans them (`clean`), and None when the loop has the general decoder convert
    the record instead (a value `clean` calls UNUSUAL, a null operation name, a Usage record without
    Quantity, a category spelled otherwise)."""
    category = record.category
    if category not in _READ:
        if canonical and (category in NULL_SPELLINGS or category.strip() is not category or category.lower() in CATEGORY_SPELLINGS):
            return None
        return Skipped(category)
    if canonical and (record.operationName in NULL_SPELLINGS
                      or (category == SMS_OPERATIONAL and record.operationName.strip() is not record.operationName)):
        return None
    properties = record.properties or NO_PROPERTIES
    values: dict[str, Any] = {}
    for field in _READ[category]:
        value = getattr(properties if field.nested else record, field.event_hubs)
        if field.kind == "time":
            value = time_stamp(value)
        elif field.kind == "signature" and type(value) is int:
            value = str(value)
        elif canonical and type(value) is str:
            value = clean(value)
            if value is UNUSUAL:
                return None
        values[field.name] = value
    if category == USAGE and values["quantity"] is None:
        return None
    return values


def _decoders(body: bytes) -> int:
    """Check that both decoders give the same typed records for `body`; how many records the canonical
    decoder gave that the apply loop takes as they are."""
    canonical = decode_canonical(body)
    general = [convert(raw) for raw in decode_body(body, 1 << 30).records]
    if canonical is None:
        return 0
    assert len(canonical) == len(general)
    taken = 0
    for typed, converted in zip(canonical, general, strict=True):
        read = _read(typed, canonical=True)
        if read is None:
            continue
        taken += 1
        assert (converted if type(converted) is Skipped else _read(converted, canonical=False)) == read
    return taken


def _same(raw: Any) -> None:
    """One record: `convert` carries what `normalise` validates, and alone in a body both decoders give
    the same typed records."""
    outcome = normalise(copy.deepcopy(raw))
    converted = convert(raw)
    if isinstance(outcome, SmsOperational | Usage):
        time = outcome.time
        expected = {f.name: getattr(outcome, f.name) for f in _READ[outcome.category] if f.kind != "time"}
        expected["time"] = (None, None) if time is None else (time.timestamp(), time.microsecond)
        assert _read(converted, canonical=False) == expected
    else:
        assert converted == outcome
    _decoders(_body(raw))


def _field_paths(raw: dict[str, Any]) -> list[tuple[str, ...]]:
    paths = [(key,) for key in raw if key != "properties"]
    if isinstance(raw.get("properties"), dict):
        paths += [("properties", key) for key in raw["properties"]]
    return paths


def _with(raw: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


def _without(raw: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    changed = copy.deepcopy(raw)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_the_plain_shapes_agree_and_canonical_ones_are_taken_as_they_are(base: dict[str, Any]) -> None:
    _same(base)
    assert _decoders(_body(base)) == ("time" in base)


@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_every_field_with_every_odd_value_agrees(base: dict[str, Any]) -> None:
    for path in _field_paths(base):
        for value in ODD_VALUES:
            _same(_with(base, path, value))


@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_every_field_missing_agrees(base: dict[str, Any]) -> None:
    for path in _field_paths(base):
        _same(_without(base, path))


@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_every_time_form_agrees(base: dict[str, Any]) -> None:
    key = "time" if "time" in base else "TimeGenerated"
    for value in TIMES:
        _same(_with(base, (key,), value))


@pytest.mark.parametrize("base", BASES.values(), ids=BASES.keys())
def test_odd_key_casing_goes_the_general_way_and_agrees(base: dict[str, Any]) -> None:
    for path in _field_paths(base):
        for spelling in (path[-1].upper(), path[-1].lower(), path[-1][:1].swapcase() + path[-1][1:]):
            if spelling == path[-1]:
                continue
            changed = _without(base, path)
            target = changed if len(path) == 1 else changed["properties"]
            target[spelling] = (base if len(path) == 1 else base["properties"])[path[-1]]
            _same(changed)


def test_same_field_in_two_places_or_two_spellings_agrees() -> None:
    both = _with(EVENTHUBS_SMS, ("properties", "ResultType"), "Failed")
    _same(both)
    _same(_with(both, ("resultType",), None))
    _same(_with(both, ("resultType",), "null"))
    _same(_with(EVENTHUBS_SMS, ("properties", "DurationMs"), 5))
    _same(_with(EVENTHUBS_SMS, ("TimeGenerated",), "2020-01-01T00:00:00Z"))
    _same(_with(LOG_ANALYTICS_SMS, ("MessageID",), "other-id"))
    _same(_with(LOG_ANALYTICS_SMS, ("properties",), {"Country": "FR", "MessageId": "p"}))
    _same(_with(EVENTHUBS_SMS, ("Extra",), 1))
    _same(_with(EVENTHUBS_SMS, ("properties", "Extra"), 1))


def test_properties_forms_agree() -> None:
    properties = EVENTHUBS_SMS["properties"]
    for value in (
        orjson.dumps(properties).decode(),
        str(properties),  # Azure's single-quoted pseudo-JSON
        "not json {",
        "", " ", "null", None, [], [properties], 3, {},
    ):
        _same(_with(EVENTHUBS_SMS, ("properties",), value))
    _same(_without(EVENTHUBS_SMS, ("properties",)))
    _same(_without(EVENTHUBS_USAGE, ("properties",)))


def test_categories_agree() -> None:
    for base in BASES.values():
        key = "category" if "category" in base else "Category"
        for value in ("SMSOperational", "Usage", "smsoperational", " Usage ", "ChatOperational", "", "null", None, 7,
                      ["SMSOperational"]):
            _same(_with(base, (key,), value))
        _same(_without(base, (key,)))


def test_skipped_and_invalid_outcomes_agree() -> None:
    chat = _with(_with(EVENTHUBS_SMS, ("category",), "ChatOperational"), ("properties", "ChatThreadId"), "19:x")
    assert isinstance(normalise(chat), Skipped)
    _same(chat)
    bad = _with(EVENTHUBS_SMS, ("durationMs",), "fast")
    assert isinstance(normalise(bad), Invalid)
    _same(bad)
    _same(_with(EVENTHUBS_USAGE, ("properties", "Quantity"), -1))


def test_dict_subclass_and_non_objects_agree() -> None:
    class Record(dict):  # type: ignore[type-arg]
        pass

    _same(Record(copy.deepcopy(EVENTHUBS_SMS)))
    for value in (None, 1, "x", [], [EVENTHUBS_SMS]):
        _same(value)


def test_samples_agree() -> None:
    for path in sorted(SAMPLES.glob("*.json")):
        value = orjson.loads(path.read_bytes())
        for raw in value["records"] if isinstance(value, dict) else value:
            _same(raw)


def test_a_generated_corpus_agrees_and_its_records_are_taken_as_they_are() -> None:
    taken = total = 0
    for body in generate_corpus(2_000, records_per_body=50, seed=7):
        for raw in orjson.loads(body)["records"]:
            _same(raw)
        total += len(decode_canonical(body) or ())
        taken += _decoders(body)
    assert taken / total > 0.95


# --- the apply loop fed by either decoder -------------------------------------------------------
#
# Every body goes through two fresh pipelines: one takes canonical bodies through the canonical decoder,
# the other (`canonical = False`) every body through the general decoder; both apply the typed records
# with the same loop. The typed records of both decoders are compared too (`_decoders`). Each
# BodyResult and the whole rendered exposition (every family, every series, in order) must be identical.


class _Routes:
    """The same bodies through the canonical decoder and through the general decoder (`canonical =
    False`), into two pipelines' state; the same apply loop."""

    def __init__(self, **pipeline_settings: Any) -> None:
        self.canonical_metrics = Metrics(PipelineSettings().buckets, "t")
        self.general_metrics = Metrics(PipelineSettings().buckets, "t")
        self.canonical = Pipeline(PipelineSettings(**pipeline_settings), self.canonical_metrics.domain)
        self.general = Pipeline(PipelineSettings(**pipeline_settings), self.general_metrics.domain)
        self.general.canonical = False
        self.canonical_bodies = 0

    def process(self, body: bytes, now: float, context: EventContext | None = None) -> None:
        self.canonical_bodies += bool(decode_canonical(body))
        _decoders(body)
        assert self.canonical.process(body, now, context) == self.general.process(body, now, context)
        assert len(self.canonical.correlator) == len(self.general.correlator)
        assert len(self.canonical._seen) == len(self.general._seen)

    def check(self) -> None:
        assert self.canonical_metrics.render().decode() == self.general_metrics.render().decode()


@pytest.mark.parametrize("seed", [1, 2, 3, 11])
def test_generated_corpora_agree_and_take_the_canonical_path(seed: int) -> None:
    routes = _Routes()
    bodies = generate_corpus(3_000, records_per_body=50, seed=seed)
    now = T0 + 60
    for body in bodies:
        now += 0.05
        routes.process(body, now, EventContext(partition="0"))
    routes.check()
    assert routes.canonical_bodies == len(bodies)


def test_small_windows_agree() -> None:
    # Evictions by capacity and age, duplicates forgotten and seen again.
    routes = _Routes(correlation_max_entries=20, duplicates_max_entries=30, correlation_max_age_seconds=2.0)
    bodies = generate_corpus(2_000, records_per_body=20, seed=5)
    now = T0
    for body in bodies + bodies[::3]:
        now += 0.5
        routes.process(body, now, EventContext(partition="1", enqueued_time=now - 3))
    routes.check()


def test_small_windows_with_a_clock_that_jumps_and_general_records_agree() -> None:
    # The duplicate window's age check after each insert: entries stamped out of order (the caller's
    # clock going back and forth), capacity and age evictions, and records the general path takes in
    # the middle of canonical bodies (they add to the same window).
    routes = _Routes(correlation_max_entries=7, duplicates_max_entries=9, duplicates_max_age_seconds=1.5,
                 correlation_max_age_seconds=1.0)
    bodies = generate_corpus(600, records_per_body=12, seed=9)
    odd = _with(EVENTHUBS_USAGE, ("properties", "UsageType"), " padded ")
    now = T0
    for i, body in enumerate(bodies + bodies[::2]):
        now += (0.7, -1.1, 2.3, -0.4, 0.0)[i % 5]
        if i % 3 == 0:
            records = orjson.loads(body)["records"]
            records.insert(i % len(records), odd)
            body = _body(*records)
        routes.process(body, now)
    routes.check()


def test_samples_and_quirks_agree() -> None:
    routes = _Routes()
    now = T0 + 3600
    for path in sorted(SAMPLES.iterdir()):
        if path.suffix == ".jsonl":
            for line in path.read_bytes().splitlines():
                routes.process(line, now)
        else:
            routes.process(path.read_bytes(), now)
            routes.process(path.read_bytes(), now)  # duplicates
    routes.check()


def _body(*records: Any) -> bytes:
    return json.dumps({"records": list(records)}).encode()


def test_each_odd_value_agrees_in_a_body_of_plain_records() -> None:
    chat = _with(_with(EVENTHUBS_SMS, ("category",), "ChatOperational"), ("properties",), {"ChatThreadId": "19:x"})
    for base in (EVENTHUBS_SMS, EVENTHUBS_USAGE, chat):
        routes = _Routes()
        for path in _field_paths(base):
            for value in [*ODD_VALUES, *TIMES, 2**63, 2**63 - 1, 2**64, 2**64 + 1, -(2**63) - 1, 10**30, 1e308, -0.0,
                          "SMSOperational", "Usage", "usage", "Chat Operational"]:
                if isinstance(value, float) and not math.isfinite(value):
                    continue
                routes.process(_body(EVENTHUBS_SMS, _with(base, path, value), EVENTHUBS_USAGE), T0)
            routes.process(_body(_without(base, path), EVENTHUBS_SMS), T0)
        routes.check()


def test_bodies_that_are_not_quite_canonical_agree() -> None:
    routes = _Routes(max_body_bytes=4096)
    plain = _body(EVENTHUBS_SMS)
    for body in (
        plain, b"\xef\xbb\xbf" + plain, plain + b" ", b" " + plain, plain[:-1] + b',"other":1}', b'{"records": []}',
        b'{"records": {}}', b'{"Records": ' + plain[12:], b"[" + plain + b"]", plain.replace(b"131", b"NaN"),
        plain.replace(b"131", b"1e400"), plain.replace(b'"level": "Informational"', b'"level": 1e400'),
        plain.replace(b'"level": "Informational"', b'"level": "\xff"'),
        plain.replace(b'"level": "Informational"', b'"level": "\\ud800"'),
        plain.replace(b"Informational", b"Info\x01rmational"), plain.replace(b'"level"', b"'level'"),
        plain.replace(b'"level": "Informational"', b'"level": 123456789012345678901234567890'),
        plain.replace(b"131", b"123456789012345678901234567890"), plain.replace(b"131", b"131.5"),
        plain.replace(b"131", b"1e2"), plain.replace(b'"DeliveryAttempts": 0', b'"DeliveryAttempts": 1.0'),
        plain.replace(b'"category"', b'"category": "Usage", "category"'),
        plain.replace(b'"category"', b'"Category": "Usage", "category"'),
        plain.replace(b"202", b"18446744073709551616"), plain.replace(b"202", b"-9223372036854775809"),
        plain.replace(b"202", b"true"), plain.replace(b'"MessageId": "', b'"MessageId": "\\u00e9'),
        _body(*[EVENTHUBS_SMS] * 60), b'{"records": [' + b",".join([plain[13:-2]] * 40) + b"]}",
    ):
        routes.process(body, T0 + 10)
    routes.check()


def test_azure_form_times_with_a_cached_second_agree() -> None:
    # The canonical loop reads the whole-second cache itself: each odd 28-character time comes after a
    # plain one of the same second (cached), and after one whose prefix is cached as unparseable.
    routes = _Routes()
    fractions = ["1234567", "0000000", "9999999", "123456\u0663", "\u0661234567", "12345 7", "+123456", "-123456",
                 "1_23456", "123456a", "１２３４５６７", "000000\u00b2"]
    for prefix in ("2026-11-02T09:15:01", "2026-11-02T09:15:02", "2026-02-30T09:15:01", "0001-01-01T00:00:00",
                   "9999-12-31T23:59:59", "2026-11-02T24:00:00", "2026-11-02 09:15:01", "2026-11-02T09:15:0\u0661"):
        for separator, zone in ((".", "Z"), (",", "Z"), (".", "z"), (".", "+")):
            for fraction in fractions:
                records = []
                for base in (EVENTHUBS_SMS, EVENTHUBS_USAGE):
                    records.append(_with(base, ("time",), prefix + ".1234567Z"))
                    records.append(_with(_with(base, ("time",), prefix + separator + fraction + zone),
                                         ("properties", "MessageId" if base is EVENTHUBS_SMS else "RecordId"),
                                         prefix + fraction))
                routes.process(_body(*records), T0 + 10)
    routes.check()


# Times in every form the general path accepts or rejects.
_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=5, minutes=30)), timezone(timedelta(hours=14))]


@st.composite
def _times(draw: st.DrawFn) -> Any:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    digits = draw(st.integers(0, 9))
    zone = draw(st.sampled_from([*_ZONES, None]))
    text = moment.isoformat(timespec="seconds")
    if digits:
        text += "." + "".join(draw(st.lists(st.sampled_from(string.digits), min_size=digits, max_size=digits)))
    if zone is UTC:
        text += draw(st.sampled_from(["Z", "+00:00"]))
    elif zone is not None:
        offset = datetime(2000, 1, 1, tzinfo=zone).strftime("%z")
        text += offset[:3] + ":" + offset[3:]
    return draw(st.sampled_from([text, text, text, " " + text, text.replace("T", " "), text.lower(), text[:-1]]))


@given(_times())
@settings(max_examples=500, deadline=None)
def test_time_stamp_is_parse_time(text: str) -> None:
    parsed, _ = parse_time(text)
    if parsed is None:
        assert time_stamp(text) == (None, None)
    else:
        assert time_stamp(text) == (parsed.timestamp(), parsed.microsecond)


def test_time_stamp_of_azure_times_is_parse_time() -> None:
    import random

    rng = random.Random(3)
    believed = 0
    for n in range(20_000):
        # Half over every year ISO 8601 has, half around the range of believed times (2015-2099).
        span = (-62135596800 + 86400, 253402214400) if n % 2 else (1262304000, 4260211200)
        moment = datetime.fromtimestamp(rng.uniform(*span), UTC)
        text = moment.isoformat(timespec="seconds")[:19] + f".{rng.randrange(10**7):07d}Z"
        parsed, _ = parse_time(text)
        believed += parsed is not None
        assert time_stamp(text) == ((None, None) if parsed is None else (parsed.timestamp(), parsed.microsecond))
    assert 8_000 < believed < 12_000, believed  # both sides of the range were reached


def test_python_strip_covers_what_pydantic_strips() -> None:
    # `clean` relies on it: a value str.strip leaves alone, pydantic leaves alone.
    chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    stripped = TypeAdapter(list[Annotated[str, StringConstraints(strip_whitespace=True)]]).validate_python(
        ["x" + c for c in chars])
    for c, value in zip(chars, stripped, strict=True):
        if value != "x" + c:
            assert c.isspace(), (hex(ord(c)), unicodedata.name(c, "?"))


_KEYS_TOP = ["time", "operationName", "category", "resultType", "resultSignature", "durationMs", "level", "properties"]
_KEYS_PROPERTIES = ["NumberType", "Country", "MessageId", "DeliveryAttempts", "OutgoingMessageLength",
                    "IncomingMessageLength", "RecordId", "UsageType", "UnitType", "Quantity", "PhoneNumber",
                    "Properties"]
_VALUES = st.one_of(
    st.sampled_from(ODD_VALUES + ["SMSMessagesSent", "SMSDeliveryReportsReceived", "Succeeded", "Failed", "US",
                                  "LongCodeNumber", "m-1", "m-2", "SMSOperational", "Usage", "ChatOperational"]),
    st.integers(-(2**65), 2**65), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
    _times(),
)


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    record = copy.deepcopy(draw(st.sampled_from([EVENTHUBS_SMS, EVENTHUBS_USAGE, EVENTHUBS_SMS])))
    record["time"] = draw(_times())
    props = record["properties"]
    if "MessageId" in props:
        # opaque ids, and ACS outgoing ids whose send time the report uses when its send is not waiting
        # (2026-11-02 09:15:00, plausible for the generated times; 2023: older than the window)
        props["MessageId"] = draw(st.sampled_from([
            "m-1", "m-2", "m-3", "Outgoing_20261102091500ff00e5c9-876d-4958-86e3-4637484fe5bd_noam",
            "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd"]))
        record["operationName"] = draw(st.sampled_from(["SMSMessagesSent", "SMSDeliveryReportsReceived",
                                                        "SMSMessagesReceived"]))
        record["resultType"] = draw(st.sampled_from(["Succeeded", "Failed"]))
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "set-prop", "del", "del-prop", "recase", "extra"]))
        if action == "set":
            record[draw(st.sampled_from(_KEYS_TOP))] = draw(_VALUES)
        elif action == "set-prop" and isinstance(record.get("properties"), dict):
            record["properties"][draw(st.sampled_from(_KEYS_PROPERTIES))] = draw(_VALUES)
        elif action == "del":
            record.pop(draw(st.sampled_from(_KEYS_TOP)), None)
        elif action == "del-prop" and isinstance(record.get("properties"), dict):
            record["properties"].pop(draw(st.sampled_from(_KEYS_PROPERTIES)), None)
        elif action == "recase":
            key = draw(st.sampled_from(_KEYS_TOP))
            if key in record:
                record[draw(st.sampled_from([key.lower(), key.upper(), key[:1].upper() + key[1:]]))] = record.pop(key)
        else:
            record[draw(st.sampled_from(["Extra", "TimeGenerated", "MessageId", "x"]))] = draw(_VALUES)
    return record


@given(st.lists(st.lists(_records(), min_size=1, max_size=6), min_size=1, max_size=5))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_variations_of_canonical_records_agree(bodies: list[list[dict[str, Any]]]) -> None:
    routes = _Routes()
    now = T0 + 30
    for records in bodies:
        now += 1
        routes.process(json.dumps({"records": records}).encode(), now)  # NaN/Infinity stay bare, as Azure writes them
    routes.check()
