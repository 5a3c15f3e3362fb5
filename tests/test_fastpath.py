"""consumer.records fast path: for every record, `normalise` (fast path when the record qualifies)
gives exactly what the general path `_normalise` gives — same type, same field values, same reasons."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumer.devtools.traffic import generate_corpus
from consumer.records import Invalid, Skipped, SmsOperational, Usage, _fast_normalise, _normalise, normalise

SAMPLES = Path(__file__).resolve().parent.parent / "consumer" / "samples"

EVENTHUBS_SMS: dict[str, Any] = {
    "time": "2026-11-02T09:15:01.1234567Z",
    "resourceId": "/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS",
    "operationName": "SMSMessagesSent",
    "operationVersion": "2021-03-07",
    "category": "SMSOperational",
    "resultType": "Succeeded",
    "resultSignature": 202,
    "resultDescription": "Accepted",
    "durationMs": 131,
    "callerIpAddress": "203.0.113.10",
    "correlationId": "9f1c6a2e-1111-4a2b-9c3d-000000000001",
    "level": "Informational",
    "location": "global",
    "properties": {
        "OutgoingMessageLength": 151,
        "IncomingMessageLength": 0,
        "DeliveryAttempts": 0,
        "PhoneNumber": "+15550100001",
        "NumberType": "LongCodeNumber",
        "SdkType": "azsdk-python-communication-sms",
        "PlatformType": "Linux",
        "Method": "POST",
        "Country": "US",
        "URI": "https://acs.communication.azure.com/sms?api-version=2021-03-07",
        "MessageId": "6e3f2f4c-0000-4c1a-9d7e-00000000a001",
    },
}
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


def _same(raw: Any) -> None:
    expected = _normalise(copy.deepcopy(raw))
    got = normalise(raw)
    assert type(got) is type(expected)
    if isinstance(expected, SmsOperational | Usage):
        assert got.__dict__ == expected.__dict__  # every field value, time and time_problem included
        assert type(got.time) is type(expected.time)
    else:
        assert got == expected


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
def test_the_plain_shapes_take_the_fast_path_and_agree(base: dict[str, Any]) -> None:
    assert _fast_normalise(copy.deepcopy(base)) is not None
    _same(base)


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


def test_a_generated_corpus_agrees_and_mostly_takes_the_fast_path() -> None:
    fast = total = 0
    for body in generate_corpus(2_000, records_per_body=50, seed=7):
        for raw in orjson.loads(body)["records"]:
            total += 1
            fast += _fast_normalise(copy.deepcopy(raw)) is not None
            _same(raw)
    assert fast / total > 0.95


def test_the_model_classes_still_validate_by_field_name() -> None:
    # Building the fast validators must not replace the models' own validators.
    record = SmsOperational.model_validate({"operation_name": "SMSMessagesSent", "category": "SMSOperational"})
    assert record.operation_name == "SMSMessagesSent"
    assert SmsOperational.__pydantic_complete__ and Usage.__pydantic_complete__
