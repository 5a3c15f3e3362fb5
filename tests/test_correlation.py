"""consumer.correlation: pairing sends and delivery reports, bounded by count and age."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.correlation import DeliveryCorrelator, ExpiringMap, Match, Waiting


def test_sent_then_report_matches_once():
    c = DeliveryCorrelator(10, 100)
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
    c = DeliveryCorrelator(10, 100)
    assert c.report("m1", 1010.0, "Failed", "", now=0) == (None, [])
    assert c.pending() == {"sent": 0, "delivery_report": 1}
    match, evicted = c.sent("m1", 1000.0, "TollFreeNumber", now=1)
    # The report has no number type: the sent record's is used.
    assert match == Match(10.0, "Failed", "TollFreeNumber")
    assert evicted == [] and len(c) == 0


def test_report_number_type_wins():
    c = DeliveryCorrelator(10, 100)
    c.sent("m", 0.0, "LongCodeNumber", now=0)
    match, _ = c.report("m", 2.0, "Succeeded", "ShortCodeNumber", now=0)
    assert match.number_type == "ShortCodeNumber"


def test_latency_is_clamped_at_zero():
    c = DeliveryCorrelator(10, 100)
    c.sent("m", 1000.0, "LongCodeNumber", now=0)
    match, _ = c.report("m", 999.2, "Succeeded", "LongCodeNumber", now=0)
    assert match.latency == 0.0


def test_bounded_by_count_evicts_oldest_with_capacity_reason():
    c = DeliveryCorrelator(2, 1000)
    c.sent("a", 1.0, "x", now=0)
    c.report("b", 2.0, "Failed", "x", now=1)
    match, evicted = c.sent("c", 3.0, "x", now=2)
    assert match is None
    assert evicted == [("capacity", Waiting("sent", 1.0, "", "x"))]
    assert len(c) == 2 and "a" not in c._waiting
    assert c.pending() == {"sent": 1, "delivery_report": 1}
    _, evicted = c.sent("d", 4.0, "x", now=3)
    assert evicted == [("capacity", Waiting("delivery_report", 2.0, "Failed", "x"))]
    assert c.pending() == {"sent": 2, "delivery_report": 0}


def test_bounded_by_age_on_callers_clock():
    c = DeliveryCorrelator(100, 60)
    c.sent("a", 0.0, "x", now=0)
    c.report("b", 0.0, "Succeeded", "x", now=30)
    assert c.expire(60) == []  # exactly max_age old is still allowed
    assert c.expire(60.5) == [("age", Waiting("sent", 0.0, "", "x"))]
    assert c.pending() == {"sent": 0, "delivery_report": 1}
    _, evicted = c.sent("c", 0.0, "x", now=91)
    assert evicted == [("age", Waiting("delivery_report", 0.0, "Succeeded", "x"))]
    assert c.pending() == {"sent": 1, "delivery_report": 0}


def test_same_side_twice_replaces_and_reports_replaced():
    c = DeliveryCorrelator(10, 100)
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
    c = DeliveryCorrelator(max_entries, max_age)
    model: dict[str, str] = {}  # what should be waiting: id → side
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
            partner = model.pop(key, None)
            side = "sent" if op == "sent" else "delivery_report"
            assert (match is not None) == (partner is not None and partner != side)
            if match is not None:
                assert match.latency >= 0
                assert not evicted
            else:
                model[key] = side
                if partner is not None:
                    assert evicted[0][0] == "replaced" and evicted[0][1].side == side
        for reason, _ in evicted:
            assert reason in ("age", "capacity", "replaced")
        assert len(c) <= max_entries
        pending = c.pending()
        assert all(n >= 0 for n in pending.values())
        assert sum(pending.values()) == len(c)
        waiting_sides = [w.side for _, w in c._waiting._entries.values()]
        assert pending == {"sent": waiting_sides.count("sent"), "delivery_report": waiting_sides.count("delivery_report")}
        model = {k: v for k, v in model.items() if k in c._waiting}


def test_arrive_is_sent_and_report_in_plain_tuples() -> None:
    c = DeliveryCorrelator(max_entries=2, max_age=60.0)
    assert c.arrive("a", "sent", 10.0, "", "LongCodeNumber", now=0.0) == (None, ())
    assert c.arrive("a", "delivery_report", 13.5, "Succeeded", "", now=1.0) == ((3.5, ("Succeeded", "LongCodeNumber")), ())
    assert c.arrive("b", "delivery_report", 5.0, "Failed", "x", now=2.0) == (None, ())
    assert c.arrive("b", "sent", 6.0, "", "y", now=3.0) == ((0.0, ("Failed", "x")), ())  # skew: latency 0, not < 0
    assert c.arrive("c", "sent", 1.0, "", "x", now=4.0) == (None, ())
    assert c.arrive("c", "sent", 2.0, "", "x", now=5.0) == (None, [("replaced", Waiting("sent", 1.0, "", "x"))])
    c.arrive("d", "sent", 3.0, "", "x", now=6.0)
    match, evicted = c.arrive("e", "delivery_report", 4.0, "Failed", "x", now=7.0)
    assert match is None and evicted == [("capacity", Waiting("sent", 2.0, "", "x"))]
    assert all(type(w) is Waiting for _, w in c._waiting._entries.values())
    assert c.pending() == {"sent": 1, "delivery_report": 1}
