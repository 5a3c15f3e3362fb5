"""Benchmark: how fast the pure core turns Event Hubs bodies into metric updates, against bare decodes.

    .venv/bin/python bench/bench_pipeline.py [--records N] [--seed S] [--repeat R]

A benchmark, not a test: it asserts nothing, it prints. One run generates a realistic corpus
(`acs_sms_devtools.traffic.generate_corpus`: the Event Hubs shape, 50 records per body, sends with
their delivery reports, incoming messages, opt-in/out, Usage, a skipped category) and times, in CPU
time of this process (`time.process_time`, not wall time), after one warm-up pass, best of `--repeat`
(rounds interleaved):

  (a)  `orjson.loads` of every body — the floor: no parsing can be cheaper than this;
  (a') a typed decode of the envelope — pydantic v2 `TypeAdapter.validate_json` into models of the
       common-schema top-level fields and the SMS/Usage `properties` (what any typed parser of these
       bodies has to do at least); and the same with msgspec Structs when msgspec is installed;
  (b)  the full pipeline: `Pipeline.process` on fresh state (decode → typed records → duplicates →
       every metric update → correlation), as `run` and `replay` use it: these bodies take the
       canonical decoder;
  (c)  the same with the general decoder for every body (`Pipeline.canonical = False`: orjson, then
       `convert` per record), what a body in any other shape costs (the Log Analytics shape, other
       casings, strings where numbers belong, non-strict JSON, ...).

and prints records/s, MB/s, µs/record and the ratios (b)/(a) and (b)/(a').
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter

from consumer.config import PipelineSettings
from acs_sms_devtools.traffic import generate_corpus
from consumer.metrics import DomainMetrics
from consumer.pipeline import EventContext, Pipeline

# --- (a') typed envelope: what a typed parser of the same bodies must at least do -----------------


class _Properties(BaseModel):
    model_config = ConfigDict(extra="ignore")

    outgoing_message_length: int | None = Field(None, alias="OutgoingMessageLength")
    incoming_message_length: int | None = Field(None, alias="IncomingMessageLength")
    delivery_attempts: int | None = Field(None, alias="DeliveryAttempts")
    number_type: str | None = Field(None, alias="NumberType")
    country: str | None = Field(None, alias="Country")
    message_id: str | None = Field(None, alias="MessageId")
    record_id: str | None = Field(None, alias="RecordId")
    usage_type: str | None = Field(None, alias="UsageType")
    unit_type: str | None = Field(None, alias="UnitType")
    quantity: float | None = Field(None, alias="Quantity")


class _CommonRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    time: str | None = Field(None, validation_alias=AliasChoices("time", "TimeGenerated"))
    operation_name: str = Field(validation_alias=AliasChoices("operationName", "OperationName"))
    category: str = Field(validation_alias=AliasChoices("category", "Category"))
    result_type: str | None = Field(None, validation_alias=AliasChoices("resultType", "ResultType"))
    result_signature: str | None = Field(None, validation_alias=AliasChoices("resultSignature", "ResultSignature"))
    duration_ms: float | None = Field(None, validation_alias=AliasChoices("durationMs", "DurationMs"))
    properties: _Properties | str | None = None


class _Envelope(BaseModel):
    records: list[_CommonRecord]


_ENVELOPE = TypeAdapter(_Envelope)


def _typed_pydantic(bodies: list[bytes]) -> None:
    validate = _ENVELOPE.validate_json
    for body in bodies:
        validate(body)


try:  # optional: msgspec is not a dependency; the row is printed when it is installed
    import msgspec
except ImportError:
    msgspec = None
else:

    class _MsProperties(msgspec.Struct):
        OutgoingMessageLength: int | None = None
        IncomingMessageLength: int | None = None
        DeliveryAttempts: int | None = None
        NumberType: str | None = None
        Country: str | None = None
        MessageId: str | None = None
        RecordId: str | None = None
        UsageType: str | None = None
        UnitType: str | None = None
        Quantity: float | None = None

    class _MsRecord(msgspec.Struct):
        operationName: str
        category: str
        time: str | None = None
        resultType: str | None = None
        resultSignature: int | str | None = None
        durationMs: float | None = None
        properties: _MsProperties | None = None

    class _MsEnvelope(msgspec.Struct):
        records: list[_MsRecord]


def _msgspec_decoder() -> Callable[[list[bytes]], None] | None:
    if msgspec is None:
        return None
    decode = msgspec.json.Decoder(_MsEnvelope).decode

    def run(bodies: list[bytes]) -> None:
        for body in bodies:
            decode(body)

    return run


# --- the runs ------------------------------------------------------------------------------------


def _bare(bodies: list[bytes]) -> None:
    loads = orjson.loads
    for body in bodies:
        loads(body)


def _pipeline_runner(start: float, canonical: bool = True) -> Callable[[list[bytes]], None]:
    def run(bodies: list[bytes]) -> None:
        pipeline = Pipeline(PipelineSettings(), DomainMetrics(PipelineSettings().buckets))  # fresh state
        pipeline.canonical = canonical
        context = EventContext(partition="0")
        now = start
        for body in bodies:
            now += 0.05  # processing clock: 20 bodies/s, so the corpus spans its own simulated time
            pipeline.process(body, now, context)

    return run


def _best(cases: list[tuple[str, str, Callable[[list[bytes]], None]]], bodies: list[bytes], repeat: int) -> dict[str, float]:
    """Best CPU seconds per case. Rounds are interleaved (every case once per round), so a burst of
    noise from the machine does not land on one case only and skew the ratios."""
    for _, _, run in cases:
        run(bodies[: max(1, len(bodies) // 10)])  # warm-up
    best = {key: float("inf") for key, _, _ in cases}
    for _ in range(repeat):
        for key, _, run in cases:
            started = time.process_time()
            run(bodies)
            best[key] = min(best[key], time.process_time() - started)
    return best


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _count_records(bodies: list[bytes]) -> int:
    return sum(len(orjson.loads(body)["records"]) for body in bodies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records in the corpus (default 100000)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (default 1)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case, best kept (default 3)")
    args = parser.parse_args(argv)
    if args.records < 50 or args.repeat < 1:
        parser.error("--records must be at least 50 and --repeat at least 1")

    bodies = generate_corpus(args.records, records_per_body=50, seed=args.seed)
    records = _count_records(bodies)
    megabytes = sum(len(body) for body in bodies) / 1e6
    first = orjson.loads(bodies[0])["records"][0]["time"]
    start = datetime.fromisoformat(first).timestamp() + 60.0

    cases: list[tuple[str, str, Callable[[list[bytes]], None]]] = [
        ("a", "orjson.loads (bare decode)", _bare),
        ("a'", "pydantic TypeAdapter.validate_json (typed envelope)", _typed_pydantic),
    ]
    msgspec_run = _msgspec_decoder()
    if msgspec_run is not None:
        cases.append(("a''", "msgspec Struct decode (typed envelope)", msgspec_run))
    cases.append(("b", "full pipeline: Pipeline.process, fresh state", _pipeline_runner(start)))
    cases.append(("c", "full pipeline, general decoder for every body", _pipeline_runner(start, canonical=False)))

    print(f"machine: {_cpu_model()}, {platform.machine()}; Python {platform.python_version()} "
          f"({platform.python_implementation()}); one core, CPU time, best of {args.repeat} interleaved rounds after warm-up")
    print(f"corpus:  {records:,} records in {len(bodies):,} bodies (50 per body), {megabytes:.1f} MB, seed {args.seed}")
    print()
    print(f"{'case':<5} {'what':<52} {'records/s':>12} {'MB/s':>8} {'µs/rec':>8}")
    rates: dict[str, float] = {}
    best = _best(cases, bodies, args.repeat)
    for key, what, _ in cases:
        seconds = best[key]
        rates[key] = records / seconds
        print(f"{key:<5} {what:<52} {rates[key]:>12,.0f} {megabytes / seconds:>8.1f} {seconds / records * 1e6:>8.2f}")
    print()
    full, bare, typed = rates["b"], rates["a"], rates["a'"]
    print(f"(b)/(a)   full pipeline vs bare orjson decode:    {full / bare:.1%}")
    print(f"(b)/(a')  full pipeline vs typed pydantic decode: {full / typed:.1%}")
    if "a''" in rates:
        typed_msgspec = rates["a''"]
        print(f"(b)/(a'') full pipeline vs typed msgspec decode:  {full / typed_msgspec:.1%}")
    target = "met" if rates["b"] >= 100_000 else "NOT met"
    print(f"target: full pipeline >= 100,000 records/s: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
