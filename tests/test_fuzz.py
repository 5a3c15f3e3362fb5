"""Fuzzing the whole pipeline with hostile bodies, through both decoders.

Each example is a short stream of bodies (the correlation and duplicate windows carry state from one
body to the next) built from record-shaped bodies (`tests.test_decoder_equality`'s variations of the
Azure shapes), arbitrary JSON values and the crafted shapes (`tests.test_properties`), then mangled
the way hostile or broken producers do: cut anywhere, bytes replaced, invalid UTF-8, nesting far past
any parser's limit, numbers no float holds, near-JSON (single quotes, bare NaN, raw control
characters, trailing commas), values of the wrong type. Every body goes through the canonical decoder
(msgspec) and through the general one (orjson, the repair, pydantic-shaped `convert`) into two
pipelines (`_Routes`): no exception may escape `Pipeline.process`, both give the same typed records,
the same BodyResult for every body and the same exposition at the end.

Bounded: a fixed number of examples, a deadline per example, bodies of at most a few KiB.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.pipeline import EventContext
from tests.test_decoder_equality import _KEYS_PROPERTIES, _KEYS_TOP, T0, _records, _Routes
from tests.test_properties import crafted, json_values

FUZZ = settings(max_examples=250, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow,
                                                                                        HealthCheck.data_too_large])

#: Values of the wrong type or out of every range, put in place of a record's field.
HOSTILE_VALUES: list[Any] = [[], {}, [[[]]], {"a": {"b": []}}, True, False, None, 0, -1, 2**64, -(2**63) - 1,
                             1e308, -1e308, 5e-324, "", "\u0000", "\ud800", "x" * 3000, "Outgoing_99999999999999",
                             "9" * 400]
#: Raw texts a JSON encoder never writes, spliced in place of a field's value.
RAW_VALUES: list[bytes] = [
    b"1" + b"0" * 400, b"-1" + b"0" * 400, b"1e400", b"-1e400", b"1e-400", b"0." + b"0" * 300 + b"1", b"-0",
    b"NaN", b"-Infinity", b"Infinity", b"[" * 3000 + b"]" * 3000, b'{"a":' * 600 + b"1" + b"}" * 600,
    b"'single'", b'"raw\ncontrol\ttext"', b'"\\ud800"', b'"\\uDFFF\\uD800"', b"tru", b"nul", b"[1,]", b"{,}",
]
_SLOT = "\u2063slot\u2063"  # a string the generated records never hold: where a raw text is spliced


@st.composite
def record_bodies(draw: st.DrawFn) -> bytes:
    """A body of record-shaped records, some fields replaced by hostile values or raw texts."""
    records = draw(st.lists(_records(), min_size=1, max_size=5))
    splices: list[bytes] = []
    for record in records:
        for _ in range(draw(st.integers(0, 2))):
            where = draw(st.sampled_from(["top", "properties", "inside"]))
            target, key = record, "properties"
            if where == "top":
                key = draw(st.sampled_from(_KEYS_TOP))
            elif where == "inside" and isinstance(record.get("properties"), dict):
                target, key = record["properties"], draw(st.sampled_from(_KEYS_PROPERTIES))
            if draw(st.booleans()):
                target[key] = draw(st.sampled_from(HOSTILE_VALUES))
            else:
                target[key] = _SLOT
                splices.append(draw(st.sampled_from(RAW_VALUES)))
    envelope = draw(st.sampled_from(["records", "bare", "single"]))
    value: Any = {"records": records} if envelope == "records" else records if envelope == "bare" else records[0]
    text = json.dumps(value).encode()
    for raw in splices:
        text = text.replace(json.dumps(_SLOT).encode(), raw, 1)
    return text


bases = st.one_of(record_bodies(), record_bodies(), json_values.map(lambda v: json.dumps(v).encode()), crafted)


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A body from `bases`, then up to three of the mangling producers do."""
    body = draw(bases)
    for _ in range(draw(st.integers(0, 3))):
        if not body:
            break
        at = draw(st.integers(0, len(body)))
        how = draw(st.sampled_from(["cut", "byte", "utf8", "nest", "quote", "nan", "control", "comma", "bom"]))
        if how == "cut":
            body = body[:at] if draw(st.booleans()) else body[at:]
        elif how == "byte":
            body = body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1:]
        elif how == "utf8":  # a lone continuation byte, a truncated sequence, an encoded surrogate, an overlong
            body = body[:at] + draw(st.sampled_from([b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf",
                                                     b"\xff", b"\xf4\x90\x80\x80"])) + body[at:]
        elif how == "nest":
            depth = draw(st.integers(1, 2000))
            body = b"[" * depth + body + b"]" * draw(st.sampled_from([depth, 0, depth // 2]))
        elif how == "quote":
            body = body.replace(b'"', b"'") if draw(st.booleans()) else body[:at] + b"'" + body[at:]
        elif how == "nan":
            body = body.replace(b"null", b"NaN").replace(b"0,", b"-Infinity,", 1)
        elif how == "control":
            body = body[:at] + bytes([draw(st.integers(0, 31))]) + body[at:]
        elif how == "comma":
            body = body.replace(b"]", b",]", 1).replace(b"}", b",}", 1)
        else:
            body = b"\xef\xbb\xbf" + body
    return body


@FUZZ
@given(st.lists(mangled(), min_size=1, max_size=4), st.integers(0, 3))
def test_hostile_bodies_never_raise_and_both_decoders_agree(bodies: list[bytes], clock_step: int) -> None:
    routes = _Routes(correlation_max_age_seconds=600, duplicates_max_age_seconds=600)
    now = T0 + 30
    for sequence_number, body in enumerate(bodies):
        now += clock_step * 400  # windows age out between bodies, or not
        routes.process(body, now, EventContext("0", sequence_number))  # raises if either pipeline raises
    routes.check()
