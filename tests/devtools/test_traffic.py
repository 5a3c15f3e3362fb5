"""The synthetic traffic generator: determinism, the mix it promises, delivery-report pairing, the
record shape of `sms-logs.md`, agreement with the consumer's own pipeline, publishing mechanics (with
a stand-in producer) and the `simulate` command line."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure.eventhub import EventDataBatch

from consumer import __version__
from consumer.config import PipelineSettings
from acs_sms_devtools.eventhubs import EventHubsEndpoint
from acs_sms_devtools.scrape import parse, total
from acs_sms_devtools import traffic
from acs_sms_devtools.traffic import publisher, vocabulary
from acs_sms_devtools.traffic import (
    CHAT_OPERATIONAL,
    DELIVERY_STATUS,
    OPT_IN,
    OPT_OUT,
    Drill,
    Stats,
    TrafficGenerator,
    TrafficOptions,
    build_corpus,
    generate_corpus,
    main,
    parse_mix,
    publish,
    split_records,
)
from consumer.labels import DELIVERY_REPORT, ISO_COUNTRIES, NUMBER_TYPES, RECEIVED, SENT, SMS_OPERATIONS
from consumer.metrics import Metrics
from consumer.pipeline import Pipeline

TOP_LEVEL_SMS = {
    "time", "resourceId", "operationName", "operationVersion", "category", "resultType", "resultSignature",
    "resultDescription", "durationMs", "callerIpAddress", "correlationId", "level", "location", "properties",
}
SMS_PROPERTIES = {
    "OutgoingMessageLength", "IncomingMessageLength", "DeliveryAttempts", "PhoneNumber", "NumberType", "SdkType",
    "PlatformType", "Method", "Country", "URI",
}
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
#: ACS MessageIds (sms-logs.md): the UTC second of the message, a GUID, a region for outgoing ones.
MESSAGE_ID = re.compile(r"^(Outgoing|Incoming)_(\d{14})([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})"
                        r"(_noam)?$")
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
RESOURCE_ID = re.compile(
    r"^/SUBSCRIPTIONS/[0-9A-F-]{36}/RESOURCEGROUPS/[A-Z0-9-]+/PROVIDERS/MICROSOFT\.COMMUNICATION/"
    r"COMMUNICATIONSERVICES/[A-Z0-9-]+$"
)
DOC_NETWORKS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def timed(options: TrafficOptions) -> tuple[list[tuple[float, dict[str, Any]]], Stats]:
    generator = TrafficGenerator(options)
    out = [(r.at, r.record) for r in generator.records()]
    return out, generator.stats


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text[:26] + "+00:00")  # drop the 7th digit, as Python 3.11 does


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_bytes_and_another_seed_differs() -> None:
    assert generate_corpus(3000, seed=7) == generate_corpus(3000, seed=7)
    assert generate_corpus(3000, seed=7) != generate_corpus(3000, seed=8)


def test_a_generator_is_single_use() -> None:
    generator = TrafficGenerator(TrafficOptions(records=10))
    list(generator.records())
    with pytest.raises(RuntimeError):
        list(generator.bodies())


def test_corpus_has_exactly_the_records_asked_for_in_full_bodies() -> None:
    bodies = generate_corpus(100_000, records_per_body=50, seed=1)
    sizes = [len(orjson.loads(body)["records"]) for body in bodies]
    assert sum(sizes) == 100_000
    assert sizes == [50] * 2000
    odd = generate_corpus(1234, records_per_body=100)
    assert [len(orjson.loads(b)["records"]) for b in odd] == [100] * 12 + [34]


# --- record shape (sms-logs.md) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> tuple[list[tuple[float, dict[str, Any]]], Stats]:
    return timed(TrafficOptions(records=20_000, seed=11, failure_ratio=0.1,
                                countries={"US": 50, "CA": 10, "GB": 10, "FR": 10, "DE": 10, "AU": 10}))


def test_records_follow_the_event_hubs_common_schema(sample: tuple[list[tuple[float, dict[str, Any]]], Stats]) -> None:
    records, _ = sample
    categories = Counter(r["category"] for _, r in records)
    assert set(categories) == {"SMSOperational", "Usage", CHAT_OPERATIONAL}
    for _, record in records:
        assert TIME.match(record["time"]), record["time"]
        assert RESOURCE_ID.match(record["resourceId"])
        assert GUID.match(record["correlationId"])
        assert record["location"] == "global"
        props = record["properties"]
        if record["category"] == "SMSOperational":
            assert set(record) == TOP_LEVEL_SMS
            assert record["operationName"] in SMS_OPERATIONS
            assert SMS_PROPERTIES <= set(props) <= SMS_PROPERTIES | {"MessageId"}
            assert props["NumberType"] in NUMBER_TYPES
            assert props["Country"] in ISO_COUNTRIES
            assert props["Method"] == "POST"
            assert isinstance(record["durationMs"], int) and record["durationMs"] > 0
            if record["callerIpAddress"]:
                ip = ipaddress.ip_address(record["callerIpAddress"])
                assert any(ip in net for net in DOC_NETWORKS)
            if props["NumberType"] in ("LongCodeNumber", "TollFreeNumber"):
                assert E164.match(props["PhoneNumber"]), props["PhoneNumber"]
            elif props["NumberType"] == "ShortCodeNumber":
                assert re.fullmatch(r"\d{5,6}", props["PhoneNumber"])
            if "MessageId" in props:
                found = MESSAGE_ID.match(props["MessageId"])
                assert found, props["MessageId"]
                direction, second, _, region = found.groups()
                if record["operationName"] in (SENT, DELIVERY_REPORT):
                    assert (direction, region) == ("Outgoing", "_noam")
                else:
                    assert (direction, region) == ("Incoming", None)
                if record["operationName"] != DELIVERY_REPORT:  # the second of this record's own time
                    assert second == re.sub(r"[-T:]", "", record["time"][:19])
            else:
                assert record["operationName"] == SENT and record["resultType"] == "Failed"
            if record["resultType"] == "Failed":
                assert record["level"] in ("Error", "Warning")
                assert record["resultDescription"]
        elif record["category"] == "Usage":
            assert props["UsageType"] == "SMS" and props["UnitType"] == "Message"
            assert isinstance(props["Quantity"], int) and props["Quantity"] >= 1
            assert GUID.match(props["RecordId"])
            assert set(orjson.loads(props["Properties"])) == {"NumberType", "Country", "Direction"}
        else:
            assert record["category"] == CHAT_OPERATIONAL


def test_operations_results_and_signatures(sample: tuple[list[tuple[float, dict[str, Any]]], Stats]) -> None:
    records, _ = sample
    sms = [r for _, r in records if r["category"] == "SMSOperational"]
    ops = Counter(r["operationName"] for r in sms)
    assert {SENT, DELIVERY_REPORT, RECEIVED, OPT_OUT, OPT_IN} == set(ops)
    assert ops[SENT] > ops[RECEIVED] > ops[OPT_OUT] > ops[OPT_IN] > 0
    assert {OPT_OUT, OPT_IN} <= set(SMS_OPERATIONS)  # the consumer counts them under their own names
    for r in sms:
        signature, result = r["resultSignature"], r["resultType"]
        if r["operationName"] == SENT:
            assert (signature == 202) == (result == "Succeeded")
            assert signature in (202, 400, 401, 429, 500)
        elif r["operationName"] == DELIVERY_REPORT:
            assert signature in DELIVERY_STATUS
            assert (signature == 2000) == (result == "Succeeded")
            assert r["resultDescription"] == DELIVERY_STATUS[signature]
            attempts = r["properties"]["DeliveryAttempts"]
            assert 1 <= attempts <= 3
        else:
            assert (signature, result) == (200, "Succeeded")
    failed_codes = {r["resultSignature"] for r in sms if r["operationName"] == DELIVERY_REPORT and r["resultType"] == "Failed"}
    assert {4004, 4006, 9999} <= failed_codes and any(5000 <= c <= 5002 for c in failed_codes)


def test_time_field_matches_the_simulated_time_and_is_ordered(
        sample: tuple[list[tuple[float, dict[str, Any]]], Stats]) -> None:
    records, _ = sample
    times = [at for at, _ in records]
    assert times == sorted(times)
    start = traffic.DEFAULT_START
    for at, record in records[::97]:
        assert abs((parse_time(record["time"]) - start).total_seconds() - at) < 2e-6


# --- delivery reports ----------------------------------------------------------------------------


@pytest.mark.parametrize("bound", [{"records": 30_000}, {"duration": 60.0}])
def test_every_accepted_send_gets_exactly_one_later_delivery_report(bound: dict[str, Any]) -> None:
    records, stats = timed(TrafficOptions(seed=5, failure_ratio=0.1, **bound))
    sent: dict[str, tuple[float, dict[str, Any]]] = {}
    reports: Counter[str] = Counter()
    delays: list[float] = []
    for at, r in records:
        if r["operationName"] == SENT and r["resultType"] == "Succeeded":
            mid = r["properties"]["MessageId"]
            assert mid not in sent
            sent[mid] = (at, r)
        elif r["operationName"] == DELIVERY_REPORT:
            mid = r["properties"]["MessageId"]
            assert mid in sent, "a report never comes before its send"
            reports[mid] += 1
            sent_at, send = sent[mid]
            assert at > sent_at and r["time"] > send["time"]
            assert r["properties"]["PhoneNumber"] == send["properties"]["PhoneNumber"]
            assert r["properties"]["Country"] == send["properties"]["Country"]
            delays.append(at - sent_at)
    assert set(reports) == set(sent) and set(reports.values()) == {1}
    assert stats.awaiting_reports == 0 and stats.unmatched_reports == 0
    assert sum(stats.delivery_pairs.values()) == len(sent)
    delays.sort()
    median = delays[len(delays) // 2]
    assert 1.0 < median < 15.0  # seconds …
    assert delays[-1] > 120.0  # … with a long tail of minutes
    assert delays[-1] <= vocabulary.MAX_DELIVERY_DELAY + 1e-6


def test_activities_end_before_the_drained_tail() -> None:
    generator = TrafficGenerator(TrafficOptions(duration=20.0, seed=1))
    records = list(generator.records())
    assert generator.activities_ended_at is not None and generator.activities_ended_at < 20.0
    assert records[-1].at > 20.0  # the last delivery reports come after the last send
    assert all(r.record["operationName"] in (DELIVERY_REPORT, "Usage") for r in records
               if r.at > generator.activities_ended_at)


def test_without_drain_the_pending_reports_are_dropped() -> None:
    records, stats = timed(TrafficOptions(seed=5, duration=30.0, drain=False))
    assert all(at < 30.0 for at, _ in records)
    assert stats.awaiting_reports > 0 and stats.unmatched_reports == 0


# --- the mix follows the options -----------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.3])
def test_failure_ratio_applies_to_sends_and_delivery_reports(ratio: float) -> None:
    _, stats = build_corpus(TrafficOptions(records=60_000, failure_ratio=ratio, seed=3, body_span=math.inf))
    for operation in (SENT, DELIVERY_REPORT):
        assert stats.share_failed(operation) == pytest.approx(ratio, abs=0.015)
    for operation in (RECEIVED, OPT_OUT, OPT_IN):
        assert stats.share_failed(operation) == 0.0


def test_failure_ratio_one_means_no_accepted_sends_and_no_reports() -> None:
    _, stats = build_corpus(TrafficOptions(records=5000, failure_ratio=1.0))
    ops = stats.by_operation()
    assert ops[(SENT, "Succeeded")] == 0 and ops[(SENT, "Failed")] > 0
    assert sum(n for (op, _), n in ops.items() if op == DELIVERY_REPORT) == 0
    assert {sig for (_, sig, *_) in stats.failures} == {"400", "401", "429", "500"}


def test_country_and_number_type_mix() -> None:
    countries = {"US": 70, "CA": 10, "GB": 10, "FR": 10}
    number_types = {"LongCodeNumber": 1, "TollFreeNumber": 3}
    _, stats = build_corpus(TrafficOptions(records=50_000, countries=countries, number_types=number_types))
    total = sum(stats.countries.values())
    for code, weight in countries.items():
        assert stats.countries[code] / total == pytest.approx(weight / 100, abs=0.015)
    sends: Counter[str] = Counter()
    for (operation, _, number_type, *_), n in stats.operations.items():
        if operation == SENT:
            sends[number_type] += n
    assert set(sends) == {"LongCodeNumber", "TollFreeNumber"}
    assert sends["TollFreeNumber"] / sum(sends.values()) == pytest.approx(0.75, abs=0.02)


def test_rate_is_records_per_second_of_simulated_time() -> None:
    records, _ = timed(TrafficOptions(rate=100.0, duration=200.0, seed=9))
    within = sum(1 for at, _ in records if at < 200.0)
    assert within == pytest.approx(100.0 * 200.0, rel=0.05)


def test_alert_drill_fails_every_delivery_report_of_one_country_in_its_window_and_no_send() -> None:
    drill = Drill("CA", seconds=20.0, after=30.0)
    records, _ = timed(TrafficOptions(duration=90.0, rate=300.0, failure_ratio=0.02, drill=drill, seed=4))
    country = lambda r: r["properties"].get("Country", "")  # noqa: E731
    reports = [r for at, r in records if drill.covers(country(r), at) and r["operationName"] == DELIVERY_REPORT]
    assert len(reports) > 50
    assert all(r["resultType"] == "Failed" for r in reports)
    # Carrier codes, but for the few reports that failed anyway (2 %) and keep their own code.
    assert sum(r["resultSignature"] in (4005, 5001) for r in reports) / len(reports) > 0.9
    # The sends to the country are accepted as usual, so their reports keep coming during the drill.
    sends = [r for at, r in records if drill.covers(country(r), at) and r["operationName"] == SENT]
    assert len(sends) > 50 and sum(r["resultType"] == "Failed" for r in sends) / len(sends) < 0.1
    before = [r for at, r in records if at < 30.0 and r["operationName"] == DELIVERY_REPORT]
    assert sum(r["resultType"] == "Failed" for r in before) / len(before) < 0.1
    elsewhere = [r for at, r in records if 30.0 <= at < 50.0 and r["operationName"] == DELIVERY_REPORT
                 and country(r) != "CA"]
    assert sum(r["resultType"] == "Failed" for r in elsewhere) / len(elsewhere) < 0.1


# --- bodies and ground truth ---------------------------------------------------------------------


def test_bodies_respect_size_and_span_and_stats_match_a_recount() -> None:
    options = TrafficOptions(rate=50.0, duration=30.0, records_per_body=20, body_span=0.5, seed=2)
    generator = TrafficGenerator(options)
    bodies = list(generator.bodies())
    recount = Stats()
    for body in bodies:
        assert 1 <= len(body.records) <= 20
        assert body.at - body.first <= 0.5
        assert orjson.loads(body.encode()) == {"records": body.records}
        for at, record in zip(body.times, body.records):
            recount.observe(record, at)
    assert generator.stats.records == recount.records == sum(len(b.records) for b in bodies)
    assert generator.stats.bodies == len(bodies)
    assert generator.stats.operations == recount.operations
    assert generator.stats.usage_quantity == recount.usage_quantity


def test_the_consumer_pipeline_agrees_with_the_ground_truth() -> None:
    """What an end-to-end test will rely on: Stats predicts the metric values exactly."""
    options = TrafficOptions(records=20_000, seed=21, failure_ratio=0.1, body_span=math.inf)
    bodies, stats = build_corpus(options)
    settings = PipelineSettings()
    metrics = Metrics(settings.buckets, __version__)
    pipeline = Pipeline(settings, metrics.domain)
    now = (options.start + timedelta(hours=1)).timestamp()
    for body in bodies:
        outcome = pipeline.process(body, now)
        assert outcome.decode_error is None and outcome.invalid == 0 and outcome.duplicate == 0
    values = parse(metrics.render().decode())
    expected = stats.expected_samples()
    # two resources on one hub (the default), each its own series
    assert {key[-1] for key in stats.operations} == {"acs-sms-demo", "acs-sms-demo-eu"}
    assert {name for name, _ in expected} == {
        "acs_sms_operations_total", "acs_sms_failures_total", "acs_usage_records_total", "acs_usage_quantity_total",
        "acs_sms_message_characters_total", "acs_sms_delivery_latency_seconds_count", "acs_consumer_records_total"}
    assert {key: values.get(key, 0.0) for key in expected} == expected
    # ... and nothing more in the predicted families (no series the oracle did not foresee).
    families = {name for name, _ in expected}
    assert {key for key, value in values.items() if key[0] in families and value} == set(expected)
    assert total(values, "acs_sms_delivery_latency_seconds_sum") == pytest.approx(stats.delivery_latency_sum, rel=1e-6)
    assert total(values, "acs_sms_delivery_reports_unmatched_total") == 0


def test_replicas_that_see_sends_and_reports_apart_agree_with_the_ground_truth() -> None:
    """The fleet case: records spread over two replicas at random, so most reports' sends are on the
    other one. Each replica's latency (paired, or from the MessageId) is what its own Stats predicts;
    together they cover every delivery report, with a mean error of at most 0.5 s."""
    import random

    options = TrafficOptions(records=20_000, seed=21, failure_ratio=0.1)
    timed_records = list(TrafficGenerator(options).records())
    everything = Stats()
    for item in timed_records:
        everything.observe(item.record, item.at)
    rng = random.Random(7)
    shares: list[list[traffic.TimedRecord]] = [[], []]
    for item in timed_records:
        shares[rng.random() < 0.5].append(item)
    now = (options.start + timedelta(seconds=timed_records[-1].at + 30)).timestamp()
    settings = PipelineSettings()
    covered, latency_total = 0, 0.0
    for share in shares:
        stats = Stats()
        metrics = Metrics(settings.buckets, __version__)
        pipeline = Pipeline(settings, metrics.domain)
        for start in range(0, len(share), 50):
            chunk = share[start:start + 50]
            for item in chunk:
                stats.observe(item.record, item.at)
            outcome = pipeline.process(orjson.dumps({"records": [i.record for i in chunk]}), now)
            assert outcome.invalid == outcome.duplicate == 0 and outcome.decode_error is None
        latency = metrics.domain.delivery_latency
        counts = {key: value for key, value in parse(metrics.render().decode()).items()
                  if key[0] == "acs_sms_delivery_latency_seconds_count" and value}
        assert counts == {key: n for key, n in stats.expected_samples().items()
                          if key[0] == "acs_sms_delivery_latency_seconds_count"}
        assert sum(c[-1] for k, c in latency.children.items() if k[2] == "paired") == \
            pytest.approx(stats.delivery_latency_sum, rel=1e-6)
        assert sum(c[-1] for k, c in latency.children.items() if k[2] == "message_id") == \
            pytest.approx(stats.message_id_latency_sum, rel=1e-6)
        assert 0.3 < sum(stats.message_id_reports.values()) / sum(stats.delivery_pairs.values()) < 3.0
        assert metrics.domain.unmatched_reports.values == {}
        covered += sum(latency.count(*key) for key in latency.children)
        latency_total += sum(c[-1] for c in latency.children.values())
    reports = sum(everything.delivery_pairs.values())
    assert covered == reports  # every delivery report has a latency
    assert abs(latency_total - everything.delivery_latency_sum) / reports <= 0.5


# --- options and parsing -------------------------------------------------------------------------


def test_parse_mix() -> None:
    assert parse_mix("US=70, ca=10,GB=10.5", ISO_COUNTRIES) == {"US": 70, "CA": 10, "GB": 10.5}
    assert parse_mix("tollfreenumber=1", NUMBER_TYPES) == {"TollFreeNumber": 1}
    for bad, message in [
        ("", "empty"), ("US", "not KEY=WEIGHT"), ("US=70,", "not KEY=WEIGHT"), ("=3", "not KEY=WEIGHT"),
        ("XX=1", "unknown key 'XX'; expected a country code"), ("US=ten", "not a number"), ("US=-1", "non-negative"),
        ("US=inf", "non-negative"), ("US=1,us=2", "twice"), ("US=0,CA=0", "positive"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_mix(bad, ISO_COUNTRIES, expected="a country code")


@pytest.mark.parametrize("kwargs", [
    {"rate": 0}, {"rate": math.inf}, {"failure_ratio": 1.5}, {"failure_ratio": -0.1}, {"countries": {}},
    {"countries": {"ZZ": 1}}, {"countries": {"US": 0}}, {"number_types": {"Carrier": 1}}, {"records_per_body": 0},
    {"duration": 0}, {"records": 0}, {"start": datetime(2026, 1, 1)},
])
def test_options_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        TrafficOptions(**kwargs)


def test_drill_is_validated() -> None:
    with pytest.raises(ValueError):
        Drill("USA")
    with pytest.raises(ValueError):
        Drill("US", seconds=0)
    assert Drill("US", 10, 5).covers("US", 5.0) and not Drill("US", 10, 5).covers("US", 15.0)


def test_split_records_keeps_every_record_in_valid_bodies() -> None:
    records = [r for _, r in timed(TrafficOptions(records=200, seed=1))[0]]
    whole = orjson.dumps({"records": records})
    assert split_records(records, len(whole)) == [whole]
    parts = split_records(records, 8_000)
    assert len(parts) > 1 and all(len(p) <= 8_000 for p in parts)
    assert [r for p in parts for r in orjson.loads(p)["records"]] == records
    with pytest.raises(ValueError, match="one record"):
        split_records(records[:1], 100)


# --- publishing, with a stand-in producer ---------------------------------------------------------


class FakeBatch:
    def __init__(self, max_size_in_bytes: int) -> None:
        self.max_size_in_bytes = max_size_in_bytes
        self.bodies: list[bytes] = []
        self.size = 0

    def __len__(self) -> int:
        return len(self.bodies)

    def add(self, event: Any) -> None:
        body = b"".join(event.body)
        if self.size + len(body) + 64 > self.max_size_in_bytes:
            raise ValueError("EventDataBatch has reached its size limit")
        self.bodies.append(body)
        self.size += len(body) + 64


class FakeProducer:
    """Just enough of EventHubProducerClient: create_batch / send_batch / close."""

    def __init__(self, max_size: int = 1_048_576, delay: float = 0.0) -> None:
        self.max_size = max_size
        self.delay = delay
        self.sent: list[list[bytes]] = []
        self.closed = False

    async def create_batch(self) -> FakeBatch:
        return FakeBatch(self.max_size)

    async def send_batch(self, batch: FakeBatch) -> None:
        await asyncio.sleep(self.delay)
        self.sent.append(batch.bodies)

    async def close(self) -> None:
        self.closed = True


async def test_publish_batches_within_the_size_limit_and_reports_what_was_sent() -> None:
    producer = FakeProducer(max_size=64_000)
    lines: list[str] = []
    options = TrafficOptions(records=3000, seed=6, body_span=math.inf, records_per_body=100)
    report = await publish(options, producer=producer, realtime=False,  # type: ignore[arg-type]
                           progress=lines.append, start=traffic.DEFAULT_START)
    events = [body for batch in producer.sent for body in batch]
    assert report.events == len(events) and report.batches == len(producer.sent) > 1
    assert all(sum(len(b) + 64 for b in batch) <= 64_000 for batch in producer.sent)
    assert all(len(b) <= 64_000 - publisher.EVENT_OVERHEAD_BYTES for b in events)
    records = [r for body in events for r in orjson.loads(body)["records"]]
    assert len(records) == 3000 == report.stats.records
    corpus = generate_corpus(3000, records_per_body=100, seed=6)
    assert records == [r for body in corpus for r in orjson.loads(body)["records"]]  # same stream, same order
    _, truth = build_corpus(options)
    assert report.stats.operations == truth.operations
    assert not producer.closed  # a producer handed in is left open
    assert lines and lines[-1].startswith("simulate: done after") and "seed 6" in lines[-1]


class RecordingBatch(EventDataBatch):
    """The SDK's own batch (its real size accounting), remembering the bodies it accepted."""

    def __init__(self, max_size_in_bytes: int) -> None:
        super().__init__(max_size_in_bytes=max_size_in_bytes)
        self.bodies: list[bytes] = []

    def add(self, event_data: Any) -> None:
        super().add(event_data)
        self.bodies.append(b"".join(event_data.body))


class SdkBatchProducer(FakeProducer):
    async def create_batch(self) -> RecordingBatch:  # type: ignore[override]
        return RecordingBatch(self.max_size)


async def test_publish_fits_the_sdk_batch_size_accounting() -> None:
    producer = SdkBatchProducer(max_size=40_000)
    options = TrafficOptions(records=2000, records_per_body=120, body_span=math.inf, seed=8)
    report = await publish(options, producer=producer, realtime=False)  # type: ignore[arg-type]
    assert report.batches > 5 and report.stats.records == 2000
    assert sum(len(orjson.loads(b)["records"]) for batch in producer.sent for b in batch) == 2000


async def test_publish_splits_a_body_too_large_for_one_event() -> None:
    producer = FakeProducer()
    options = TrafficOptions(records=400, records_per_body=400, body_span=math.inf)
    report = await publish(options, producer=producer, realtime=False, max_event_bytes=50_000)  # type: ignore[arg-type]
    events = [body for batch in producer.sent for body in batch]
    assert report.bodies == 1 and report.events == len(events) > 1
    assert sum(len(orjson.loads(e)["records"]) for e in events) == 400


async def test_publish_in_real_time_paces_and_stamps_from_now() -> None:
    producer = FakeProducer()
    loop = asyncio.get_running_loop()
    began = loop.time()
    before = datetime.now(UTC)
    report = await publish(TrafficOptions(rate=400.0, duration=0.5, seed=1), producer=producer)  # type: ignore[arg-type]
    assert loop.time() - began >= 0.45  # it waited for the simulated clock
    first = orjson.loads(producer.sent[0][0])["records"][0]
    assert parse_time(first["time"]) >= before - timedelta(seconds=1)
    assert report.stats.awaiting_reports == 0  # pending reports were flushed at the end


async def test_a_count_bounded_real_time_run_does_not_wait_for_the_report_tail() -> None:
    producer = FakeProducer()
    report = await asyncio.wait_for(
        publish(TrafficOptions(rate=400.0, records=300, seed=2), producer=producer),  # type: ignore[arg-type]
        timeout=60,  # the slowest reports are simulated minutes after their send
    )
    assert report.stats.records == 300 and report.stats.awaiting_reports == 0


async def test_publish_stops_cleanly_when_cancelled() -> None:
    producer = FakeProducer()
    lines: list[str] = []
    task = asyncio.create_task(publish(TrafficOptions(rate=200.0, seed=1), producer=producer,  # type: ignore[arg-type]
                                       progress=lines.append, progress_every=0.05))
    deadline = asyncio.get_running_loop().time() + 30
    while not producer.sent:  # the first body (50 records) is due after ~0.7 s: sends come first
        assert asyncio.get_running_loop().time() < deadline, "nothing sent"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert producer.sent
    assert "interrupted" in lines[-1]
    assert any(line.startswith("simulate: ") and "records" in line for line in lines[:-1])


async def test_publish_reports_a_failure_and_still_closes_its_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(FakeProducer):
        async def send_batch(self, batch: FakeBatch) -> None:
            raise ConnectionError("refused")

    producer = Broken()
    monkeypatch.setattr(publisher, "_producer", lambda *args: producer)
    lines: list[str] = []
    with pytest.raises(ConnectionError):
        await publish(TrafficOptions(records=100), connection_string="Endpoint=sb://x/", realtime=False,
                      progress=lines.append)
    assert producer.closed and lines[-1].startswith("simulate: failed after")


async def test_publish_closes_the_producer_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = FakeProducer()
    seen: dict[str, Any] = {}

    def fake(connection_string: str | None, eventhub_name: str | None, namespace: str | None, credential: Any) -> Any:
        seen.update(connection_string=connection_string, eventhub_name=eventhub_name)
        return producer

    monkeypatch.setattr(publisher, "_producer", fake)
    await publish(TrafficOptions(records=100), connection_string="Endpoint=sb://x/", eventhub_name="hub",
                  realtime=False)
    assert producer.closed and seen == {"connection_string": "Endpoint=sb://x/", "eventhub_name": "hub"}


def test_producer_needs_a_target() -> None:
    with pytest.raises(ValueError):
        publisher._producer(None, "hub", "ns.servicebus.windows.net", None)


# --- the command line ----------------------------------------------------------------------------


def test_dry_run_writes_json_lines_deterministically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--records", "500", "--seed", "3", "--failure-ratio", "0.2", "--countries", "US=1,GB=1"]
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert main([*args, "--dry-run", str(first)]) == 0
    assert main([*args, "--dry-run", str(second)]) == 0
    lines = first.read_bytes().splitlines()
    records = [r for line in lines for r in orjson.loads(line)["records"]]
    assert len(records) == 500
    assert {r["properties"]["Country"] for r in records if r["category"] == "SMSOperational"} == {"US", "GB"}
    strip = re.compile(rb'"time":"[^"]+"|(?<=going_)\d{14}|(?<=coming_)\d{14}')  # stamped from the wall clock
    assert strip.sub(b"", first.read_bytes()) == strip.sub(b"", second.read_bytes())
    assert "seed 3" in capsys.readouterr().err


def test_dry_run_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--duration", "2", "--rate", "50", "--dry-run", "-"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out and all(orjson.loads(line)["records"] for line in out)


def test_unwritable_dry_run_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--records", "5", "--dry-run", str(tmp_path / "missing" / "x.jsonl")]) == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--dry-run", "-", "--records", "5", "--countries", "US=70,XX=30"], "--countries: unknown key 'XX'"),
    (["--dry-run", "-", "--records", "5", "--countries", "US70"], "--countries: 'US70' is not KEY=WEIGHT"),
    (["--dry-run", "-", "--records", "5", "--number-types", "Pigeon=1"], "--number-types: unknown key"),
    (["--dry-run", "-", "--records", "5", "--failure-ratio", "1.5"], "--failure-ratio: '1.5' must be"),
    (["--dry-run", "-", "--records", "5", "--rate", "fast"], "--rate: 'fast' is not a number"),
    (["--dry-run", "-", "--records", "0"], "--records: '0' must be >= 1"),
    (["--dry-run", "-", "--records", "5", "--drill-country", "Narnia"], "not an ISO 3166-1"),
    (["--dry-run", "-", "--records", "5", "--drill-seconds", "10"], "need --drill-country"),
    (["--dry-run", "-"], "--dry-run needs --duration or --records"),
    (["--duration", "5"], "--connection-string"),
    (["--fully-qualified-namespace", "ns.servicebus.windows.net"], "needs --eventhub"),
    (["--connection-string", "Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=v"], "no EntityPath"),
    (["--connection-string", "Endpoint=sb://ns/;EntityPath=h", "--fully-qualified-namespace", "ns"], "not both"),
])
def test_bad_options_are_argparse_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(traffic.CONNECTION_STRING_ENV, raising=False)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_connection_string_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def fake_publish(options: TrafficOptions, **kwargs: Any) -> traffic.PublishReport:
        seen.update(kwargs, options=options)
        return traffic.PublishReport(seed=options.seed)

    monkeypatch.setenv(traffic.CONNECTION_STRING_ENV, "Endpoint=sb://ns/;SharedAccessKeyName=k;SharedAccessKey=v")
    monkeypatch.setattr(traffic.cli, "publish", fake_publish)
    assert main(["--eventhub", "acs", "--duration", "1", "--seed", "9", "--drill-country", "us", "--allow-remote-hub"]) == 0
    assert seen["connection_string"].startswith("Endpoint=sb://ns/") and seen["eventhub_name"] == "acs"
    assert seen["options"].seed == 9 and seen["options"].drill == Drill("US", 30.0, 0.0)


def test_a_publishing_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async def failing(options: TrafficOptions, **kwargs: Any) -> traffic.PublishReport:
        raise ConnectionError("no route to host")

    monkeypatch.setattr(traffic.cli, "publish", failing)
    assert main(["--connection-string", "Endpoint=sb://ns/;EntityPath=h", "--records", "5", "--allow-remote-hub"]) == 1
    assert "simulate: failed: ConnectionError: no route to host" in capsys.readouterr().err


def test_ctrl_c_stops_a_real_producer_cleanly() -> None:
    """The real SDK path: the producer is still retrying an endpoint that closes every connection at
    once (the test's socket: its first accepted connection shows the run is inside the SDK's
    connection retries, which last ~12 s) when Ctrl-C arrives; the run ends with the summary line and
    status 0, without a traceback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.settimeout(60)
        port = sock.getsockname()[1]
        connection = (f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;SharedAccessKey=v;EntityPath=hub;"
                      "UseDevelopmentEmulator=true")
        child = subprocess.Popen([sys.executable, "-m", "consumer", "simulate", "--connection-string", connection,
                                  "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            accepted, _ = sock.accept()  # started, and connecting
            accepted.close()
            child.send_signal(signal.SIGINT)
            _, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    text = err.decode()
    assert child.returncode == 0, text
    assert "simulate: interrupted after" in text and "Traceback" not in text


# --- against the local Event Hubs endpoint (real producer and consumer clients) --------------------


async def _read_back(connection_string: str, events: int, timeout: float = 60.0) -> list[bytes]:
    from azure.eventhub.aio import EventHubConsumerClient

    bodies: list[bytes] = []
    enough = asyncio.Event()

    async def on_event(context: Any, event: Any) -> None:
        if event is not None:
            bodies.append(b"".join(event.body))
            if len(bodies) >= events:
                enough.set()

    client = EventHubConsumerClient.from_connection_string(connection_string, consumer_group="$Default")
    async with client:
        receiving = asyncio.create_task(client.receive(on_event, starting_position="-1", max_wait_time=0.5))
        try:
            await asyncio.wait_for(enough.wait(), timeout)
        finally:
            receiving.cancel()
            try:
                await receiving
            except asyncio.CancelledError:
                pass
    return bodies


async def test_publish_to_a_local_event_hub_and_read_it_back(eventhubs: EventHubsEndpoint) -> None:
    options = TrafficOptions(rate=400.0, duration=1.5, seed=12, failure_ratio=0.1)
    lines: list[str] = []
    report = await publish(options, connection_string=eventhubs.connection_string, progress=lines.append)
    assert report.events > 0 and report.stats.records > 400 and not report.interrupted
    assert report.stats.awaiting_reports == 0
    assert eventhubs.event_count() == report.events
    assert len([pid for pid, n in eventhubs.event_counts().items() if n]) > 1  # spread over partitions

    bodies = await _read_back(eventhubs.connection_string, report.events)
    assert len(bodies) == report.events
    recount = Stats()
    records = sorted(((parse_time(r["time"]), r) for body in bodies for r in orjson.loads(body)["records"]),
                     key=lambda pair: pair[0])
    start = records[0][0]
    for at, record in records:
        recount.observe(record, (at - start).total_seconds())
    assert recount.records == report.stats.records
    assert recount.operations == report.stats.operations
    assert recount.failures == report.stats.failures
    assert recount.usage_quantity == report.stats.usage_quantity
    assert recount.awaiting_reports == 0 and recount.unmatched_reports == 0
    assert lines[-1].startswith("simulate: done after")


def test_simulate_command_publishes_to_a_local_event_hub(eventhubs: EventHubsEndpoint,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--connection-string", eventhubs.connection_string, "--records", "400", "--rate", "400",
                 "--seed", "2", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "simulate: done after" in err and "400 records" in err
    assert eventhubs.event_count() > 0
