"""consumer.labels: every label value is bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.labels import (
    DELIVERY_STATUSES,
    DOCUMENTED_SIGNATURES,
    HTTP_STATUSES,
    ISO_COUNTRIES,
    MAX_LABEL_LENGTH,
    NUMBER_TYPES,
    OTHER,
    RESULTS,
    SMS_OPERATIONS,
    UNIT_TYPES,
    UNKNOWN,
    USAGE_TYPES,
    FirstSeen,
    KnownValues,
    ResultSignatures,
    country,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("SMSMessagesSent", "SMSMessagesSent"),
        ("smsmessagessent", "SMSMessagesSent"),
        ("  SMSDELIVERYREPORTSRECEIVED ", "SMSDeliveryReportsReceived"),
        ("SMSOptOutReceived", "SMSOptOutReceived"),
        ("SMSSomethingNew", OTHER),
        ("", OTHER),
        (None, OTHER),
    ],
)
def test_known_values_operations(raw, expected):
    assert KnownValues(SMS_OPERATIONS)(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [("Succeeded", "Succeeded"), ("failed", "Failed"), ("in progress", "In Progress"), ("Success", OTHER), (None, OTHER)],
)
def test_known_values_results(raw, expected):
    assert KnownValues(RESULTS)(raw) == expected


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("LongCodeNumber", "LongCodeNumber"),
        ("tollfreenumber", "TollFreeNumber"),
        (" dynamicalphasenderid", "DynamicAlphaSenderID"),
        ("Landline", OTHER),
        (None, UNKNOWN),
    ],
)
def test_known_values_number_type_missing_is_unknown(raw, expected):
    assert KnownValues(NUMBER_TYPES, missing=UNKNOWN)(raw) == expected


def test_known_values_contains():
    known = KnownValues(RESULTS)
    assert "Succeeded" in known and "succeeded" in known and "nope" not in known


@given(st.text(max_size=80))
@settings(max_examples=200)
def test_known_values_only_yield_known_or_other(raw):
    assert KnownValues(NUMBER_TYPES, missing=UNKNOWN)(raw) in {*NUMBER_TYPES, OTHER}


@pytest.mark.parametrize(
    "raw, expected",
    [("US", "US"), ("us", "US"), (" gb ", "GB"), ("UK", OTHER), ("USA", OTHER), ("", UNKNOWN), ("  ", UNKNOWN),
     (None, UNKNOWN), ("+1", OTHER), ("ü", OTHER)],
)
def test_country(raw, expected):
    assert country(raw) == expected


@given(st.text(max_size=10))
@settings(max_examples=200)
def test_country_is_bounded(raw):
    assert country(raw) in ISO_COUNTRIES | {OTHER, UNKNOWN}


def test_iso_countries_are_upper_alpha2():
    assert len(ISO_COUNTRIES) == 249
    assert all(len(c) == 2 and c.isupper() and c.isascii() for c in ISO_COUNTRIES)


def test_first_seen_admits_first_n_case_insensitively_keeping_first_spelling():
    seen = FirstSeen(3)
    assert [seen(v) for v in ["SMS", "sms", " PSTN ", "Chat", "Email", "CHAT", "pstn"]] == [
        "SMS", "SMS", "PSTN", "Chat", OTHER, "Chat", "PSTN",
    ]
    assert seen.admitted() == {"SMS", "PSTN", "Chat"}


def test_first_seen_missing():
    assert FirstSeen(3)(None) == UNKNOWN
    assert FirstSeen(3)("  ") == UNKNOWN
    assert FirstSeen(3, missing=OTHER)(None) == OTHER


def test_first_seen_rejects_too_long_and_unprintable_without_using_a_slot():
    seen = FirstSeen(2)
    assert seen("x" * (MAX_LABEL_LENGTH + 1)) == OTHER
    assert seen("x" * MAX_LABEL_LENGTH) == "x" * MAX_LABEL_LENGTH
    assert seen("bad\nvalue") == OTHER
    assert seen("bell\x07") == OTHER
    assert seen("ok") == "ok"
    assert seen.admitted() == {"x" * MAX_LABEL_LENGTH, "ok"}


def test_first_seen_bounded_under_100k_distinct_values_with_case_variants():
    limit = 50
    seen = FirstSeen(limit)
    outputs = set()
    for i in range(100_000):
        value = f"Type{i % 5000}"
        outputs.add(seen(value if i % 2 else value.upper()))
    assert len(seen.admitted()) == limit
    assert len(outputs) == limit + 1 and OTHER in outputs
    # The admitted ones are the first 50 in arrival order, with their first spelling.
    assert seen.admitted() == {(f"Type{i}" if i % 2 else f"TYPE{i}") for i in range(limit)}


@given(st.lists(st.text(max_size=100), max_size=200))
@settings(max_examples=50)
def test_first_seen_never_exceeds_limit(values):
    seen = FirstSeen(7)
    outputs = {seen(v) for v in values}
    assert len(seen.admitted()) <= 7
    assert outputs <= seen.admitted() | {OTHER, UNKNOWN}
    assert all(len(v) <= MAX_LABEL_LENGTH and v.isprintable() for v in seen.admitted())


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("202", "202"),
        (" 4006 ", "4006"),
        ("202.0", "202"),
        ("0202", "202"),
        ("000000", "0"),
        ("2000", "2000"),
        ("1234567", OTHER),
        ("-1", OTHER),
        ("4xx", OTHER),
        ("Accepted", OTHER),
        ("202.5", OTHER),
        ("1e3", OTHER),
        ("\u0662\u0660\u0662", OTHER),  # Arabic-Indic digits: isdigit() but not ASCII
        ("²", OTHER),
        ("", OTHER),
        (None, OTHER),
    ],
)
def test_result_signatures_numeric_only(raw, expected):
    assert ResultSignatures(50, missing=OTHER)(raw) == expected


def test_result_signatures_bounded():
    signatures = ResultSignatures(3, missing=OTHER)
    codes = (200, 202, 4006, 500, 200, "0200", 7, 4711, 123, 99, 460, 7)
    assert [signatures(str(code)) for code in codes] == [
        "200", "202", "4006", "500", "200", "200", "7", "4711", "123", OTHER, OTHER, "7"]
    # the documented codes take no slot: the first three undocumented ones do
    assert signatures.admitted() == {"7", "4711", "123"}


@pytest.mark.parametrize("code", [*HTTP_STATUSES, *DELIVERY_STATUSES])
def test_documented_signatures_are_always_their_own_value(code):
    signatures = ResultSignatures(1, missing=OTHER)
    assert signatures("1") == "1" and signatures("2") == OTHER  # the one first-N slot is used up
    assert signatures(str(code)) == str(code)
    assert signatures(f" 0{code}.0 ") == str(code)


def test_documented_signatures_cover_what_acs_documents():
    assert {2000, 4000, 4010, 4020, 5000, 5001, 5002, 9999} <= set(DELIVERY_STATUSES)
    assert {200, 202, 400, 401, 429, 500} <= set(HTTP_STATUSES)
    assert set(DOCUMENTED_SIGNATURES) == {str(c) for c in (*HTTP_STATUSES, *DELIVERY_STATUSES)}


def test_known_names_keep_their_spelling_and_take_no_slot():
    from consumer.labels import Names

    usage = Names(1, missing=OTHER, known=USAGE_TYPES)
    assert usage("Calling") == "Calling" and usage("Email") == OTHER
    assert [usage(v) for v in ("sms", " PSTN ", "chat", "NAT")] == ["SMS", "PSTN", "Chat", "NAT"]
    assert usage.admitted() == {"Calling"}
    units = Names(1, missing=OTHER, known=UNIT_TYPES)
    assert [units(v) for v in ("Second", "message", "MINUTE", "Megabyte", "Hour")] == [
        "Second", "Message", "Minute", "Megabyte", OTHER]


@given(st.permutations([*(str(c) for c in (200, 202, 400, 429, 500, 2000, 4001, 4006, 5001, 9999)),
                        "1", "2", "3", "4", "5"]))
@settings(max_examples=50)
def test_documented_signatures_do_not_depend_on_arrival_order(order):
    signatures = ResultSignatures(2, missing=OTHER)
    mapped = {raw: signatures(raw) for raw in order}
    for raw, value in mapped.items():
        if raw in DOCUMENTED_SIGNATURES:
            assert value == raw


@given(st.lists(st.one_of(st.text(max_size=8), st.integers(0, 10**7).map(str)), max_size=300))
@settings(max_examples=50)
def test_result_signatures_property(values):
    signatures = ResultSignatures(5, missing=OTHER)
    for v in values:
        out = signatures(v)
        assert out == OTHER or (out.isdigit() and out.isascii() and len(out) <= 6)
    assert len(signatures.admitted()) <= 5


def test_names_never_admit_personal_data():
    from consumer.labels import Names

    names = Names(50)
    for value in ("+14255550123", "14255550123", "tel:+14255550111", "+1 (425) 555-0100", "203.0.113.77",
                  "2001:db8::8a2e:370:7334", "c0ffee00-dead-beef-cafe-000000000001",
                  "deadbeefcafebabefacefeedfacecafe", "Outgoing_20240101120000abc_noam", "a@b.example",
                  "https://x.example/sms?to=%2B1425", "/sms?api-version=1"):
        assert names(value) == OTHER, value
    for value in ("ChatOperational", "CallSummary", "SMS", "PSTN", "Message", "Megabyte", "Calling-Audio v2"):
        assert names(value) == value
    assert names.admitted() == {"ChatOperational", "CallSummary", "SMS", "PSTN", "Message", "Megabyte", "Calling-Audio v2"}


def test_closed_vocabularies_are_the_readme_ones():
    """docs/metrics.md's metric reference states each closed vocabulary; the code must use exactly it."""
    from consumer.labels import NUMBER_TYPES, RESULTS, SMS_OPERATIONS
    from tests.contract import readme_vocabularies

    stated = readme_vocabularies()
    assert stated["operation"] == frozenset(SMS_OPERATIONS)
    assert stated["result"] == frozenset(RESULTS)
    assert stated["number_type"] == frozenset(NUMBER_TYPES)


ARM = "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.COMMUNICATION/"


@pytest.mark.parametrize("raw, expected", [
    (ARM + "COMMUNICATIONSERVICES/ACS-PROD", "acs-prod"),  # Event Hubs: upper-cased
    (ARM.lower() + "communicationServices/Acs-Prod", "acs-prod"),  # Log Analytics `_ResourceId`
    (ARM[1:] + "COMMUNICATIONSERVICES/ACS-PROD", "acs-prod"),  # without its leading /
    (ARM + "COMMUNICATIONSERVICES/ACS-PROD/", "acs-prod"),
    (ARM + "COMMUNICATIONSERVICES/ACS-PROD/EXTRA", "acs-prod"),
    ("  " + ARM + "COMMUNICATIONSERVICES/ACS-PROD ", "acs-prod"),
    (ARM + "COMMUNICATIONSERVICES/", OTHER),  # no name
    ("/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.WEB/SITES/APP", OTHER),  # not an ACS resource
    ("COMMUNICATIONSERVICES/ACS-PROD", OTHER),  # not an ARM id
    ("acs-prod", OTHER),
    (ARM + "COMMUNICATIONSERVICES/+14255550123", OTHER),  # never a phone number...
    (ARM + "COMMUNICATIONSERVICES/c0ffee00-dead-beef-cafe-000000000001", OTHER),  # ...nor an id
    (ARM + "COMMUNICATIONSERVICES/" + "a" * (MAX_LABEL_LENGTH + 1), OTHER),
    (None, UNKNOWN), ("", UNKNOWN), ("  ", UNKNOWN),
])
def test_resource_is_the_lower_cased_acs_resource_name(raw, expected):
    from consumer.labels import Resources

    assert Resources(10)(raw) == expected


def test_resources_listed_always_then_first_n():
    from consumer.labels import Resources

    resources = Resources(1, ["ACS-Prod", "acs-test"])
    name = ARM + "COMMUNICATIONSERVICES/"
    assert resources(name + "ACS-EU1") == "acs-eu1"  # the one first-N slot
    assert resources(name + "ACS-EU2") == OTHER
    assert resources(name + "acs-prod") == "acs-prod" and resources(name + "ACS-TEST") == "acs-test"
    assert resources(name + "ACS-EU1") == "acs-eu1"
    assert resources.admitted() == {"acs-eu1"}
    # a listed name is the operator's word: admitted even where a first-seen name would not be
    listed = Resources(0, ["acs12345678"])
    assert listed(name + "ACS12345678") == "acs12345678" and listed(name + "ACS-OTHER") == OTHER


def test_senders_are_only_the_listed_numbers():
    from consumer.labels import Senders

    senders = Senders(["+1 (844) 579-1704", "Contoso"])
    assert senders("+18445791704") == "+18445791704"  # as listed, punctuation removed
    assert senders(" +1 844 579 1704 ") == "+18445791704"
    assert senders("CONTOSO") == senders("contoso") == "Contoso"
    for other in ("+18445791705", "18445791704x", "+15550100001", "FABRIKAM", "x" * 500):
        assert senders(other) == OTHER, other  # never admitted on first sight
    assert senders(None) == senders("") == senders("  ") == UNKNOWN
    assert senders and not Senders([])
