"""Values an input can push out of bounds: the distance between a paired send and report (bounded by
the correlation window like the MessageId path), and country codes (matched on ASCII only)."""

from __future__ import annotations

import sys

import pytest

from consumer.correlation import MESSAGE_ID_SKEW_SECONDS
from consumer.labels import ISO_COUNTRIES, OTHER, UNKNOWN, country
from consumer.pipeline import EventContext
from tests.test_pipeline import NOW, body, make, sms

WINDOW = 7200.0  # pipeline.correlation_max_age_seconds, the default
SENT = "2026-11-02T10:00:00Z"


def _pair(sent_time: str, report_time: str, report_first: bool):
    p, m = make(correlation_max_age_seconds=WINDOW)
    sent = sms(time=sent_time, MessageId="m-1", NumberType="LongCodeNumber")
    report = sms("SMSDeliveryReportsReceived", "Succeeded", time=report_time, MessageId="m-1",
                 NumberType="LongCodeNumber")
    for record in (report, sent) if report_first else (sent, report):
        p.process(body(record), NOW, EventContext(partition="0"))
    assert len(p.correlator) == 0  # neither half waits: the pair met
    return m


@pytest.mark.parametrize("report_first", [False, True], ids=["send-first", "report-first"])
@pytest.mark.parametrize("sent_time, report_time", [
    ("2015-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),  # 2.68e9 s apart
    (SENT, "2026-11-02T12:00:00.001Z"),  # just past the window
    ("2026-11-02T10:01:00.001Z", SENT),  # the send after its report by more than clock skew
])
def test_a_pair_further_apart_than_the_window_is_not_observed_and_its_report_is_unmatched(
        sent_time: str, report_time: str, report_first: bool) -> None:
    m = _pair(sent_time, report_time, report_first)
    assert m.delivery_latency.children == {}
    assert m.correlation_evictions.values == {("delivery_report", "too_far_apart"): 1}
    assert m.unmatched_reports.values == {("Succeeded", "unknown"): 1}


@pytest.mark.parametrize("report_first", [False, True], ids=["send-first", "report-first"])
@pytest.mark.parametrize("report_time, latency", [
    ("2026-11-02T12:00:00Z", WINDOW),  # exactly the window is still a latency
    ("2026-11-02T09:59:00Z", 0.0),  # a report a minute before its send: clock skew, clamped at 0
])
def test_a_pair_within_the_window_is_observed(report_time: str, latency: float, report_first: bool) -> None:
    assert MESSAGE_ID_SKEW_SECONDS == 60.0
    m = _pair(SENT, report_time, report_first)
    key = ("Succeeded", "LongCodeNumber", "paired", "unknown")
    assert m.delivery_latency.count(*key) == 1
    assert m.delivery_latency.children[key][-1] == latency
    assert m.correlation_evictions.values == {} and m.unmatched_reports.values == {}


def _ascii_look_alikes() -> list[str]:
    """Every non-ASCII character whose Unicode upper case is made of ASCII letters ("ß" → "SS",
    "ﬁ" → "FI", "ſ" → "S", "ı" → "I", ...)."""
    found = []
    for point in range(0x80, sys.maxunicode + 1):
        char = chr(point)
        upper = char.upper()
        if upper != char and upper.isascii() and upper.isalpha():
            found.append(char)
    return found


def test_country_codes_are_matched_on_ascii_only() -> None:
    look_alikes = _ascii_look_alikes()
    assert {"ß", "ﬁ", "ſ", "ı"} <= set(look_alikes)
    for char in look_alikes:
        for raw in (char, char + "E", "S" + char, char.lower(), f" {char} "):
            assert country(raw) == OTHER, (hex(ord(char)), raw)
    assert country("ß") == OTHER and country("ﬁ") == OTHER  # not SS (South Sudan), FI (Finland)
    assert "SS" in ISO_COUNTRIES and "FI" in ISO_COUNTRIES
    assert country(" fi ") == "FI" and country("ss") == "SS"
    assert country("\u00a0") == UNKNOWN  # blank is missing, whatever the blank
