"""One Event Hubs event body (bytes) → the raw records it holds, or the reason it holds none.

Azure Monitor's diagnostic settings write `{"records": [ ... ]}`; capture tools also hand us a bare
array of records or a single record object. Azure is known to emit bodies that are not strict JSON
(raw control characters inside strings, single-quoted keys and strings, bare NaN/Infinity), so when —
and only when — the strict parse fails, the body is repaired once and parsed again, and the repair is
reported so that it can be counted.

This module is pure: no I/O, no clock, no logging. It never raises on any input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = (b"\xff\xfe", b"\xfe\xff")  # UTF-16/32: Azure never writes these

# Keys that mark a lone JSON object as one record (compared lower-cased).
_RECORD_MARKERS = frozenset(
    {"category", "operationname", "time", "timegenerated", "timestamp", "resultType".lower()}
)


class DecodeError(StrEnum):
    """Why a body yielded no records. The values are the `reason` label of
    `acs_consumer_decode_errors_total`, so they are part of the metric contract."""

    INVALID_JSON = "invalid_json"
    NOT_RECORDS = "not_records"
    TOO_LARGE = "too_large"
    ENCODING = "encoding"
    #: Never returned by `decode_body`: the shell's reason for a body whose processing raised (a bug,
    #: an input nobody thought of); the event is counted, logged, dead-lettered and passed.
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class DecodedBody:
    """What one body decoded to. Exactly one of `records` (non-empty) or `error` is set.

    `records` items are whatever JSON values stood in the records list: usually dicts, but the
    record layer decides what is valid, so that one bad record never spoils its siblings.
    `detail` is a short human-readable explanation for logs; it never quotes the body's content.
    """

    records: list[Any]
    error: DecodeError | None = None
    detail: str = ""
    repaired: bool = False


def decode_body(body: bytes, max_bytes: int) -> DecodedBody:
    """Decode one event body. Never raises."""
    size = len(body)
    if size > max_bytes:
        return _fail(DecodeError.TOO_LARGE, f"body is {size} bytes, over the {max_bytes}-byte limit")
    if body.startswith(_UTF8_BOM):
        body = body[3:]
    elif body.startswith(_OTHER_BOMS):
        return _fail(DecodeError.ENCODING, "body starts with a UTF-16/32 byte-order mark; UTF-8 expected")

    repaired = False
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as strict_error:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _fail(DecodeError.ENCODING, f"body is not valid UTF-8 (byte {exc.start})")
        fixed = repair_json(text)
        if fixed == text:
            return _fail(DecodeError.INVALID_JSON, _describe(strict_error))
        try:
            value = orjson.loads(fixed)
        except orjson.JSONDecodeError:
            return _fail(DecodeError.INVALID_JSON, _describe(strict_error) + " (repair did not help)")
        repaired = True

    return _records_of(value, repaired)


def _records_of(value: Any, repaired: bool) -> DecodedBody:
    if isinstance(value, dict):
        records = _get_records(value)
        if records is not None:
            if not isinstance(records, list):
                return _fail(DecodeError.NOT_RECORDS, f'"records" is a JSON {_json_type(records)}, not an array')
        elif any(k.lower() in _RECORD_MARKERS for k in value):
            records = [value]
        else:
            return _fail(DecodeError.NOT_RECORDS, 'JSON object has neither "records" nor record fields')
    elif isinstance(value, list):
        records = value
    else:
        return _fail(DecodeError.NOT_RECORDS, f"body is a JSON {_json_type(value)}, not an object or array")
    if not records:
        return _fail(DecodeError.NOT_RECORDS, "records array is empty")
    return DecodedBody(records=records, repaired=repaired)


def _get_records(envelope: dict[str, Any]) -> Any:
    if "records" in envelope:
        return envelope["records"]
    for key, item in envelope.items():
        if key.lower() == "records":
            return item
    return None


def _fail(reason: DecodeError, detail: str) -> DecodedBody:
    return DecodedBody(records=[], error=reason, detail=detail)


def _describe(error: orjson.JSONDecodeError) -> str:
    # orjson's message quotes no input text beyond the position, so it is safe for logs.
    return f"not JSON: {error.msg} at line {error.lineno} column {error.colno}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


# --- repair ----------------------------------------------------------------------------------

# Tokens the repair looks at: double-quoted strings (which may hold raw control characters),
# single-quoted strings, and bare NaN / Infinity / -Infinity outside strings.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|-?\b(?:NaN|Infinity)\b', re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    return _CONTROL_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def _fix_token(match: re.Match[str]) -> str:
    token = match.group()
    first = token[0]
    if first == '"':
        return _CONTROL.sub(_escape_control, token)
    if first == "'":
        inner = token[1:-1].replace("\\'", "'").replace('"', '\\"')
        return '"' + _CONTROL.sub(_escape_control, inner) + '"'
    return "null"  # NaN / Infinity have no JSON form; a number that is not a number is no value


def repair_json(text: str) -> str:
    """Make Azure's near-JSON strict: escape raw control characters inside strings, turn
    single-quoted strings into double-quoted ones, and replace bare NaN/Infinity with null.
    Returns the text unchanged when there was nothing to repair."""
    return _TOKEN.sub(_fix_token, text)
