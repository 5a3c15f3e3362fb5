"""Rules the configuration and the hot path share with `consumer.labels` hold there too: the sender
rule of the configuration is `sender_digits`, and the whole-second cache of `time_stamp` is a bounded
memo (hostile times cannot grow it)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from consumer import records
from consumer.settings import LabelLimits
from consumer.labels import BoundedMemo
from consumer.records import time_stamp


@pytest.mark.parametrize("sender", ["+1 (844) 579-1704", "+1\t844\u00a0579.1704", "CONTOSO", "+1\n844 579 1704"])
def test_the_configuration_keeps_what_the_label_rule_keeps(sender: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert LabelLimits(senders=[sender]).senders == [sender]
    # the configuration checks what `sender_digits` keeps: a rule that keeps too little is refused
    monkeypatch.setattr("consumer.settings.sender_digits", lambda value: "")
    with pytest.raises(ValidationError):
        LabelLimits(senders=[sender])


def test_the_whole_second_cache_is_a_bounded_memo() -> None:
    cache = records._whole_seconds
    assert isinstance(cache, BoundedMemo)
    for second in range(cache.size + 10):
        minutes, seconds = divmod(second, 60)
        text = f"2026-01-01T{minutes // 60:02}:{minutes % 60:02}:{seconds:02}.1234567Z"
        assert time_stamp(text)[1] == 123456
    assert len(cache) <= cache.size
