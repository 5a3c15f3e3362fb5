"""Synthetic Azure Communication Services SMS traffic, as a diagnostic setting streams it to Event Hubs.

Why this exists: the consumer has to be exercised (benchmarks, end-to-end tests, `demo`, load tests
against a real hub) with traffic that looks like production — many records per body, sends followed
by their delivery reports minutes later, a long tail of slow reports, failures, incoming messages,
opt-outs, billing (`Usage`) records and records of categories the consumer skips — without an ACS
resource, real phone numbers or real money.

Two layers, as everywhere in this project:

- A **pure, deterministic core** (`TrafficOptions`, `TrafficGenerator`, `generate_corpus`, `Stats`):
  no I/O, no wall clock, one seeded `random.Random`. The same options give the same bytes. Time is
  *simulated*: every record has an offset in seconds from `TrafficOptions.start`, and records come out
  in time order, so a delivery report appears in the stream at its own (later) simulated time, exactly
  as Azure Monitor would deliver it. `Stats` is the ground truth: it counts what was emitted with the
  same label values the metrics use, so a test can assert exact metric values.
- A **thin shell** (`publish`, `main`): paces the stream to the wall clock, batches bodies into Event
  Hubs events with the real `azure.eventhub.aio.EventHubProducerClient`, prints progress, stops
  cleanly on cancellation / Ctrl-C. `main` is `acs-sms-consumer simulate`.

Record shape: the Azure resource-log common schema (see `sms-logs.md`): camelCase top level (`time`
with 7 fractional digits, upper-cased `resourceId`, `operationName`, `category`, `resultType`, ...)
and the PascalCase SMS fields inside `properties`. Values are plausible but fake: fictional phone
number ranges (NANP 555-01xx, Ofcom 07700 900xxx, ARCEP 06 39 98, ACMA 0491 570), documentation IP
ranges (RFC 5737), random version-4 GUIDs.

Assumptions (ACS does not document them; change here if real logs show otherwise):
- opt-out / opt-in records use the operation names `SMSOptOutReceived` / `SMSOptInReceived`, with the
  keyword's length as `IncomingMessageLength` (the consumer's `labels.SMS_OPERATIONS` knows them);
- a failed send (HTTP 4xx/5xx) carries no `MessageId` (no message was created);
- every accepted send and every incoming message is billed by one `Usage` record (`UsageType` `SMS`,
  `UnitType` `Message`, `Quantity` = number of segments) a few seconds later;
- the skipped category is `ChatOperational` with a few chat operation names.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import heapq
import math
import os
import random
import signal
import sys
import time as _time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final

import orjson

from consumer.labels import (
    DELIVERY_REPORT,
    ISO_COUNTRIES,
    NUMBER_TYPES,
    RECEIVED,
    SENT,
    SMS_OPERATIONAL,
    USAGE,
)

if TYPE_CHECKING:  # the SDK is only needed to publish; importing it costs ~0.3 s
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.eventhub.aio import EventHubProducerClient

__all__ = [
    "CONNECTION_STRING_ENV",
    "PublishReport",
    "build_parser",
    "main",
    "options_from_args",
    "publish",
    "write_dry_run",
    "OPT_IN",
    "OPT_OUT",
    "CHAT_OPERATIONAL",
    "DELIVERY_STATUS",
    "Body",
    "Drill",
    "Stats",
    "TimedRecord",
    "TrafficGenerator",
    "TrafficOptions",
    "build_corpus",
    "generate_corpus",
    "parse_mix",
    "split_records",
]

# --- vocabulary ---------------------------------------------------------------------------------

#: Assumed operation names for opt-out / opt-in (ACS says they are logged, not under which name).
OPT_OUT: Final = "SMSOptOutReceived"
OPT_IN: Final = "SMSOptInReceived"
#: A category the consumer does not parse, so that `skipped` counts are exercised.
CHAT_OPERATIONAL: Final = "ChatOperational"

API_VERSION: Final = "2021-03-07"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"

DEFAULT_COUNTRIES: Final[Mapping[str, float]] = {"US": 70, "CA": 10, "GB": 10, "FR": 10}
DEFAULT_NUMBER_TYPES: Final[Mapping[str, float]] = {
    "LongCodeNumber": 55,
    "TollFreeNumber": 25,
    "ShortCodeNumber": 15,
    "DynamicAlphaSenderID": 5,
}
#: Fixed so that the pure generator is deterministic; `publish` replaces it with the wall clock.
DEFAULT_START: Final = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
DEFAULT_RESOURCE_ID: Final = (
    "/SUBSCRIPTIONS/6F1A2B3C-4D5E-4F60-8A7B-9C0D1E2F3A4B/RESOURCEGROUPS/RG-SMS-DEMO"
    "/PROVIDERS/MICROSOFT.COMMUNICATION/COMMUNICATIONSERVICES/ACS-SMS-DEMO"
)
_ENDPOINT_HOST: Final = "acs-sms-demo.communication.azure.com"

#: Share of "activities" (a send with its consequences, an incoming message, ...). Not an option: the
#: brief is a realistic mix; `rate` and `failure_ratio` are the knobs people turn.
ACTIVITY_MIX: Final[Mapping[str, float]] = {
    SENT: 0.82,
    RECEIVED: 0.10,
    OPT_OUT: 0.025,
    OPT_IN: 0.01,
    CHAT_OPERATIONAL: 0.045,
}

#: HTTP status of failed sends → (weight, resultDescription, level).
SEND_FAILURES: Final[Mapping[int, tuple[float, str, str]]] = {
    400: (0.30, "Bad request: the To phone number is not a valid E.164 number", "Error"),
    401: (0.10, "Unauthorized: the access key or token is not valid", "Error"),
    429: (0.40, "Too many requests: the sender exceeded its throughput limit", "Warning"),
    500: (0.20, "Internal server error", "Error"),
}

#: ACS delivery status codes (Event Grid `DeliveryStatusDetails`) → description.
DELIVERY_STATUS: Final[Mapping[int, str]] = {
    2000: "Delivered",
    4000: "Message rejected due to fraud detection",
    4001: "Message rejected due to an invalid Source/From number format",
    4002: "Message rejected due to an invalid Destination/To number format",
    4003: "Message rejected due to an unsupported destination",
    4004: "Message rejected as the destination number does not exist",
    4005: "Message blocked by the destination carrier",
    4006: "Destination number is not reachable",
    4007: "Destination number has opted out of messages from this sender",
    4008: "Exceeded the maximum message count for the sender profile (rate limit)",
    4009: "Message blocked by the Microsoft entitlement system",
    4010: "Message blocked because the toll-free number is not verified",
    4020: "Message blocked because it exceeded volumetric limits",
    5000: "Message failed to deliver; contact Microsoft support",
    5001: "Message failed to deliver due to a temporary unavailability of the carrier",
    5002: "Carrier does not support delivery reports",
    9999: "Message failed to deliver due to an unknown error",
}
#: Relative frequency of each failure code among failed delivery reports.
_DELIVERY_FAILURE_WEIGHTS: Final[Mapping[int, float]] = {
    4000: 1, 4001: 1, 4002: 3, 4003: 2, 4004: 10, 4005: 8, 4006: 14, 4007: 6, 4008: 3,
    4009: 1, 4010: 4, 4020: 2, 5000: 2, 5001: 4, 5002: 3, 9999: 5,
}

_CALLING_CODES: Final[Mapping[str, str]] = {
    "US": "1", "CA": "1", "PR": "1", "GB": "44", "FR": "33", "DE": "49", "ES": "34", "IT": "39",
    "NL": "31", "BE": "32", "CH": "41", "AT": "43", "IE": "353", "PT": "351", "SE": "46",
    "NO": "47", "DK": "45", "FI": "358", "PL": "48", "AU": "61", "NZ": "64", "IN": "91", "JP": "81",
    "BR": "55", "MX": "52", "ZA": "27", "SG": "65",
}
_US_AREA_CODES: Final = ("206", "212", "312", "415", "425", "512", "617", "702", "919")
_CA_AREA_CODES: Final = ("416", "514", "604", "613", "780")
_TOLL_FREE_CODES: Final = ("800", "833", "844", "855", "866", "877", "888")
_ALPHA_SENDERS: Final = ("CONTOSO", "FABRIKAM", "Woodgrove", "Tailspin")
_SDKS: Final = (
    ("azsdk-net-Communication.Sms", "Microsoft Windows 10.0.20348"),
    ("azsdk-python-communication-sms", "Linux-5.15.0-1057-azure-x86_64-with-glibc2.35"),
    ("azsdk-js-communication-sms", "Node/18.19.0 (linux; x64)"),
    ("azsdk-java-azure-communication-sms", "Java/17.0.9 (Linux; amd64)"),
    ("", ""),  # plain REST calls carry no SDK user agent
)
_DOC_NETWORKS: Final = ("192.0.2.", "198.51.100.", "203.0.113.")  # RFC 5737
_OPT_OUT_WORDS: Final = ("STOP", "STOP", "STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPALL")
_OPT_IN_WORDS: Final = ("START", "START", "UNSTOP", "YES")
_CHAT_OPERATIONS: Final = (
    ("SendMessage", 201), ("ListMessages", 200), ("CreateChatThread", 201), ("AddChatParticipants", 201),
)
_DELIVERY_REPORT_URI: Final = "https://global.smsgw.prod.communication.microsoft.com/rtc/telephony/sms/DeliveryReport"
_INBOUND_URI: Final = "https://global.smsgw.prod.communication.microsoft.com/rtc/telephony/sms/inbound"
_MAX_DELIVERY_DELAY: Final = 900.0  # seconds; ACS gives up on a report long before Azure does
_TICKS_PER_SECOND: Final = 10_000_000  # Azure writes 7 fractional digits (100 ns ticks)


# --- options ------------------------------------------------------------------------------------


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
    resource_id: str = DEFAULT_RESOURCE_ID
    drain: bool = True

    def __post_init__(self) -> None:
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


# --- ground truth -------------------------------------------------------------------------------


@dataclass
class Stats:
    """What was emitted, counted under the label values the consumer's metrics use, so that an
    end-to-end test can assert exact metric values (`operations` ≙ `acs_sms_operations_total`,
    `failures` ≙ `acs_sms_failures_total`, `usage_*` ≙ `acs_usage_*`, ...).

    Feed it records in time order with `observe`; it pairs delivery reports with their sends by
    `MessageId` (which is why it needs the simulated time `at`).
    """

    records: int = 0
    bodies: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    #: (operation, result, number_type, country) of SMSOperational records.
    operations: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    #: (operation, result_signature, number_type, country) of failed SMSOperational records.
    failures: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    #: delivery reports by (result, DeliveryAttempts).
    delivery_attempts: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: delivery reports whose send was observed earlier, by (result, number_type).
    delivery_pairs: Counter[tuple[str, str]] = field(default_factory=Counter)
    delivery_latency_sum: float = 0.0
    #: delivery reports whose send was not observed (never when fed the generator's whole stream), by
    #: (result, number_type): the consumer takes their send time from the MessageId (the second of the
    #: send, +0.5 s), which `message_id_latency_sum` adds up as the consumer does (clamped at 0).
    message_id_reports: Counter[tuple[str, str]] = field(default_factory=Counter)
    message_id_latency_sum: float = 0.0
    #: all of those reports (the consumer's unmatched count with `latency_from_message_id: false`)
    unmatched_reports: int = 0
    countries: Counter[str] = field(default_factory=Counter)
    #: characters by direction (`outgoing`, `incoming`).
    characters: Counter[str] = field(default_factory=Counter)
    usage_records: Counter[tuple[str, str]] = field(default_factory=Counter)
    usage_quantity: Counter[tuple[str, str]] = field(default_factory=Counter)
    _awaiting: dict[str, float] = field(default_factory=dict, repr=False)

    def observe(self, record: Mapping[str, Any], at: float) -> None:
        """Count one record emitted at simulated offset `at` (seconds)."""
        self.records += 1
        category = record["category"]
        self.categories[category] += 1
        props = record["properties"]
        if category == USAGE:
            key = (props["UsageType"], props["UnitType"])
            self.usage_records[key] += 1
            self.usage_quantity[key] += props["Quantity"]
            return
        if category != SMS_OPERATIONAL:
            return
        operation = record["operationName"]
        result = record["resultType"]
        number_type = props["NumberType"]
        country = props["Country"]
        self.operations[(operation, result, number_type, country)] += 1
        self.countries[country] += 1
        if result != SUCCEEDED:
            self.failures[(operation, str(record["resultSignature"]), number_type, country)] += 1
        if props["OutgoingMessageLength"]:
            self.characters["outgoing"] += props["OutgoingMessageLength"]
        if props["IncomingMessageLength"]:
            self.characters["incoming"] += props["IncomingMessageLength"]
        if operation == SENT and result == SUCCEEDED:
            self._awaiting[props["MessageId"]] = at
        elif operation == DELIVERY_REPORT:
            self.delivery_attempts[(result, props["DeliveryAttempts"])] += 1
            sent_at = self._awaiting.pop(props["MessageId"], None)
            if sent_at is None:
                self.unmatched_reports += 1
                self.message_id_reports[(result, number_type)] += 1
                self.message_id_latency_sum += max(0.0, _seconds_since_id(record["time"], props["MessageId"]) - 0.5)
            else:
                self.delivery_pairs[(result, number_type)] += 1
                self.delivery_latency_sum += at - sent_at

    @property
    def awaiting_reports(self) -> int:
        """Accepted sends whose delivery report has not been observed (yet)."""
        return len(self._awaiting)

    def by_operation(self) -> Counter[tuple[str, str]]:
        """SMSOperational records by (operation, result)."""
        out: Counter[tuple[str, str]] = Counter()
        for (operation, result, _, _), n in self.operations.items():
            out[(operation, result)] += n
        return out

    def share_failed(self, operation: str) -> float:
        """Share of `operation` records that failed (0.0 when there are none)."""
        counts = self.by_operation()
        total = sum(n for (op, _), n in counts.items() if op == operation)
        return counts[(operation, FAILED)] / total if total else 0.0

    def summary(self) -> str:
        """One line for humans."""
        ops = self.by_operation()
        sent = ops[(SENT, SUCCEEDED)] + ops[(SENT, FAILED)]
        reports = sum(n for (op, _), n in ops.items() if op == DELIVERY_REPORT)
        return (
            f"{self.records} records in {self.bodies} bodies: {sent} sends ({ops[(SENT, FAILED)]} failed), "
            f"{reports} delivery reports ({ops[(DELIVERY_REPORT, FAILED)]} failed), "
            f"{ops[(RECEIVED, SUCCEEDED)]} received, {self.categories[USAGE]} usage, "
            f"{sum(n for c, n in self.categories.items() if c not in (SMS_OPERATIONAL, USAGE))} other"
        )


def _seconds_since_id(time: str, message_id: str) -> float:
    """A record's `time` (as the generator writes it) minus the whole second in an
    `Outgoing_<yyyyMMddHHmmss>...` MessageId: the oracle's own arithmetic, independent of the
    consumer's parser."""
    sent = datetime.strptime(message_id[9:23], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    at = datetime.strptime(time[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return (at - sent).total_seconds() + int(time[20:27]) / _TICKS_PER_SECOND


# --- the generator ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimedRecord:
    """One record and its simulated time (seconds after `TrafficOptions.start`)."""

    at: float
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Body:
    """One event body as Azure Monitor would write it, with the simulated time of each record."""

    records: list[dict[str, Any]]
    times: list[float]

    @property
    def at(self) -> float:
        """The simulated time of the last record: the earliest moment the body could be published."""
        return self.times[-1]

    @property
    def first(self) -> float:
        """The simulated time of the first record."""
        return self.times[0]

    def encode(self) -> bytes:
        """The event body: UTF-8 JSON `{"records": [...]}`."""
        return orjson.dumps({"records": self.records})


class _Chooser:
    """Weighted choice with precomputed cumulative weights (random.choices recomputes them)."""

    __slots__ = ("_values", "_cumulative", "_total")

    def __init__(self, weights: Mapping[Any, float]) -> None:
        items = [(k, w) for k, w in weights.items() if w > 0]
        self._values = [k for k, _ in items]
        self._cumulative: list[float] = []
        total = 0.0
        for _, w in items:
            total += w
            self._cumulative.append(total)
        self._total = total

    def __call__(self, rng: random.Random) -> Any:
        i = bisect.bisect_right(self._cumulative, rng.random() * self._total)
        return self._values[min(i, len(self._values) - 1)]


class TrafficGenerator:
    """Produces the record stream described by a `TrafficOptions`. Single use: iterate either
    `records()` or `bodies()` once; `stats` counts what has been handed out so far."""

    def __init__(self, options: TrafficOptions) -> None:
        self.options = options
        self.stats = Stats()
        self._rng = random.Random(options.seed)
        self._used = False
        self._countries = _Chooser(options.countries)
        self._number_types = _Chooser(options.number_types)
        receivable = {k: w for k, w in options.number_types.items() if "Alpha" not in k and w > 0}
        self._receiving_types = _Chooser(receivable or {"LongCodeNumber": 1.0})
        self._activities = _Chooser(ACTIVITY_MIX)
        self._send_failures = _Chooser({code: spec[0] for code, spec in SEND_FAILURES.items()})
        self._report_failures = _Chooser(_DELIVERY_FAILURE_WEIGHTS)
        self._numbers: dict[tuple[str, str], list[str]] = {}
        rng = self._rng
        self._callers = [
            (_DOC_NETWORKS[rng.randrange(3)] + str(rng.randint(10, 250)), *_SDKS[i % len(_SDKS)])
            for i in range(2 * len(_SDKS))
        ]
        f = options.failure_ratio
        weights_total = sum(ACTIVITY_MIX.values())
        per_activity = (
            ACTIVITY_MIX[SENT] * (1 + (1 - f) * 2)  # send, then its report and its usage record
            + ACTIVITY_MIX[RECEIVED] * 2  # the message and its usage record
            + ACTIVITY_MIX[OPT_OUT] + ACTIVITY_MIX[OPT_IN] + ACTIVITY_MIX[CHAT_OPERATIONAL]
        ) / weights_total
        self._activity_rate = options.rate / per_activity
        start = options.start.astimezone(UTC)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        delta = start - epoch
        self._start_ticks = (delta.days * 86_400 + delta.seconds) * _TICKS_PER_SECOND + delta.microseconds * 10
        #: Simulated time of the last activity, set once no new activity will start (only the pending
        #: delivery reports and usage records remain): `publish` sends the rest without waiting.
        self.activities_ended_at: float | None = None
        self._seconds: dict[int, str] = {}  # formatted whole seconds; records revisit a few
        self._sequence = 0

    # - public streams -

    def records(self) -> Iterator[TimedRecord]:
        """Every record in simulated-time order; counted in `stats` as it is handed out."""
        observe = self.stats.observe
        for at, record in self._stream():
            observe(record, at)
            yield TimedRecord(at, record)

    def bodies(self) -> Iterator[Body]:
        """Records grouped into bodies (see `TrafficOptions`); counted in `stats` when a body is
        handed out, so `stats` never includes a body that was not."""
        per_body = self.options.records_per_body
        span = self.options.body_span
        stats = self.stats
        batch: list[dict[str, Any]] = []
        times: list[float] = []
        for at, record in self._stream():
            if batch and (len(batch) >= per_body or at - times[0] > span):
                body = Body(batch, times)
                for t, r in zip(times, batch):
                    stats.observe(r, t)
                stats.bodies += 1
                yield body
                batch, times = [], []
            batch.append(record)
            times.append(at)
        if batch:
            for t, r in zip(times, batch):
                stats.observe(r, t)
            stats.bodies += 1
            yield Body(batch, times)

    # - the time-ordered stream -

    def _stream(self) -> Iterator[tuple[float, dict[str, Any]]]:
        if self._used:
            raise RuntimeError("a TrafficGenerator is single use; make a new one")
        self._used = True
        o = self.options
        rng = self._rng
        pending: list[tuple[float, int, dict[str, Any]]] = []  # heap of (at, sequence, record)
        emitted = 0
        limit = o.records
        duration = o.duration
        rate = self._activity_rate
        t = last = 0.0
        while True:
            last = t
            t += rng.expovariate(rate)
            while pending and pending[0][0] <= t:
                at, _, record = heapq.heappop(pending)
                if duration is not None and at >= duration and not o.drain:
                    self.activities_ended_at = last
                    return
                yield at, record
                emitted += 1
            if duration is not None and t >= duration:
                break
            budget = None if limit is None else limit - emitted - len(pending)
            if budget is not None and budget <= 0:
                break
            activity = self._activities(rng)
            if budget is not None and budget < 3 and activity in (SENT, RECEIVED):
                activity = CHAT_OPERATIONAL  # keeps the count exact without orphaning a send
            record, followers = self._activity(activity, t)
            yield t, record
            emitted += 1
            for follower_at, follower in followers:
                self._sequence += 1
                heapq.heappush(pending, (follower_at, self._sequence, follower))
        self.activities_ended_at = last
        if o.drain:
            while pending:
                at, _, record = heapq.heappop(pending)
                yield at, record

    def _activity(self, activity: str, t: float) -> tuple[dict[str, Any], list[tuple[float, dict[str, Any]]]]:
        if activity == SENT:
            return self._send(t)
        if activity == RECEIVED:
            return self._received(t)
        if activity == OPT_OUT or activity == OPT_IN:
            return self._opt(activity, t), []
        return self._chat(t), []

    # - record builders -

    def _send(self, t: float) -> tuple[dict[str, Any], list[tuple[float, dict[str, Any]]]]:
        rng = self._rng
        o = self.options
        country = self._countries(rng)
        number_type = self._number_types(rng)
        phone = self._phone_number(number_type, country)
        ip, sdk, platform = self._callers[rng.randrange(len(self._callers))]
        failed = rng.random() < o.failure_ratio
        uri = f"https://{_ENDPOINT_HOST}/sms?api-version={API_VERSION}"
        if failed:
            status = self._send_failures(rng)
            _, description, level = SEND_FAILURES[status]
            duration = _send_duration(rng, status)
            props = self._sms_properties(0, 0, 0, phone, number_type, sdk, platform, None, country, uri)
            return self._record(t, SENT, API_VERSION, FAILED, status, description, duration, ip, level, props), []
        length = rng.randint(12, 160) if rng.random() < 0.72 else rng.randint(161, 640)
        message_id = self._message_id("Outgoing_", t, "_noam")
        props = self._sms_properties(length, 0, 0, phone, number_type, sdk, platform, message_id, country, uri)
        sent = self._record(t, SENT, API_VERSION, SUCCEEDED, 202, "Accepted", _send_duration(rng, 202), ip,
                            "Informational", props)
        report_at, report = self._delivery_report(t, country, number_type, phone, message_id)
        usage_at = t + rng.uniform(0.2, 5.0)
        return sent, [(report_at, report), (usage_at, self._usage(usage_at, _segments(length), number_type,
                                                                    country, "Outbound"))]

    def _delivery_report(self, sent_at: float, country: str, number_type: str, phone: str,
                         message_id: str) -> tuple[float, dict[str, Any]]:
        rng = self._rng
        o = self.options
        failed = rng.random() < o.failure_ratio
        code = self._report_failures(rng) if failed else 2000
        if code >= 5000:  # carrier trouble: the report comes when ACS gives up waiting
            delay = rng.lognormvariate(math.log(150.0), 0.7)
        elif code >= 4000:  # rejections are quick
            delay = 0.3 + rng.lognormvariate(math.log(1.5), 0.8)
        elif rng.random() < 0.04:  # the long tail of slow handsets and roaming
            delay = rng.lognormvariate(math.log(60.0), 1.0)
        else:
            delay = 0.5 + rng.lognormvariate(math.log(3.0), 0.8)
        at = sent_at + min(delay, _MAX_DELIVERY_DELAY)
        if code == 2000 and o.drill is not None and o.drill.covers(country, at):
            code = 4005 if rng.random() < 0.5 else 5001
        if code == 2000:
            attempts = 1 if rng.random() < 0.9 else rng.choice((2, 2, 3))
            result, level = SUCCEEDED, "Informational"
        else:
            attempts = rng.randint(1, 3)
            result, level = FAILED, "Error"
        props = self._sms_properties(0, 0, attempts, phone, number_type, "", "", message_id, country,
                                     _DELIVERY_REPORT_URI)
        return at, self._record(at, DELIVERY_REPORT, API_VERSION, result, code, DELIVERY_STATUS[code],
                                max(1, int(rng.lognormvariate(math.log(12.0), 0.5))), "", level, props)

    def _received(self, t: float) -> tuple[dict[str, Any], list[tuple[float, dict[str, Any]]]]:
        rng = self._rng
        country = self._countries(rng)
        number_type = self._receiving_types(rng)
        phone = self._phone_number(number_type, country)
        length = rng.randint(2, 160) if rng.random() < 0.9 else rng.randint(161, 480)
        props = self._sms_properties(0, length, 0, phone, number_type, "", "", self._message_id("Incoming_", t),
                                     country, _INBOUND_URI)
        record = self._record(t, RECEIVED, API_VERSION, SUCCEEDED, 200, "", max(1, int(rng.lognormvariate(
            math.log(20.0), 0.4))), "", "Informational", props)
        usage_at = t + rng.uniform(0.2, 5.0)
        return record, [(usage_at, self._usage(usage_at, _segments(length), number_type, country, "Inbound"))]

    def _opt(self, operation: str, t: float) -> dict[str, Any]:
        rng = self._rng
        country = self._countries(rng)
        number_type = self._receiving_types(rng)
        phone = self._phone_number(number_type, country)
        word = rng.choice(_OPT_OUT_WORDS if operation == OPT_OUT else _OPT_IN_WORDS)
        props = self._sms_properties(0, len(word), 0, phone, number_type, "", "", self._message_id("Incoming_", t),
                                     country, _INBOUND_URI)
        return self._record(t, operation, API_VERSION, SUCCEEDED, 200, "", max(1, int(rng.lognormvariate(
            math.log(15.0), 0.4))), "", "Informational", props)

    def _chat(self, t: float) -> dict[str, Any]:
        rng = self._rng
        name, status = rng.choice(_CHAT_OPERATIONS)
        ip, sdk, platform = self._callers[rng.randrange(len(self._callers))]
        props = {
            "ChatThreadId": f"19:{self._guid().replace('-', '')}@thread.v2",
            "SdkType": sdk.replace("-sms", "-chat").replace(".Sms", ".Chat"),
            "PlatformType": platform,
            "Method": "GET" if name.startswith("List") else "POST",
        }
        return self._record(t, name, "2021-09-07", SUCCEEDED, status, "", max(1, int(rng.lognormvariate(
            math.log(60.0), 0.5))), ip, "Informational", props, category=CHAT_OPERATIONAL)

    def _usage(self, at: float, quantity: int, number_type: str, country: str, direction: str) -> dict[str, Any]:
        return {
            "time": self._time(at),
            "resourceId": self.options.resource_id,
            "operationName": USAGE,
            "operationVersion": "1.0",
            "category": USAGE,
            "correlationId": self._guid(),
            "level": "Informational",
            "location": "global",
            "properties": {
                "RecordId": self._guid(),
                "UsageType": "SMS",
                "UnitType": "Message",
                "Quantity": quantity,
                "Properties": orjson.dumps(
                    {"NumberType": number_type, "Country": country, "Direction": direction}).decode(),
            },
        }

    def _record(self, at: float, operation: str, version: str, result: str, signature: int, description: str,
                duration_ms: int, ip: str, level: str, properties: dict[str, Any],
                category: str = SMS_OPERATIONAL) -> dict[str, Any]:
        return {
            "time": self._time(at),
            "resourceId": self.options.resource_id,
            "operationName": operation,
            "operationVersion": version,
            "category": category,
            "resultType": result,
            "resultSignature": signature,
            "resultDescription": description,
            "durationMs": duration_ms,
            "callerIpAddress": ip,
            "correlationId": self._guid(),
            "level": level,
            "location": "global",
            "properties": properties,
        }

    @staticmethod
    def _sms_properties(outgoing: int, incoming: int, attempts: int, phone: str, number_type: str, sdk: str,
                        platform: str, message_id: str | None, country: str, uri: str) -> dict[str, Any]:
        props: dict[str, Any] = {
            "OutgoingMessageLength": outgoing,
            "IncomingMessageLength": incoming,
            "DeliveryAttempts": attempts,
            "PhoneNumber": phone,
            "NumberType": number_type,
            "SdkType": sdk,
            "PlatformType": platform,
            "Method": "POST",
            "Country": country,
            "URI": uri,
        }
        if message_id is not None:
            props["MessageId"] = message_id
        return props

    # - plausible fake values -

    def _guid(self) -> str:
        """A random version-4 GUID from the seeded generator (uuid.uuid4 would break determinism)."""
        n = self._rng.getrandbits(128)
        n = (n & ~(0xF << 76)) | (0x4 << 76)
        n = (n & ~(0x3 << 62)) | (0x2 << 62)
        h = f"{n:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _message_id(self, prefix: str, at: float, suffix: str = "") -> str:
        """A MessageId as ACS writes it: `Outgoing_<yyyyMMddHHmmss><GUID>_<region>` for a send (the UTC
        second of the send, which the consumer uses when it has not seen the send) or
        `Incoming_<yyyyMMddHHmmss><GUID>` for an inbound message (`sms-logs.md`)."""
        second = self._time(at)[:19]
        return f"{prefix}{second[0:4]}{second[5:7]}{second[8:10]}{second[11:13]}{second[14:16]}{second[17:19]}" \
               f"{self._guid()}{suffix}"

    def _time(self, at: float) -> str:
        """ISO 8601 UTC with 7 fractional digits, as Azure writes `time`."""
        ticks = self._start_ticks + round(at * _TICKS_PER_SECOND)
        seconds, fraction = divmod(ticks, _TICKS_PER_SECOND)
        text = self._seconds.get(seconds)
        if text is None:
            if len(self._seconds) > 4096:
                self._seconds.clear()
            text = self._seconds[seconds] = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(seconds))
        return f"{text}.{fraction:07d}Z"

    def _phone_number(self, number_type: str, country: str) -> str:
        """The ACS number (or alphanumeric sender) used for `country`: a small pool per number type
        and destination, as a real resource has a handful of numbers."""
        key = (number_type, country)
        pool = self._numbers.get(key)
        if pool is None:
            pool = self._numbers[key] = [self._new_number(number_type, country) for _ in range(3)]
        return pool[self._rng.randrange(3)]

    def _new_number(self, number_type: str, country: str) -> str:
        rng = self._rng
        fictional = f"5550{rng.randint(100, 199)}"  # NANP 555-0100..0199 are reserved for fiction
        if number_type == "TollFreeNumber":
            return f"+1{rng.choice(_TOLL_FREE_CODES)}{fictional}"
        if number_type == "ShortCodeNumber":
            return str(rng.randint(20000, 99999) if country in ("US", "CA") else rng.randint(60000, 89999))
        if "Alpha" in number_type:
            return rng.choice(_ALPHA_SENDERS)
        if country == "CA":
            return f"+1{rng.choice(_CA_AREA_CODES)}{fictional}"
        if country == "GB":
            return f"+447700900{rng.randint(0, 999):03d}"  # Ofcom drama range
        if country == "FR":
            return f"+3363998{rng.randint(0, 9999):04d}"  # ARCEP fiction range
        if country == "AU":
            return f"+61491570{rng.randint(0, 999):03d}"  # ACMA fiction range
        code = _CALLING_CODES.get(country)
        if code is None or code == "1":  # a US long code sending abroad
            return f"+1{rng.choice(_US_AREA_CODES)}{fictional}"
        return f"+{code}{rng.randint(10**8, 10**9 - 1)}"


def _send_duration(rng: random.Random, status: int) -> int:
    """API latency in ms: fast throttling, slow server errors, ~110 ms for an accepted send."""
    median, sigma = {202: (110.0, 0.35), 429: (12.0, 0.4), 500: (900.0, 0.8)}.get(status, (35.0, 0.4))
    return max(1, int(rng.lognormvariate(math.log(median), sigma)))


def _segments(length: int) -> int:
    """SMS segments billed for `length` GSM-7 characters (160 alone, 153 when concatenated)."""
    return 1 if length <= 160 else math.ceil(length / 153)


# --- corpus -------------------------------------------------------------------------------------


def build_corpus(options: TrafficOptions) -> tuple[list[bytes], Stats]:
    """Every body of a bounded run, JSON-encoded, and the ground truth. Fast: no pacing."""
    if not options.bounded:
        raise ValueError("a corpus needs a records or duration bound")
    generator = TrafficGenerator(options)
    bodies = [body.encode() for body in generator.bodies()]
    return bodies, generator.stats


def generate_corpus(records: int, records_per_body: int = 50, seed: int = 1, *,
                    failure_ratio: float = 0.05) -> list[bytes]:
    """Exactly `records` records of the realistic mix in full bodies of `records_per_body`, JSON-encoded,
    for benchmarks (100,000 records, ~79 MB, take about two seconds)."""
    options = TrafficOptions(records=records, records_per_body=records_per_body, seed=seed,
                             failure_ratio=failure_ratio, body_span=math.inf)
    return build_corpus(options)[0]


def split_records(records: Sequence[dict[str, Any]], max_bytes: int) -> list[bytes]:
    """Encode `records` as one body, or as several `{"records": [...]}` bodies each at most
    `max_bytes` long when one would be too large for an event. Raises ValueError if a single
    record is larger than `max_bytes`."""
    body = orjson.dumps({"records": list(records)})
    if len(body) <= max_bytes:
        return [body]
    if len(records) == 1:
        raise ValueError(f"one record takes {len(body)} bytes, more than the {max_bytes} allowed")
    half = len(records) // 2
    return split_records(records[:half], max_bytes) + split_records(records[half:], max_bytes)


# --- publishing (the shell: wall clock, network) -------------------------------------------------

#: Room left in each event for the AMQP framing the SDK adds around a body inside a batch.
_EVENT_OVERHEAD_BYTES: Final = 1024


@dataclass
class PublishReport:
    """What a `publish` run did. `stats` counts only records in batches the hub accepted."""

    seed: int
    events: int = 0
    batches: int = 0
    bodies: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    error: str | None = None
    stats: Stats = field(default_factory=Stats)

    def progress_line(self) -> str:
        """A short line printed while running."""
        ops = self.stats.by_operation()
        rate = self.stats.records / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"simulate: {self.elapsed:.0f}s {self.stats.records} records ({rate:.0f}/s) in {self.events} events; "
            f"{ops[(SENT, FAILED)]} failed sends, {ops[(DELIVERY_REPORT, FAILED)]} failed delivery reports"
        )

    def summary_line(self) -> str:
        """The final line."""
        outcome = "failed" if self.error else "interrupted" if self.interrupted else "done"
        return (
            f"simulate: {outcome} after {self.elapsed:.1f}s (seed {self.seed}): {self.events} events in "
            f"{self.batches} batches; {self.stats.summary()}"
        )


def _producer(connection_string: str | None, eventhub_name: str | None, fully_qualified_namespace: str | None,
              credential: AsyncTokenCredential | None) -> EventHubProducerClient:
    from azure.eventhub.aio import EventHubProducerClient

    if connection_string:
        return EventHubProducerClient.from_connection_string(connection_string, eventhub_name=eventhub_name)
    if not fully_qualified_namespace or not eventhub_name or credential is None:
        raise ValueError("need a connection string, or a fully qualified namespace, an Event Hub name and a credential")
    return EventHubProducerClient(fully_qualified_namespace, eventhub_name, credential)


async def publish(
    options: TrafficOptions,
    *,
    producer: EventHubProducerClient | None = None,
    connection_string: str | None = None,
    eventhub_name: str | None = None,
    fully_qualified_namespace: str | None = None,
    credential: AsyncTokenCredential | None = None,
    start: datetime | None = None,
    realtime: bool = True,
    progress: Callable[[str], None] | None = None,
    progress_every: float = 5.0,
    max_event_bytes: int | None = None,
) -> PublishReport:
    """Publish the traffic of `options` to an Event Hub and return what was sent.

    Records are stamped from `start` (default: now). With `realtime`, each body is sent when the wall
    clock reaches its simulated time, so the hub sees a live-looking stream at `options.rate`; without
    it, everything goes as fast as the hub takes it (tests, bulk loads). Bodies ready at the same
    moment share a batch made by `create_batch`, so the hub's maximum message size is respected; a
    body too large for one event (or for `max_event_bytes`) is split into several valid bodies.
    Once the last activity has been sent (`options.duration` or `options.records` reached), the
    still-pending delivery reports and usage records are sent at once (stamped with their own, slightly future, times) so that a bounded run ends promptly and
    every accepted send has its report.

    Cancellation (Ctrl-C in `main`) stops at the next await: the batch in hand is dropped (it is not
    counted), the producer closed, the final line printed, and CancelledError propagates.
    Pass `producer` to reuse a client (it is left open), or a connection string / namespace and
    credential to have one made and closed here.
    """
    options = dataclasses.replace(options, start=start or datetime.now(UTC))
    owned = producer is None
    client = producer if producer is not None else _producer(
        connection_string, eventhub_name, fully_qualified_namespace, credential)
    report = PublishReport(seed=options.seed)
    loop = asyncio.get_running_loop()
    began = loop.time()
    next_progress = began + progress_every

    def tick() -> None:
        nonlocal next_progress
        now = loop.time()
        report.elapsed = now - began
        if progress is not None and now >= next_progress:
            progress(report.progress_line())
            next_progress = now + progress_every

    try:
        await _send_all(options, client, report, realtime, max_event_bytes, began, tick)
    except asyncio.CancelledError:
        report.interrupted = True
        raise
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        report.elapsed = loop.time() - began
        if owned:
            try:
                await asyncio.shield(client.close())
            except Exception:  # noqa: BLE001 - closing is best effort; the report matters more
                pass
        if progress is not None:
            progress(report.summary_line())
    return report


async def _send_all(options: TrafficOptions, producer: EventHubProducerClient, report: PublishReport,
                    realtime: bool, max_event_bytes: int | None, began: float, tick: Callable[[], None]) -> None:
    from azure.eventhub import EventData

    loop = asyncio.get_running_loop()
    generator = TrafficGenerator(options)
    batch = await producer.create_batch()
    limit = batch.max_size_in_bytes - _EVENT_OVERHEAD_BYTES
    if max_event_bytes is not None:
        limit = min(limit, max_event_bytes)
    in_batch: list[Body] = []

    async def flush() -> None:
        nonlocal batch, in_batch
        if len(batch) == 0:
            return
        await producer.send_batch(batch)
        report.batches += 1
        report.events += len(batch)
        for body in in_batch:  # counted only once the hub has them
            for at, record in zip(body.times, body.records):
                report.stats.observe(record, at)
            report.stats.bodies += 1
        batch = await producer.create_batch()
        in_batch = []
        tick()

    for body in generator.bodies():
        if realtime:
            ended = generator.activities_ended_at
            due = body.at if ended is None else min(body.at, ended)
            wait = began + due - loop.time()
            if wait > 0:
                await flush()  # what is ready goes before we sleep
                await asyncio.sleep(wait)
        for payload in split_records(body.records, limit):
            event = EventData(payload)
            try:
                batch.add(event)
            except ValueError:  # the batch is full: send it, start another
                await flush()
                batch.add(event)
        in_batch.append(body)
        report.bodies += 1
    await flush()


# --- command line -------------------------------------------------------------------------------

#: Where `main` looks for a connection string when --connection-string is not given (keeps the
#: secret out of the process list).
CONNECTION_STRING_ENV: Final = "ACS_SIMULATE_CONNECTION_STRING"


def _mix_type(allowed: Sequence[str] | frozenset[str], expected: str | None) -> Callable[[str], dict[str, float]]:
    def parse(text: str) -> dict[str, float]:
        try:
            return parse_mix(text, allowed, expected=expected)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "mix"  # argparse names the type in some messages
    return parse


def _number(kind: type[int] | type[float], minimum: float, *, inclusive: bool = True,
            maximum: float | None = None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(value) or value < minimum or (not inclusive and value == minimum) or (
                maximum is not None and value > maximum):
            bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
            if maximum is not None:
                bound += f" and <= {maximum:g}"
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _country(text: str) -> str:
    code = text.strip().upper()
    if code not in ISO_COUNTRIES:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def build_parser() -> argparse.ArgumentParser:
    """The `acs-sms-consumer simulate` options."""
    parser = argparse.ArgumentParser(
        prog="acs-sms-consumer simulate",
        description="Publish synthetic Azure Communication Services SMS diagnostic logs (Event Hubs shape) "
                    "to an Event Hub, paced in real time, or write them as JSON lines with --dry-run.",
        epilog=f"The connection string may also come from ${CONNECTION_STRING_ENV}. Without --duration or "
               "--records the run lasts until Ctrl-C.\n\n"
               "exit status:\n"
               "  0  published everything asked for, or stopped by Ctrl-C / SIGTERM (after its summary)\n"
               "  1  publishing failed (the error on one line), --dry-run FILE cannot be written, or\n"
               "     stdout was closed early (`--dry-run - | head`)\n"
               "  2  the arguments are wrong",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_argument_group("where to")
    target.add_argument("--connection-string", metavar="STRING", help="Event Hubs connection string (namespace or hub level)")
    target.add_argument("--eventhub", metavar="NAME", help="Event Hub name (unless the connection string has EntityPath)")
    target.add_argument("--fully-qualified-namespace", metavar="HOST",
                        help="e.g. my-ns.servicebus.windows.net; authenticates with DefaultAzureCredential")
    target.add_argument("--dry-run", metavar="FILE", help="write the bodies as JSON lines to FILE (- for stdout) "
                                                         "as fast as possible instead of publishing")
    what = parser.add_argument_group("what")
    what.add_argument("--rate", type=_number(float, 0, inclusive=False), default=200.0, metavar="N",
                      help="records per second, all kinds together (default 200)")
    what.add_argument("--failure-ratio", type=_number(float, 0, maximum=1), default=0.05, metavar="RATIO",
                      help="share of failed sends and of failed delivery reports, 0..1 (default 0.05)")
    what.add_argument("--countries", type=_mix_type(ISO_COUNTRIES, "an ISO 3166-1 alpha-2 code"), default=dict(DEFAULT_COUNTRIES),
                      metavar="CC=W,...", help="destination country weights (default US=70,CA=10,GB=10,FR=10)")
    what.add_argument("--number-types", type=_mix_type(NUMBER_TYPES, None), default=dict(DEFAULT_NUMBER_TYPES),
                      metavar="TYPE=W,...", help="sender number type weights (default "
                      + ",".join(f"{k}={v:g}" for k, v in DEFAULT_NUMBER_TYPES.items()) + ")")
    what.add_argument("--duration", type=_number(float, 0, inclusive=False), metavar="SECONDS",
                      help="seconds of traffic")
    what.add_argument("--records", type=_number(int, 1), metavar="N",
                      help="stop after this many records")
    what.add_argument("--seed", type=int, metavar="N", help="random seed (default: a random one, printed at the end)")
    what.add_argument("--records-per-body", type=_number(int, 1), default=50, metavar="N",
                      help="records per event body (default 50)")
    what.add_argument("--body-span", type=_number(float, 0, inclusive=False), default=1.0, metavar="SECONDS",
                      help="a body holds at most this many seconds of records (default 1)")
    drill = parser.add_argument_group("alert drill: every delivery report for one country fails for a while (a carrier outage)")
    drill.add_argument("--drill-country", type=_country, metavar="CC", help="ISO 3166-1 alpha-2 code of the country")
    drill.add_argument("--drill-seconds", type=_number(float, 0, inclusive=False), metavar="SECONDS",
                       help="how long the drill lasts (default 30)")
    drill.add_argument("--drill-after", type=_number(float, 0), metavar="SECONDS",
                       help="seconds of normal traffic before the drill (default 0)")
    parser.add_argument("--progress-every", type=_number(float, 0, inclusive=False), default=5.0, metavar="SECONDS",
                        help="seconds between progress lines on stderr (default 5)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines, only the final one")
    return parser


def options_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TrafficOptions:
    """Cross-option checks and the `TrafficOptions` they describe (errors go through `parser.error`)."""
    if args.dry_run is None:
        if args.connection_string and args.fully_qualified_namespace:
            parser.error("give either --connection-string or --fully-qualified-namespace, not both")
        if not args.connection_string and not args.fully_qualified_namespace:
            parser.error(f"--connection-string (or ${CONNECTION_STRING_ENV}) or --fully-qualified-namespace is "
                         "required, unless --dry-run")
        if args.fully_qualified_namespace and not args.eventhub:
            parser.error("--fully-qualified-namespace needs --eventhub")
        if args.connection_string and not args.eventhub and "entitypath=" not in args.connection_string.lower():
            parser.error("the connection string has no EntityPath: give --eventhub")
    elif args.duration is None and args.records is None:
        parser.error("--dry-run needs --duration or --records (it does not wait for the clock)")
    if args.drill_country is None and (args.drill_seconds is not None or args.drill_after is not None):
        parser.error("--drill-seconds and --drill-after need --drill-country")
    try:
        return TrafficOptions(
            rate=args.rate,
            failure_ratio=args.failure_ratio,
            countries=args.countries,
            number_types=args.number_types,
            records_per_body=args.records_per_body,
            body_span=args.body_span,
            duration=args.duration,
            records=args.records,
            seed=args.seed if args.seed is not None else random.SystemRandom().randrange(2**31),
            drill=Drill(args.drill_country, 30.0 if args.drill_seconds is None else args.drill_seconds,
                        args.drill_after or 0.0) if args.drill_country else None,
        )
    except ValueError as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits


def write_dry_run(options: TrafficOptions, out: IO[bytes], start: datetime | None = None) -> Stats:
    """Write every body of a bounded run as one JSON line; return the ground truth."""
    generator = TrafficGenerator(dataclasses.replace(options, start=start or datetime.now(UTC)))
    for body in generator.bodies():
        out.write(body.encode())
        out.write(b"\n")
    out.flush()
    return generator.stats


def main(argv: list[str] | None = None) -> int:
    """`acs-sms-consumer simulate ...`. Returns the exit status (bad options exit with 2 via argparse)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.connection_string is None and args.dry_run is None:
        args.connection_string = os.environ.get(CONNECTION_STRING_ENV) or None
    options = options_from_args(args, parser)
    if args.dry_run is not None:
        if args.dry_run == "-":
            try:
                stats = write_dry_run(options, sys.stdout.buffer)
            except BrokenPipeError:  # `simulate --dry-run - | head`: the reader has had enough
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                return 1
        else:
            try:
                with open(args.dry_run, "wb") as out:
                    stats = write_dry_run(options, out)
            except OSError as exc:
                print(f"simulate: cannot write {args.dry_run}: {exc.strerror or exc}", file=sys.stderr)
                return 1
        print(f"simulate: seed {options.seed}: {stats.summary()}", file=sys.stderr)
        return 0

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        asyncio.run(_main_async(options, args, say))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 0  # Ctrl-C / SIGTERM is how an unbounded run ends; publish has printed its summary
    except Exception as exc:  # noqa: BLE001 - one clear line instead of an SDK traceback
        print(f"simulate: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _main_async(options: TrafficOptions, args: argparse.Namespace, say: Callable[[str], None]) -> PublishReport:
    """SIGTERM cancels the run like Ctrl-C does, so a container stop also ends it cleanly."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        try:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        except (NotImplementedError, RuntimeError):  # not on this platform / not the main thread
            pass
    progress_every = math.inf if args.quiet else args.progress_every
    if args.connection_string:
        return await publish(options, connection_string=args.connection_string, eventhub_name=args.eventhub,
                             progress=say, progress_every=progress_every)
    from azure.identity.aio import DefaultAzureCredential

    async with DefaultAzureCredential() as credential:
        return await publish(options, fully_qualified_namespace=args.fully_qualified_namespace,
                             eventhub_name=args.eventhub, credential=credential, progress=say,
                             progress_every=progress_every)
