"""The general decoder's validated models with their time parsed: what tests compare records by."""

from __future__ import annotations

from typing import Any

from consumer.records import Outcome, SmsOperational, Usage, parse_time, validate


def normalise(raw: Any) -> Outcome:
    """One raw record → its validated model with `time` parsed (or `time_problem` saying why it is
    None), or why there is none. Never raises."""
    outcome, time = validate(raw)
    if type(outcome) is SmsOperational or type(outcome) is Usage:
        if time is None:
            outcome.time_problem = "time is missing"
        else:
            outcome.time, outcome.time_problem = parse_time(time)
    return outcome
