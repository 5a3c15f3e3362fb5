"""The pure, deterministic generator: records in simulated time order (`TrafficGenerator`), grouped into
event bodies, and whole corpora for tests and benchmarks. No I/O, no wall clock."""

from __future__ import annotations

import bisect
import heapq
import math
import random
import time as _time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from consumer.labels import DELIVERY_REPORT, RECEIVED, SENT, SMS_OPERATIONAL, USAGE

from .vocabulary import (
    ACTIVITY_MIX,
    API_VERSION,
    CHAT_OPERATIONAL,
    DELIVERY_STATUS,
    FAILED,
    OPT_IN,
    OPT_OUT,
    SEND_FAILURES,
    SUCCEEDED,
    ALPHA_SENDERS,
    CALLING_CODES,
    CA_AREA_CODES,
    CHAT_OPERATIONS,
    DELIVERY_FAILURE_WEIGHTS,
    DELIVERY_REPORT_URI,
    DOC_NETWORKS,
    ENDPOINT_HOST,
    INBOUND_URI,
    MAX_DELIVERY_DELAY,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    SDKS,
    TICKS_PER_SECOND,
    TOLL_FREE_CODES,
    US_AREA_CODES,
)
from .options import TrafficOptions
from .oracle import Stats

__all__ = ["TimedRecord", "Body", "TrafficGenerator", "build_corpus", "generate_corpus"]

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
        self._report_failures = _Chooser(DELIVERY_FAILURE_WEIGHTS)
        self._numbers: dict[tuple[str, str], list[str]] = {}
        rng = self._rng
        self._callers = [
            (DOC_NETWORKS[rng.randrange(3)] + str(rng.randint(10, 250)), *SDKS[i % len(SDKS)])
            for i in range(2 * len(SDKS))
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
        self._start_ticks = (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10
        #: Simulated time of the last activity, set once no new activity will start (only the pending
        #: delivery reports and usage records remain): `publish` sends the rest without waiting.
        self.activities_ended_at: float | None = None
        self._seconds: dict[int, str] = {}  # formatted whole seconds; records revisit a few
        self._sequence = 0
        ids = options.resource_ids
        self._resource_pattern = (ids[0], ids[0], ids[1 % len(ids)]) if len(ids) <= 2 else ids
        self._activities_started = 0
        self._resource_id = ids[0]  # of the activity being built (its records and their consequences)

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
        pattern = self._resource_pattern
        self._resource_id = pattern[self._activities_started % len(pattern)]
        self._activities_started += 1
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
        uri = f"https://{ENDPOINT_HOST}/sms?api-version={API_VERSION}"
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
        at = sent_at + min(delay, MAX_DELIVERY_DELAY)
        if code == 2000 and o.drill is not None and o.drill.covers(country, at):
            code = 4005 if rng.random() < 0.5 else 5001
        if code == 2000:
            attempts = 1 if rng.random() < 0.9 else rng.choice((2, 2, 3))
            result, level = SUCCEEDED, "Informational"
        else:
            attempts = rng.randint(1, 3)
            result, level = FAILED, "Error"
        props = self._sms_properties(0, 0, attempts, phone, number_type, "", "", message_id, country,
                                     DELIVERY_REPORT_URI)
        return at, self._record(at, DELIVERY_REPORT, API_VERSION, result, code, DELIVERY_STATUS[code],
                                max(1, int(rng.lognormvariate(math.log(12.0), 0.5))), "", level, props)

    def _received(self, t: float) -> tuple[dict[str, Any], list[tuple[float, dict[str, Any]]]]:
        rng = self._rng
        country = self._countries(rng)
        number_type = self._receiving_types(rng)
        phone = self._phone_number(number_type, country)
        length = rng.randint(2, 160) if rng.random() < 0.9 else rng.randint(161, 480)
        props = self._sms_properties(0, length, 0, phone, number_type, "", "", self._message_id("Incoming_", t),
                                     country, INBOUND_URI)
        record = self._record(t, RECEIVED, API_VERSION, SUCCEEDED, 200, "", max(1, int(rng.lognormvariate(
            math.log(20.0), 0.4))), "", "Informational", props)
        usage_at = t + rng.uniform(0.2, 5.0)
        return record, [(usage_at, self._usage(usage_at, _segments(length), number_type, country, "Inbound"))]

    def _opt(self, operation: str, t: float) -> dict[str, Any]:
        rng = self._rng
        country = self._countries(rng)
        number_type = self._receiving_types(rng)
        phone = self._phone_number(number_type, country)
        word = rng.choice(OPT_OUT_WORDS if operation == OPT_OUT else OPT_IN_WORDS)
        props = self._sms_properties(0, len(word), 0, phone, number_type, "", "", self._message_id("Incoming_", t),
                                     country, INBOUND_URI)
        return self._record(t, operation, API_VERSION, SUCCEEDED, 200, "", max(1, int(rng.lognormvariate(
            math.log(15.0), 0.4))), "", "Informational", props)

    def _chat(self, t: float) -> dict[str, Any]:
        rng = self._rng
        name, status = rng.choice(CHAT_OPERATIONS)
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
            "resourceId": self._resource_id,
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
            "resourceId": self._resource_id,
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
        ticks = self._start_ticks + round(at * TICKS_PER_SECOND)
        seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
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
            return f"+1{rng.choice(TOLL_FREE_CODES)}{fictional}"
        if number_type == "ShortCodeNumber":
            return str(rng.randint(20000, 99999) if country in ("US", "CA") else rng.randint(60000, 89999))
        if "Alpha" in number_type:
            return rng.choice(ALPHA_SENDERS)
        if country == "CA":
            return f"+1{rng.choice(CA_AREA_CODES)}{fictional}"
        if country == "GB":
            return f"+447700900{rng.randint(0, 999):03d}"  # Ofcom drama range
        if country == "FR":
            return f"+3363998{rng.randint(0, 9999):04d}"  # ARCEP fiction range
        if country == "AU":
            return f"+61491570{rng.randint(0, 999):03d}"  # ACMA fiction range
        code = CALLING_CODES.get(country)
        if code is None or code == "1":  # a US long code sending abroad
            return f"+1{rng.choice(US_AREA_CODES)}{fictional}"
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
