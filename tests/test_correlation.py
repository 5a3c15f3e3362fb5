"""consumer.correlation: pairing sends and delivery reports, bounded by count and age."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.correlation import (
    PAIRED,
    EVICT_STEP,
    MESSAGE_ID_SKEW_SECONDS,
    DeliveryCorrelator,
    ExpiringMap,
    Waiting,
    send_time_from_message_id,
)


class Match(NamedTuple):
    """A latency `arrive` matched, with the labels it is observed under."""

    latency: float
    result: str
    number_type: str
    source: str = PAIRED
    resource: str = ""


message_key = hash  # the key a MessageId waits under in the correlator's window


class Correlator(DeliveryCorrelator):
    """`DeliveryCorrelator` with one method per side, its match as a `Match`: the tests' reading of
    `arrive`."""

    __slots__ = ()

    def sent(self, message_id: str, time: float, number_type: str, now: float,
             resource: str = "") -> tuple[Match | None, list[tuple[str, Waiting]]]:
        match, evicted = self.arrive(message_id, "sent", time, "", number_type, now, resource)
        return (None if match is None else Match(match[0], *match[1])), list(evicted)

    def report(self, message_id: str, time: float, result: str, number_type: str, now: float,
               resource: str = "") -> tuple[Match | None, list[tuple[str, Waiting]]]:
        match, evicted = self.arrive(message_id, "delivery_report", time, result, number_type, now, resource)
        return (None if match is None else Match(match[0], *match[1])), list(evicted)


def test_sent_then_report_matches_once():
    c = Correlator(10, 100)
    assert c.sent("m1", 1000.0, "LongCodeNumber", now=0) == (None, [])
    assert c.pending() == {"sent": 1, "delivery_report": 0}
    match, evicted = c.report("m1", 1003.5, "Succeeded", "LongCodeNumber", now=1)
    assert match == Match(3.5, "Succeeded", "LongCodeNumber")
    assert evicted == []
    assert len(c) == 0 and c.pending() == {"sent": 0, "delivery_report": 0}
    # A second report for the same id has nothing to pair with any more: it waits.
    assert c.report("m1", 1004.0, "Succeeded", "LongCodeNumber", now=2) == (None, [])
    assert c.pending() == {"sent": 0, "delivery_report": 1}


def test_report_then_sent_matches_with_report_labels():
    c = Correlator(10, 100)
    assert c.report("m1", 1010.0, "Failed", "", now=0) == (None, [])
    assert c.pending() == {"sent": 0, "delivery_report": 1}
    match, evicted = c.sent("m1", 1000.0, "TollFreeNumber", now=1)
    # The report has no number type: the sent record's is used.
    assert match == Match(10.0, "Failed", "TollFreeNumber")
    assert evicted == [] and len(c) == 0


def test_report_number_type_wins():
    c = Correlator(10, 100)
    c.sent("m", 0.0, "LongCodeNumber", now=0)
    match, _ = c.report("m", 2.0, "Succeeded", "ShortCodeNumber", now=0)
    assert match.number_type == "ShortCodeNumber"


def test_latency_is_clamped_at_zero():
    c = Correlator(10, 100)
    c.sent("m", 1000.0, "LongCodeNumber", now=0)
    match, _ = c.report("m", 999.2, "Succeeded", "LongCodeNumber", now=0)
    assert match.latency == 0.0


def test_bounded_by_count_evicts_oldest_with_capacity_reason():
    c = Correlator(2, 1000)
    c.sent("a", 1.0, "x", now=0)
    c.report("b", 2.0, "Failed", "x", now=1)
    match, evicted = c.sent("c", 3.0, "x", now=2)
    assert match is None
    assert evicted == [("capacity", Waiting("sent", 1.0, "", "x"))]
    assert len(c) == 2 and message_key("a") not in c._waiting
    assert c.pending() == {"sent": 1, "delivery_report": 1}
    _, evicted = c.sent("d", 4.0, "x", now=3)
    assert evicted == [("capacity", Waiting("delivery_report", 2.0, "Failed", "x"))]
    assert c.pending() == {"sent": 2, "delivery_report": 0}


def test_bounded_by_age_on_callers_clock():
    c = Correlator(100, 60)
    c.sent("a", 0.0, "x", now=0)
    c.report("b", 0.0, "Succeeded", "x", now=30)
    assert c.expire(60) == []  # exactly max_age old is still allowed
    assert c.expire(60.5) == [("age", Waiting("sent", 0.0, "", "x"))]
    assert c.pending() == {"sent": 0, "delivery_report": 1}
    _, evicted = c.sent("c", 0.0, "x", now=91)
    assert evicted == [("age", Waiting("delivery_report", 0.0, "Succeeded", "x"))]
    assert c.pending() == {"sent": 1, "delivery_report": 0}


def test_same_side_twice_replaces_and_reports_replaced():
    c = Correlator(10, 100)
    c.sent("m", 1.0, "x", now=0)
    match, evicted = c.sent("m", 2.0, "y", now=1)
    assert match is None
    assert evicted == [("replaced", Waiting("sent", 1.0, "", "x"))]
    assert len(c) == 1 and c.pending() == {"sent": 1, "delivery_report": 0}
    match, _ = c.report("m", 5.0, "Succeeded", "", now=2)
    assert match == Match(3.0, "Succeeded", "y")


def test_expiring_map_put_refreshes_and_orders():
    m: ExpiringMap[str, int] = ExpiringMap(3, 10)
    m.put("a", 1, now=0)
    m.put("b", 2, now=1)
    m.put("a", 3, now=2)  # refresh: a is now the newest
    assert m.put("c", 4, now=3) == []
    assert m.put("d", 5, now=4) == [("capacity", 2)]
    assert list(m._entries) == ["a", "c", "d"]
    assert m.expire(12.5) == [("age", 3)]
    assert m.pop("c") == 4 and m.pop("c") is None
    assert len(m) == 1 and "d" in m


def _add_without_memory(entries: dict, max_entries: int, max_age: float, key: int, now: float) -> bool:
    """`ExpiringMap.add` as specified, with its age check made every time (no `_fresh_at`)."""
    if key in entries:
        return False
    entries[key] = now
    if len(entries) > max_entries or next(iter(entries.values())) < now - max_age:
        over_age = [k for k, stamp in entries.items() if stamp < now - max_age]
        for k in over_age[:EVICT_STEP]:
            if k != next(iter(entries)):
                break
            del entries[k]
        while len(entries) > max_entries:
            del entries[next(iter(entries))]
    return True


@given(
    st.lists(st.tuples(st.sampled_from(["add", "add", "add", "put", "pop", "expire"]), st.integers(0, 6),
                       st.sampled_from([0.0, 0.0, 0.0, 1.0, 3.0, -4.0])), max_size=150),
    st.integers(1, 6), st.floats(0.5, 4, allow_nan=False),
)
@settings(max_examples=300, deadline=None)
def test_expiring_map_add_remembers_a_fresh_oldest_entry_without_changing_anything(operations, max_entries, max_age):
    """`add` skips its age check while the oldest entry is known to be within the age at the same `now`
    (`_fresh_at`): whatever the calls in between (and a clock that steps back), it keeps and evicts
    exactly what an `add` that checks every time does."""
    m: ExpiringMap[int, int] = ExpiringMap(max_entries, max_age)
    reference: dict[int, float] = {}
    now = 10.0
    for op, key, step in operations:
        now += step
        if op == "add":
            assert m.add(key, key, now) == _add_without_memory(reference, max_entries, max_age, key, now)
        elif op == "put":
            m.put(key, key, now)
            reference.pop(key, None)
            _add_without_memory(reference, max_entries, max_age, key, now)
        elif op == "pop":
            m.pop(key)
            reference.pop(key, None)
        else:
            m.expire(now)
            reference.clear()
            reference.update({k: stamp for k, (stamp, _) in m._entries.items()})
        assert {k: stamp for k, (stamp, _) in m._entries.items()} == reference
        assert list(m._entries) == list(reference)


def test_expiring_map_add_checks_the_age_again_after_a_removal() -> None:
    """The oldest entry known to be within the age leaves (`pop`, or `put` of its key); the next one
    is not (the clock stepped back in between): `add` at the same `now` checks it, and evicts it."""
    for remove in (lambda m: m.pop(1), lambda m: m.put(1, 1, now=4.0)):
        m: ExpiringMap[int, int] = ExpiringMap(10, 5.0)
        m.add(1, 1, now=10.0)
        m.add(2, 2, now=3.0)  # the clock stepped back
        m.add(3, 3, now=9.0)  # the oldest, 1 (10.0), is within the age at 9.0
        remove(m)
        assert m.add(4, 4, now=9.0)
        assert 2 not in m  # 3.0 < 9.0 - 5.0


ops = st.lists(
    st.tuples(
        st.sampled_from(["sent", "report", "expire"]),
        st.integers(0, 15),  # message id
        st.floats(0, 5, allow_nan=False),  # clock step
    ),
    max_size=120,
)


@given(ops, st.integers(1, 8), st.floats(0.5, 20, allow_nan=False))
@settings(max_examples=150, deadline=None)
def test_random_operations_keep_bounds_and_pending_totals(operations, max_entries, max_age):
    c = Correlator(max_entries, max_age)
    model: dict[str, tuple[str, float]] = {}  # what should be waiting: id → (side, record time)
    now = 0.0
    for op, ident, step in operations:
        now += step
        key = f"m{ident}"
        if op == "expire":
            evicted = c.expire(now)
            match = None
        elif op == "sent":
            match, evicted = c.sent(key, now, "x", now)
        else:
            match, evicted = c.report(key, now, "Succeeded", "x", now)
        if op != "expire":
            partner, partner_time = model.pop(key, (None, 0.0))
            side = "sent" if op == "sent" else "delivery_report"
            paired = partner is not None and partner != side
            latency = now - partner_time if side == "delivery_report" else partner_time - now
            assert (match is not None) == (paired and -MESSAGE_ID_SKEW_SECONDS <= latency <= max_age)
            if match is not None:
                assert match.latency >= 0
                assert not evicted
            elif paired:  # over age but not evicted yet: too far apart to pair, and neither waits
                assert evicted == [("too_far_apart", evicted[0][1])] and evicted[0][1].side == "delivery_report"
            else:
                model[key] = side, now
                if partner is not None:
                    assert evicted[0][0] == "replaced" and evicted[0][1].side == side
        for reason, _ in evicted:
            assert reason in ("age", "capacity", "replaced", "too_far_apart")
        assert len(c) <= max_entries
        pending = c.pending()
        assert all(n >= 0 for n in pending.values())
        assert sum(pending.values()) == len(c)
        waiting_sides = [w.side for _, w in c._waiting._entries.values()]
        assert pending == {"sent": waiting_sides.count("sent"), "delivery_report": waiting_sides.count("delivery_report")}
        model = {k: v for k, v in model.items() if message_key(k) in c._waiting}


def test_arrive_is_sent_and_report_in_plain_tuples() -> None:
    c = Correlator(max_entries=2, max_age=60.0)
    assert c.arrive("a", "sent", 10.0, "", "LongCodeNumber", now=0.0, resource="acs-a") == (None, ())
    assert c.arrive("a", "delivery_report", 13.5, "Succeeded", "", now=1.0) == (
        (3.5, ("Succeeded", "LongCodeNumber", "paired", "acs-a")), ())  # a report without resource: its send's
    assert c.arrive("b", "delivery_report", 5.0, "Failed", "x", now=2.0, resource="acs-b") == (None, ())
    assert c.arrive("b", "sent", 6.0, "", "y", now=3.0, resource="acs-c") == (
        (0.0, ("Failed", "x", "paired", "acs-b")), ())  # skew: latency 0, not < 0; the report's resource
    assert c.arrive("c", "sent", 1.0, "", "x", now=4.0) == (None, ())
    assert c.arrive("c", "sent", 2.0, "", "x", now=5.0) == (None, [("replaced", Waiting("sent", 1.0, "", "x"))])
    c.arrive("d", "sent", 3.0, "", "x", now=6.0)
    match, evicted = c.arrive("e", "delivery_report", 4.0, "Failed", "x", now=7.0)
    assert match is None and evicted == [("capacity", Waiting("sent", 2.0, "", "x"))]
    assert all(type(w) is Waiting for _, w in c._waiting._entries.values())
    assert c.pending() == {"sent": 1, "delivery_report": 1}


# --- the send time in the MessageId (fleet: the send was seen by another replica) ----------------

#: Microsoft's published example (SMS logs page): sent 2023-01-18 18:13:00 UTC.
DOC_ID = "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd_noam"
DOC_SENT = datetime(2023, 1, 18, 18, 13, 0, tzinfo=UTC).timestamp()  # 1674065580


def test_send_time_of_the_documented_examples() -> None:
    assert DOC_SENT == 1674065580.0
    assert send_time_from_message_id(DOC_ID) == DOC_SENT
    assert send_time_from_message_id(DOC_ID[:-5]) == DOC_SENT  # without the region
    # the Event Grid example's prefix, 2020-09-18 00:22:13 UTC, and the SDK's recorded 2021-03-03 22:17:38
    assert send_time_from_message_id("Outgoing_202009180022138813a09b-0f95-4a4c-b2b5-6c8d1c4f3a2e") == 1600388533.0
    assert send_time_from_message_id("Outgoing_20210303221738AABBCCDD-1234-5678-9ABC-DEF012345678_noam") == 1614809858.0


@pytest.mark.parametrize("message_id", [
    "ff00e5c9-876d-4958-86e3-4637484fe5bd",  # a bare GUID: opaque
    "Incoming_20230118181212" + "11c6ee31-63fe-477c-8d51-f800543c6694",  # incoming, not a send
    "outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd",  # other casing
    "Outgoing_2023011818130ff00e5c9-876d-4958-86e3-4637484fe5bd",  # 13 digits
    "Outgoing_20231318181300ff00e5c9-876d-4958-86e3-4637484fe5bd",  # month 13
    "Outgoing_20230230181300ff00e5c9-876d-4958-86e3-4637484fe5bd",  # 30 February
    "Outgoing_20230118241300ff00e5c9-876d-4958-86e3-4637484fe5bd",  # hour 24
    "Outgoing_00000118181300ff00e5c9-876d-4958-86e3-4637484fe5bd",  # year 0
    "Outgoing_2023011818130\u0660ff00e5c9-876d-4958-86e3-4637484fe5bd",  # an Arabic-Indic digit
    "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5b",  # short GUID
    "Outgoing_20230118181300ff00e5c9x876d-4958-86e3-4637484fe5bd",  # no hyphen
    "Outgoing_20230118181300gf00e5c9-876d-4958-86e3-4637484fe5bd",  # not hex
    "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd_",  # empty region
    "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd_no am",  # space in the region
    "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bdX",  # trailing garbage
    "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd_" + "a" * 33,  # region too long
    "Outgoing_20230118181300ff00e5c9-876d-4958-86e3-4637484fe5bd\n",
    "Outgoing_", "", "Outgoing_20230118181300",
])
def test_send_time_refuses_anything_else(message_id: str) -> None:
    assert send_time_from_message_id(message_id) is None


def test_send_time_parsing_is_bounded_for_huge_ids() -> None:
    # a megabyte of a well-formed prefix is refused by its length before anything looks at it
    assert send_time_from_message_id(DOC_ID + "a" * 1_000_000) is None
    assert send_time_from_message_id("Outgoing_" + "1" * 1_000_000) is None


def test_report_without_its_send_takes_the_send_time_from_the_message_id() -> None:
    c = Correlator(max_entries=10, max_age=7200.0, from_message_id=True)
    report_time = DOC_SENT + 12.25  # 18:13:12.25; the send was within 18:13:00-18:13:01 -> 11.75 s
    match, evicted = c.report(DOC_ID, report_time, "Succeeded", "LongCodeNumber", now=DOC_SENT + 100)
    assert match == Match(11.75, "Succeeded", "LongCodeNumber", "message_id") and evicted == []
    assert len(c) == 0 and c.pending() == {"sent": 0, "delivery_report": 0}  # the report does not wait
    # a report in the same second as its send: clamped at 0, as a paired one
    assert c.arrive(DOC_ID, "delivery_report", DOC_SENT + 0.2, "Failed", "x", now=DOC_SENT + 1, resource="r") == (
        (0.0, ("Failed", "x", "message_id", "r")), ())


def test_exact_pairing_wins_when_the_send_was_seen() -> None:
    c = Correlator(max_entries=10, max_age=7200.0, from_message_id=True)
    c.sent(DOC_ID, DOC_SENT + 0.75, "LongCodeNumber", now=0.0)
    match, _ = c.report(DOC_ID, DOC_SENT + 12.25, "Succeeded", "", now=1.0)
    assert match == Match(11.5, "Succeeded", "LongCodeNumber", "paired")  # not 11.75: the exact send time


@pytest.mark.parametrize("report_time, now", [
    (DOC_SENT - 61.0, DOC_SENT + 100),  # the id says the send came more than the skew after its report
    (DOC_SENT + 10.0, DOC_SENT - 61.0),  # the id is in the future of the processing clock beyond the skew
    (DOC_SENT + 7200.5 + 0.01, DOC_SENT + 7300),  # older than the correlation window
])
def test_implausible_send_times_leave_the_report_unmatched(report_time: float, now: float) -> None:
    c = Correlator(max_entries=10, max_age=7200.0, from_message_id=True)
    assert c.report(DOC_ID, report_time, "Succeeded", "x", now=now) == (None, [])
    assert c.pending() == {"sent": 0, "delivery_report": 1}  # waits for its send, as without the switch


def test_within_the_skew_and_the_window_is_accepted() -> None:
    c = Correlator(max_entries=10, max_age=7200.0, from_message_id=True)
    assert c.estimate(DOC_ID, DOC_SENT - 60.0, now=DOC_SENT - 60.0) == 0.0
    assert c.estimate(DOC_ID, DOC_SENT + 7200.5, now=DOC_SENT + 7300) == 7200.0


def test_switched_off_the_report_waits_as_before() -> None:
    c = Correlator(max_entries=10, max_age=7200.0)
    assert c.report(DOC_ID, DOC_SENT + 12.25, "Succeeded", "x", now=0.0) == (None, [])
    assert c.pending() == {"sent": 0, "delivery_report": 1}


def test_a_waiting_report_replaced_by_one_that_parses_is_counted_as_replaced() -> None:
    c = Correlator(max_entries=10, max_age=7200.0, from_message_id=True)
    # the first report's time makes the id implausible (send > report + skew): it waits
    assert c.report(DOC_ID, DOC_SENT - 100.0, "Failed", "x", now=DOC_SENT)[0] is None
    match, evicted = c.report(DOC_ID, DOC_SENT + 5.5, "Succeeded", "x", now=DOC_SENT + 10)
    assert match == Match(5.0, "Succeeded", "x", "message_id")
    assert evicted == [("replaced", Waiting("delivery_report", DOC_SENT - 100.0, "Failed", "x"))]
    assert c.pending() == {"sent": 0, "delivery_report": 0} and len(c) == 0


def test_a_window_that_ages_out_at_once_leaves_in_steps() -> None:
    """A window filled in a burst ages out in a burst: one `put` evicts at most EVICT_STEP of it (the
    body that triggers it may run on the event loop), `expire` without a limit takes the rest."""
    from consumer.correlation import EVICT_STEP

    window: ExpiringMap[int, int] = ExpiringMap(max_entries=100_000, max_age=10.0)
    for key in range(3 * EVICT_STEP):
        window.put(key, key, now=0.0)
    evicted = window.put(-1, -1, now=11.0)
    assert len(evicted) == EVICT_STEP and {reason for reason, _ in evicted} == {"age"}
    assert [value for _, value in evicted] == list(range(EVICT_STEP))  # oldest first
    assert window.add(-2, -2, now=11.0)
    assert len(window) == 3 * EVICT_STEP + 2 - 2 * EVICT_STEP
    assert len(window.expire(11.0)) == EVICT_STEP
    assert len(window) == 2 and -1 in window and -2 in window


def test_the_pipeline_expires_in_steps_and_counts_every_eviction() -> None:
    from consumer.config import PipelineSettings
    from consumer.correlation import EVICT_STEP
    from consumer.metrics import Metrics
    from consumer.pipeline import Pipeline

    metrics = Metrics(PipelineSettings().buckets, "t")
    pipeline = Pipeline(PipelineSettings(correlation_max_age_seconds=10), metrics.domain)
    n = 2 * EVICT_STEP + 5
    for i in range(n):  # reports waiting for sends that never come
        pipeline.correlator.arrive(f"m{i}", "delivery_report", 0.0, "Succeeded", "LongCodeNumber", 0.0)
    calls = 0
    while pipeline.expire(100.0, EVICT_STEP):
        calls += 1
    assert calls == 2 and len(pipeline.correlator) == 0
    assert sum(metrics.domain.unmatched_reports.values.values()) == n
