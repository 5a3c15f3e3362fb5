"""What a traffic run is asked for (`TrafficOptions`, `Drill`) and the parsing of weighted mixes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from consumer.labels import ISO_COUNTRIES, NUMBER_TYPES

from .vocabulary import DEFAULT_COUNTRIES, DEFAULT_NUMBER_TYPES, DEFAULT_RESOURCE_ID, DEFAULT_START, \
    SECOND_RESOURCE_ID

__all__ = ["Drill", "TrafficOptions", "parse_mix"]

@dataclass(frozen=True, slots=True)
class Drill:
    """An alert drill, a country outage as ACS reports one: sends to `country` are accepted as usual,
    and every delivery report for that country that falls in [after, after + seconds) of simulated
    time fails with a carrier code (4005 blocked by the carrier, 5001 carrier unavailable).

    Why the reports and not the sends: a failed send has no delivery report, and the delivery
    alerts (AcsSmsDeliveryFailureRatioHighByCountry, ...) count reports; a drill of failed sends
    would dry the country's reports up within seconds and fire nothing over the alerts' windows."""

    country: str
    seconds: float = 30.0
    after: float = 0.0

    def __post_init__(self) -> None:
        if self.country not in ISO_COUNTRIES:
            raise ValueError(f"drill country {self.country!r} is not an ISO 3166-1 alpha-2 code")
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError("drill seconds must be a positive number")
        if not (self.after >= 0 and math.isfinite(self.after)):
            raise ValueError("drill start must be zero or more seconds")

    def covers(self, country: str, at: float) -> bool:
        """Whether a record for `country` at simulated offset `at` falls in the drill."""
        return country == self.country and self.after <= at < self.after + self.seconds


def _default_countries() -> dict[str, float]:
    return dict(DEFAULT_COUNTRIES)


def _default_number_types() -> dict[str, float]:
    return dict(DEFAULT_NUMBER_TYPES)


@dataclass(frozen=True)
class TrafficOptions:
    """What to generate. Validated on construction (ValueError), so a bad option fails early.

    `rate` counts every record (sends, delivery reports, usage, ...) per second of simulated time, in
    the steady state: the stream starts without delivery reports and reaches `rate` as their delivery reports
    start to arrive (about 40 % of it in the first second, most of it after ten).
    `failure_ratio` is both the share of failed sends and of failed delivery reports.
    `records` and `duration` bound the run (either, both or neither — neither is endless). With
    `drain` (default), the consequences still pending when the bound is reached — delivery reports
    and usage records of the last sends — are emitted afterwards at their own simulated time, so every
    accepted send has its delivery report; a `records` bound is then exact (the last one or two
    activities are single-record ones when fewer than three records are left).
    A body closes at `records_per_body` records or when the next record is more than `body_span`
    simulated seconds after the body's first one (Azure Monitor flushes often; `inf` for a corpus).
    """

    rate: float = 200.0
    failure_ratio: float = 0.05
    countries: Mapping[str, float] = field(default_factory=_default_countries)
    number_types: Mapping[str, float] = field(default_factory=_default_number_types)
    records_per_body: int = 50
    body_span: float = 1.0
    duration: float | None = None
    records: int | None = None
    seed: int = 1
    start: datetime = DEFAULT_START
    drill: Drill | None = None
    #: The resources the records come from (1, 2 or more): activity i (a send with its delivery report
    #: and usage record, ...) is of the resource at i % 3 of the pattern first, first, second (one
    #: resource: all of it; three or more: in turn). Deterministic: the stream of a seed does not depend on it.
    resource_ids: tuple[str, ...] = (DEFAULT_RESOURCE_ID, SECOND_RESOURCE_ID)
    drain: bool = True

    def __post_init__(self) -> None:
        if not self.resource_ids:
            raise ValueError("at least one resource id")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError("rate must be a positive number of records per second")
        if not 0.0 <= self.failure_ratio <= 1.0:
            raise ValueError("failure ratio must be between 0 and 1")
        _check_mix(self.countries, ISO_COUNTRIES, "country")
        _check_mix(self.number_types, frozenset(NUMBER_TYPES), "number type")
        if self.records_per_body < 1:
            raise ValueError("records per body must be at least 1")
        if not self.body_span > 0:
            raise ValueError("body span must be positive")
        if self.duration is not None and not (self.duration > 0 and math.isfinite(self.duration)):
            raise ValueError("duration must be a positive number of seconds")
        if self.records is not None and self.records < 1:
            raise ValueError("records must be at least 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")

    @property
    def bounded(self) -> bool:
        """Whether the run ends by itself."""
        return self.duration is not None or self.records is not None


def _check_mix(mix: Mapping[str, float], allowed: frozenset[str], what: str) -> None:
    if not mix:
        raise ValueError(f"the {what} mix is empty")
    for key, weight in mix.items():
        if key not in allowed:
            raise ValueError(f"unknown {what} {key!r}")
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(f"the weight of {what} {key!r} must be a non-negative number")
    if sum(mix.values()) <= 0:
        raise ValueError(f"the {what} mix needs at least one positive weight")


def parse_mix(text: str, allowed: Sequence[str] | frozenset[str], *, expected: str | None = None) -> dict[str, float]:
    """`"US=70,CA=10"` → `{"US": 70.0, "CA": 10.0}`. Keys are matched case-insensitively against
    `allowed` and returned in its spelling. Raises ValueError with a message fit for a command line;
    `expected` describes the keys in it (default: the list of `allowed`)."""
    canonical = {value.lower(): value for value in allowed}
    mix: dict[str, float] = {}
    if not text.strip():
        raise ValueError("empty mix; expected KEY=WEIGHT[,KEY=WEIGHT...]")
    for part in text.split(","):
        key, sep, raw_weight = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{part.strip()!r} is not KEY=WEIGHT")
        name = canonical.get(key.lower())
        if name is None:
            hint = expected or "one of " + ", ".join(sorted(allowed))
            raise ValueError(f"unknown key {key!r}; expected {hint}")
        try:
            weight = float(raw_weight)
        except ValueError:
            raise ValueError(f"weight {raw_weight.strip()!r} of {name} is not a number") from None
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(f"weight of {name} must be a non-negative number")
        if name in mix:
            raise ValueError(f"{name} appears twice")
        mix[name] = weight
    if sum(mix.values()) <= 0:
        raise ValueError("at least one weight must be positive")
    return mix
