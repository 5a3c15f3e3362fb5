"""consumer.records: both record shapes, case-insensitive keys, properties forms, quirks, validation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumer.records import TIME_OUT_OF_RANGE, Invalid, Skipped, SmsOperational, Usage, time_stamp
from tests.examples import EVENTHUBS_SMS, MESSAGE_ID, PHONE
from tests.models import normalise

SAMPLES = Path(__file__).resolve().parent.parent / "consumer" / "samples"

LOG_ANALYTICS = {
    "TimeGenerated": "2026-11-02T09:15:01.1234567Z",
    "_ResourceId": "/SUBSCRIPTIONS/X/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS",
    "OperationName": "SMSMessagesSent",
    "CorrelationID": "dDRmubfpNZZZZZnxBtw3Q.0",
    "OperationVersion": "2021-03-07",
    "Category": "SMSOperational",
    "ResultType": "Succeeded",
    "ResultSignature": "202",
    "DurationMs": "131",
    "CallerIpAddress": "192.0.2.1",
    "Level": "Informational",
    "URI": "https://acs.communication.azure.com/sms?api-version=2021-03-07",
    "OutgoingMessageLength": 151,
    "IncomingMessageLength": 0,
    "DeliveryAttempts": 0,
    "PhoneNumber": PHONE,
    "NumberType": "LongCodeNumber",
    "SdkType": "",
    "PlatformType": "",
    "Method": "POST",
    "MessageId": MESSAGE_ID,
    "Country": "US",
}

EXPECTED_TIME = datetime(2026, 11, 2, 9, 15, 1, 123456, tzinfo=UTC)


def sms(**fields):
    base = {"time": "2026-11-02T10:00:00Z", "category": "SMSOperational", "operationName": "SMSMessagesSent"}
    base.update(fields)
    return base


def usage(**fields):
    base = {"time": "2026-11-02T10:00:00Z", "category": "Usage", "operationName": "Usage",
            "properties": {"RecordId": "r-1", "UsageType": "SMS", "UnitType": "Message", "Quantity": 1}}
    base.update(fields)
    return base


def props(**fields):
    return sms(properties=fields)


# --- shapes ----------------------------------------------------------------------------------


def test_eventhubs_shape_gives_typed_record():
    record = normalise(EVENTHUBS_SMS)
    assert type(record) is SmsOperational
    assert record.time == EXPECTED_TIME
    assert record.time_problem is None
    assert record.operation_name == "SMSMessagesSent"
    assert record.category == "SMSOperational"
    assert record.result_type == "Succeeded"
    assert record.result_signature == "202"
    assert record.duration_ms == 131.0
    assert record.number_type == "LongCodeNumber"
    assert record.country == "US"
    assert record.message_id == MESSAGE_ID
    assert record.delivery_attempts == 0
    assert record.outgoing_message_length == 151
    assert record.incoming_message_length == 0


def test_both_shapes_give_the_same_record():
    assert normalise(EVENTHUBS_SMS) == normalise(LOG_ANALYTICS)


def test_pii_fields_are_not_kept():
    record = normalise(EVENTHUBS_SMS)
    assert record.sender == PHONE  # kept in memory for the sender allow-list only: not in repr or dumps
    dumped = record.model_dump()
    assert not {"phone_number", "caller_ip_address", "uri", "correlation_id"} & set(dumped)
    text = repr(record) + json.dumps(dumped, default=str)
    assert PHONE not in text
    assert "203.0.113.10" not in text
    assert "api-version" not in text
    la = normalise(LOG_ANALYTICS)
    assert PHONE not in repr(la) and "192.0.2.1" not in repr(la)


@pytest.mark.parametrize(
    "name", ["eventhubs-sms.json", "eventhubs-usage.json", "log-analytics-sms.json"]
)
def test_every_sample_record_normalises(name):
    data = json.loads((SAMPLES / name).read_text())
    raws = data["records"] if isinstance(data, dict) else data
    outcomes = [normalise(raw) for raw in raws]
    assert not [o for o in outcomes if isinstance(o, Invalid)]
    if name == "eventhubs-usage.json":
        assert [type(o) for o in outcomes] == [Usage, Usage, Usage, Skipped]
        assert [o.quantity for o in outcomes[:3]] == [1.0, 2.0, 2.5]
        assert outcomes[3] == Skipped("ChatOperational")
    else:
        assert all(type(o) is SmsOperational for o in outcomes)


def test_properties_as_json_string_sample():
    data = json.loads((SAMPLES / "eventhubs-sms.json").read_text())
    raw = next(r for r in data["records"] if isinstance(r["properties"], str))
    record = normalise(raw)
    assert record.incoming_message_length == 42
    assert record.country == "FR"
    assert record.message_id == "7a9b0c1d-0000-4e2f-8a3b-00000000b001"


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["OPERATIONNAME", "operationname", "OperationName", "operationName"])
def test_keys_are_case_insensitive(key):
    raw = {"time": "2026-11-02T10:00:00Z", "CATEGORY": "SMSOperational", key: "SMSMessagesReceived",
           "PROPERTIES": {"MESSAGEID": "m", "numbertype": "ShortCodeNumber", "COUNTRY": "GB"}}
    record = normalise(raw)
    assert type(record) is SmsOperational
    assert record.operation_name == "SMSMessagesReceived"
    assert (record.message_id, record.number_type, record.country) == ("m", "ShortCodeNumber", "GB")


@pytest.mark.parametrize("key", ["CorrelationID", "CorrelationId", "correlationId", "CORRELATIONID"])
def test_correlation_id_spellings_are_accepted_and_dropped(key):
    record = normalise(sms(**{key: "corr-123"}))
    assert type(record) is SmsOperational
    assert "corr-123" not in repr(record)


def test_top_level_field_wins_over_properties():
    record = normalise(sms(Country="GB", MessageId="top", properties={"Country": "US", "MessageId": "inner"}))
    assert (record.country, record.message_id) == ("GB", "top")


def test_properties_fill_what_top_level_lacks_and_null_top_level_does_not_win():
    record = normalise(sms(Country="null", properties={"Country": "US"}))
    assert record.country == "US"


# --- properties forms ----------------------------------------------------------------------


def test_properties_as_object_string_and_single_quoted_string_agree():
    fields = {"NumberType": "TollFreeNumber", "Country": "CA", "MessageId": "m-1", "DeliveryAttempts": 2}
    as_object = normalise(sms(properties=fields))
    as_string = normalise(sms(properties=json.dumps(fields)))
    single = "{'NumberType': 'TollFreeNumber', 'Country': 'CA', 'MessageId': 'm-1', 'DeliveryAttempts': 2}"
    as_single = normalise(sms(properties=single))
    assert as_object == as_string == as_single
    assert as_object.delivery_attempts == 2 and as_object.country == "CA"


def test_properties_invalid_string_is_invalid_and_names_properties():
    outcome = normalise(sms(properties="PhoneNumber=+15550100001; not json"))
    assert outcome == Invalid("SMSOperational", "properties is a string that is not a JSON object")
    assert PHONE not in outcome.reason


@pytest.mark.parametrize("value, kind", [([1, 2], "array"), (5, "number"), (True, "boolean"), ('"x"', "string")])
def test_properties_not_an_object_is_invalid(value, kind):
    outcome = normalise(sms(properties=value))
    assert outcome == Invalid("SMSOperational", f"properties is a JSON {kind}, not an object")


@pytest.mark.parametrize("value", [None, "", "  ", "null"])
def test_empty_properties_are_ignored(value):
    record = normalise(sms(properties=value))
    assert type(record) is SmsOperational
    assert record.country is None


# --- values --------------------------------------------------------------------------------


def test_numbers_as_strings_and_whitespace():
    record = normalise(props(DeliveryAttempts="3", OutgoingMessageLength=" 70 ", Country=" de ")
                       | {"durationMs": "12.5", "resultSignature": " 4006 ", "operationName": " SMSMessagesSent "})
    assert record.delivery_attempts == 3
    assert record.outgoing_message_length == 70
    assert record.duration_ms == 12.5
    assert record.result_signature == "4006"
    assert record.operation_name == "SMSMessagesSent"
    assert record.country == "de"  # bounded later by labels.country


@pytest.mark.parametrize("null", ["null", "NULL", "None", "", " "])
def test_null_strings_are_missing(null):
    record = normalise(props(MessageId=null, NumberType=null) | {"resultType": null, "durationMs": null})
    assert type(record) is SmsOperational
    assert record.message_id is None and record.number_type is None
    assert record.result_type is None and record.duration_ms is None


def test_usage_record_fields_and_string_quantity():
    record = normalise(usage(properties={"RecordId": "r-9", "UsageType": "SMS", "UnitType": "Message",
                                         "Quantity": "2.5", "Properties": '{"Country": "US"}'}))
    assert type(record) is Usage
    assert (record.record_id, record.usage_type, record.unit_type, record.quantity) == ("r-9", "SMS", "Message", 2.5)


def test_usage_without_quantity_is_invalid():
    outcome = normalise(usage(properties={"UsageType": "SMS"}))
    assert outcome == Invalid("Usage", "Quantity is missing")


# --- time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-02T10:00:00Z", datetime(2026, 11, 2, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-02T10:00:00.123Z", datetime(2026, 11, 2, 10, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-02T10:00:00.1234567Z", datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-02T10:00:00.123456789Z", datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-02T10:00:00+00:00", datetime(2026, 11, 2, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-02T12:00:00.500+02:00", datetime(2026, 11, 2, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-02T10:00:00", datetime(2026, 11, 2, 10, 0, 0, tzinfo=UTC)),
        ("2026-11-02T10:00:00.1234567", datetime(2026, 11, 2, 10, 0, 0, 123456, tzinfo=UTC)),
        (" 2026-11-02T10:00:00Z ", datetime(2026, 11, 2, 10, 0, 0, tzinfo=UTC)),
        ("11/02/2026 10:00:05", datetime(2026, 11, 2, 10, 0, 5, tzinfo=UTC)),
        ("11/02/2026 10:00:05 PM", datetime(2026, 11, 2, 22, 0, 5, tzinfo=UTC)),
    ],
)
def test_time_formats(text, expected):
    record = normalise(sms(time=text))
    assert record.time == expected
    assert record.time.tzinfo is not None and record.time.utcoffset().total_seconds() == 0
    assert record.time_problem is None


def test_time_at_the_length_limit_is_parsed():
    record = normalise(sms(time=" 2026-11-02T10:00:00." + "1" * 43 + "Z "))  # 64 once stripped
    assert record.time == datetime(2026, 11, 2, 10, 0, 0, 111111, tzinfo=UTC)


@pytest.mark.parametrize("key", ["time", "timeStamp", "TimeGenerated", "TIMESTAMP", "Timestamp"])
def test_time_field_spellings(key):
    raw = {"category": "SMSOperational", "operationName": "SMSMessagesSent", key: "2026-11-02T10:00:00Z"}
    assert normalise(raw).time == datetime(2026, 11, 2, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "value, problem",
    [
        (None, "time is missing"),
        ("", "time is missing"),
        ("null", "time is missing"),
        ("yesterday", "time is not an ISO 8601 or MM/DD/YYYY date-time"),
        ("2026-13-45T99:00:00Z", "time is not an ISO 8601 or MM/DD/YYYY date-time"),
        (1762077600, "time is a JSON number, not a string"),
        ({"t": 1}, "time is a JSON object, not a string"),
        ("0001-01-01T00:00:00+01:00", TIME_OUT_OF_RANGE),  # no UTC form at all
        ("9999-12-31T23:59:59-01:00", TIME_OUT_OF_RANGE),
        ("0001-01-01T00:00:00.0000000Z", TIME_OUT_OF_RANGE),  # Azure's own form: one would add 64e9 s of age
        ("2014-12-31T23:59:59.9999999Z", TIME_OUT_OF_RANGE),
        ("2100-01-01T00:00:00Z", TIME_OUT_OF_RANGE),
        ("12/31/1999 23:59:59", TIME_OUT_OF_RANGE),
        ("2026-11-02T10:00:00." + "1" * 44 + "Z", "time is longer than 64 characters"),  # 65: not parsed
        ("11/02/2026" + " " * 100_000 + "10:00:05", "time is longer than 64 characters"),
    ],
)
def test_missing_or_bad_time_is_a_valid_record_without_time(value, problem):
    raw = sms(time=value) if value is not None else {k: v for k, v in sms().items() if k != "time"}
    record = normalise(raw)
    assert type(record) is SmsOperational
    assert record.time is None
    assert record.time_problem == problem


# --- categories ----------------------------------------------------------------------------


@pytest.mark.parametrize("category", ["ChatOperational", "CallSummary", "EmailSendMailOperational", " AuthOperational "])
def test_other_categories_are_skipped(category):
    assert normalise(sms(category=category)) == Skipped(category.strip())


@pytest.mark.parametrize("category, canonical", [("smsoperational", "SMSOperational"), (" USAGE ", "Usage")])
def test_category_is_canonicalised(category, canonical):
    raw = sms(category=category, Quantity=1)
    assert normalise(raw).category == canonical


@pytest.mark.parametrize("operation", ["SMSMessagesSent", "smsDeliveryReportsReceived", " SMSOptOutReceived"])
def test_missing_category_inferred_from_sms_operation(operation):
    raw = {"TimeGenerated": "2026-11-02T10:00:00Z", "OperationName": operation}
    record = normalise(raw)
    assert type(record) is SmsOperational and record.category == "SMSOperational"


@pytest.mark.parametrize("fields", [{"UsageType": "SMS", "Quantity": 3}, {"Quantity": "3"}])
def test_missing_category_inferred_as_usage(fields):
    raw = {"TimeGenerated": "2026-11-02T10:00:00Z", "OperationName": "Usage", **fields}
    record = normalise(raw)
    assert type(record) is Usage and record.quantity == 3.0


def test_empty_category_is_inferred_too():
    assert type(normalise(sms(category="  "))) is SmsOperational


def test_category_not_inferable_is_invalid():
    outcome = normalise({"time": "2026-11-02T10:00:00Z", "operationName": "Something"})
    assert outcome == Invalid(None, "category is missing and cannot be inferred")


def test_category_of_wrong_type_is_invalid():
    assert normalise(sms(category=["SMSOperational"])) == Invalid(None, "category is a JSON array, not a string")


@pytest.mark.parametrize("raw, kind", [([], "array"), ("x", "string"), (1, "number"), (None, "null"), (True, "boolean")])
def test_non_object_record_is_invalid(raw, kind):
    assert normalise(raw) == Invalid(None, f"record is a JSON {kind}, not an object")


# --- invalid values: reason names the field, never the value ---------------------------------


@pytest.mark.parametrize(
    "raw, field",
    [
        (sms(operationName={"x": PHONE}), "operationName"),
        (sms(resultType={"x": PHONE}), "resultType"),
        (sms(resultSignature=[PHONE]), "resultSignature"),
        (sms(durationMs=-1), "durationMs"),
        (sms(durationMs="fast"), "durationMs"),
        (sms(durationMs="NaN"), "durationMs"),
        (props(NumberType={"n": PHONE}), "NumberType"),
        (props(Country=[PHONE]), "Country"),
        (props(MessageId={"id": PHONE}), "MessageId"),
        (props(DeliveryAttempts=-2), "DeliveryAttempts"),
        (props(DeliveryAttempts=1.5), "DeliveryAttempts"),
        (props(OutgoingMessageLength=-1), "OutgoingMessageLength"),
        (props(IncomingMessageLength="many"), "IncomingMessageLength"),
        (usage(properties={"Quantity": -1}), "Quantity"),
        (usage(properties={"Quantity": "NaN"}), "Quantity"),
        (usage(properties={"Quantity": "Infinity"}), "Quantity"),
        (usage(properties={"Quantity": 1, "UsageType": {"a": PHONE}}), "UsageType"),
        (usage(properties={"Quantity": 1, "RecordId": [MESSAGE_ID]}), "RecordId"),
    ],
)
def test_wrong_types_are_invalid_with_field_named_and_value_hidden(raw, field):
    raw = dict(raw)
    raw.setdefault("properties", {})
    if isinstance(raw["properties"], dict):
        raw["properties"] = {"PhoneNumber": PHONE, "MessageId": MESSAGE_ID, **raw["properties"]}
    outcome = normalise(raw)
    assert type(outcome) is Invalid
    assert outcome.category in ("SMSOperational", "Usage")
    assert outcome.reason.startswith(field + " "), outcome.reason
    assert PHONE not in outcome.reason
    assert MESSAGE_ID not in outcome.reason
    assert "fast" not in outcome.reason and "many" not in outcome.reason


def test_missing_operation_name_is_invalid():
    outcome = normalise({"time": "2026-11-02T10:00:00Z", "category": "SMSOperational"})
    assert outcome == Invalid("SMSOperational", "operationName is missing")


def test_dict_subclass_is_a_record():
    class Sub(dict):
        pass

    assert type(normalise(Sub(sms()))) is SmsOperational


def test_normalise_does_not_mutate_input():
    raw = json.loads(json.dumps(EVENTHUBS_SMS))
    before = json.dumps(raw, sort_keys=True)
    normalise(raw)
    assert json.dumps(raw, sort_keys=True) == before


# --- absurd values: the record is invalid, so no sum can become +Inf or NaN ---------------------


@pytest.mark.parametrize(
    "raw, reason",
    [
        (sms(durationMs=1.7e308), "durationMs input should be less than or equal to 259200000"),
        (sms(durationMs=259_200_001), "durationMs input should be less than or equal to 259200000"),
        (sms(durationMs="3e8"), "durationMs input should be less than or equal to 259200000"),
        (sms(durationMs=-0.5), "durationMs input should be greater than or equal to 0"),
        (sms(durationMs="NaN"), "durationMs input should be a finite number"),
        (sms(durationMs="-Infinity"), "durationMs input should be a finite number"),
        (sms(durationMs="1e400"), "durationMs input should be a finite number"),
        (usage(properties={"Quantity": 1e308}), "Quantity input should be less than or equal to 1000000000"),
        (usage(properties={"Quantity": "1e308"}), "Quantity input should be less than or equal to 1000000000"),
        (usage(properties={"Quantity": "Infinity"}), "Quantity input should be a finite number"),
        (usage(properties={"Quantity": "nan"}), "Quantity input should be a finite number"),
        (usage(properties={"Quantity": 10**400}), "Quantity input should be a valid number"),
        (props(DeliveryAttempts=10**400), "DeliveryAttempts input should be less than or equal to 1000000"),
        (props(DeliveryAttempts="1000001"), "DeliveryAttempts input should be less than or equal to 1000000"),
        (props(OutgoingMessageLength=2**63), "OutgoingMessageLength input should be less than or equal to 1000000"),
        (props(IncomingMessageLength=10**7), "IncomingMessageLength input should be less than or equal to 1000000"),
    ],
)
def test_absurd_or_non_finite_values_make_the_record_invalid(raw, reason):
    outcome = normalise(raw)
    assert outcome == Invalid("Usage" if "Quantity" in str(raw) else "SMSOperational", reason)


@pytest.mark.parametrize(
    "raw, field, value",
    [
        (sms(durationMs=259_200_000), "duration_ms", 259_200_000.0),
        (sms(durationMs=0), "duration_ms", 0.0),
        (usage(properties={"Quantity": 1_000_000_000}), "quantity", 1e9),
        (props(DeliveryAttempts=1_000_000), "delivery_attempts", 1_000_000),
        (props(OutgoingMessageLength="1000000"), "outgoing_message_length", 1_000_000),
    ],
)
def test_values_at_the_bounds_are_valid(raw, field, value):
    assert getattr(normalise(raw), field) == value


def test_the_models_have_exactly_the_fields_of_the_field_table():
    # consumer.fields is the one table of the ACS/Azure fields; the general decoder's models must not drift from it.
    from consumer.fields import FIELDS
    from consumer.records import CanonicalProperties, CanonicalRecord

    for model, category in ((SmsOperational, "sms"), (Usage, "usage")):
        table = {f.name: f for f in FIELDS if f.category in ("common", category)}
        assert set(model.model_fields) - {"time_problem"} == set(table)
        for name, field in table.items():
            info = model.model_fields[name]
            assert info.is_required() == field.required, name
            annotation = str(info.annotation)
            expected = {"text": "str", "signature": "str", "time": "datetime", "count": "int", "duration": "float",
                        "quantity": "float"}[field.kind]
            assert expected in annotation, (name, annotation)
    nested = {f.event_hubs for f in FIELDS if f.nested}
    top = {f.event_hubs for f in FIELDS if not f.nested}
    assert nested <= set(CanonicalProperties.__struct_fields__)
    assert top <= set(CanonicalRecord.__struct_fields__)


def test_times_at_the_edges_of_the_believed_range() -> None:
    # Azure's own form goes through the whole-second cache, the rest through the parser: same range.
    assert time_stamp("2015-01-01T00:00:00.0000000Z") == (1420070400.0, 0)
    assert time_stamp("2015-01-01T00:00:00Z") == (1420070400.0, 0)
    assert time_stamp("2099-12-31T23:59:59.9999999Z") == (4102444799.999999, 999999)
    assert time_stamp("2014-12-31T23:59:59.9999999Z") == (None, None)
    assert time_stamp("2100-01-01T00:00:00+00:00") == (None, None)
