"""Bound children (what `labels(...)` returns), the bounded memo and the sender rule: each rule once."""

from __future__ import annotations

import pytest

from consumer.config import Buckets, LabelLimits
from consumer.correlation import ExpiringMap
from consumer.labels import MAX_MEMO_KEY_LENGTH, BoundedMemo, Senders, sender_digits
from consumer.metrics import DomainMetrics, FastCounter, FastHistogram


def _domain(budget: int = 2) -> DomainMetrics:
    d = DomainMetrics(Buckets())
    d.limit_series(budget)
    return d


def test_labels_are_matched_by_name_whatever_the_order() -> None:
    d = _domain()
    child = d.usage_records.labels(resource="acs-a", unit_type="Message", usage_type="SMS")
    child.value += 2.0
    child.inc()
    assert d.usage_records.values == {("SMS", "Message", "acs-a"): 3.0}
    assert d.usage_records.labels(usage_type="SMS", unit_type="Message", resource="acs-a") is child


@pytest.mark.parametrize("names", [
    {"usage_type": "SMS", "unit_type": "Message"},  # one missing
    {"usage_type": "SMS", "unit_type": "Message", "resource": "acs-a", "country": "US"},  # one too many
    {"usage_type": "SMS", "unit": "Message", "resource": "acs-a"},  # one misspelt
])
def test_labels_with_other_names_than_the_family_s_are_refused(names: dict[str, str]) -> None:
    d = _domain()
    for family in (d.usage_records, d.delivery_attempts):
        with pytest.raises(ValueError, match="label names"):
            family.labels(**names)
    assert d.usage_records.values == {}


def test_a_child_is_created_on_first_labels_call_and_not_before() -> None:
    family = FastHistogram("h", "h", ("result",), (1.0,))
    assert family.children == {}
    family.labels(result="Succeeded").observe(0.5)
    assert family.children == {("Succeeded",): [1.0, 0.0, 0.5]}


def test_a_kept_child_past_the_budget_folds_every_update_and_counts_each() -> None:
    d = _domain(budget=1)
    d.operations.labels(operation="SMSMessagesSent", result="Succeeded", number_type="LongCodeNumber",
                        country="US", resource="acs-a").inc()
    late = d.operations.labels(operation="SMSMessagesSent", result="Failed", number_type="LongCodeNumber",
                               country="FR", resource="acs-a")
    late.inc()
    late.value += 2.0
    assert d.operations.values[("SMSMessagesSent", "Failed", "LongCodeNumber", "other", "other")] == 3.0
    assert d.series_folded.values == {("acs_sms_operations",): 2.0}
    d.record_age.labels(category="SMSOperational").observe(1.0)
    age = d.record_age.labels(category="Usage")  # the second series of a family at budget 1
    age.observe(3.0)
    age.observe(4.0)
    assert d.record_age.children[("other",)][-1] == 7.0
    assert d.series_folded.values[("acs_consumer_record_age_seconds",)] == 2.0


def test_the_default_budget_is_the_settings_default() -> None:
    family = FastCounter("c", "c", ("country",))
    for i in range(LabelLimits().series_per_family + 1):
        family.inc((f"C{i}",))
    assert len(family.values) == LabelLimits().series_per_family + 1  # the last one is `other`
    assert ("other",) in family.values


def test_a_bounded_memo_is_emptied_when_full_and_keeps_no_long_or_non_ascii_key() -> None:
    calls: list[object] = []
    memo: BoundedMemo[object, int] = BoundedMemo(lambda key: calls.append(key) or len(calls), size=2)
    assert memo["a"] == 1 and memo["a"] == 1 and memo[("b", None)] == 2
    assert memo["c"] == 3 and len(memo) == 1  # full: emptied first
    long_key = "x" * (MAX_MEMO_KEY_LENGTH + 1)
    assert memo[long_key] == 4 and memo[long_key] == 5 and memo[("é",)] == 6 and memo[("é",)] == 7
    assert set(memo) == {"c"}


def test_senders_ignore_every_kind_of_white_space_as_the_configuration_does() -> None:
    senders = Senders(["+1 (844) 579-1704", "Contoso"])
    assert senders("+1\t844\u00a0579\n1704") == "+18445791704"
    assert senders("con toso") == "Contoso"
    assert sender_digits(" +1 844\t579.1704 ") == "+18445791704"


def test_the_age_check_of_an_expiring_map() -> None:
    window: ExpiringMap[int, None] = ExpiringMap(10, 5.0)
    window.add(1, None, 100.0)
    assert window.oldest_within_age(105.0) and not window.oldest_within_age(105.5)
