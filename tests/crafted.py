"""Event bodies crafted against the *algorithms* that read untrusted bytes, not only against the format.

Each shape is a function of a target size in bytes and returns a body of about that size. They are
shared by the unit tests (growth of decode time when the size doubles), the hypothesis strategies,
the end-to-end hostile-input tests (a stream of them through `run`) and `bench/bench_decode.py`.

Why each shape exists:
- `escaped_quote_run`: an unterminated string made of `\\"` pairs; a backtracking string regex retries
  from every quote and goes quadratic (1.3 s for 16 KB before the fix);
- `unterminated_string`: one long string that never closes;
- `single_quote_run` / `mixed_quote_run`: long runs of quotes of one or both kinds (every quote opens
  and closes a string, or not);
- `backslash_mixed_quote_run`: the same after a backslash outside strings right before a quote, which
  escapes nothing there (unlike inside a string), so that the repair cannot take every backslash
  for an escape;
- `deep_nesting` / `deep_object_nesting`: brackets nested far past any parser's depth limit;
- `nan_run`: NaN/Infinity outside strings (each one a repair);
- `non_finite_candidates`: runs of `N` with a NaN after each (one in every 5,000 bytes, so in every
  64 KiB step of the repair): a NaN/Infinity pattern that begins with the set [-NI] tries every one
  of those letters (~80 ms per MiB); not JSON even after the repair;
- `control_characters`: raw control characters inside strings (each one a repair);
- `many_empty_strings`: a quarter of a million tiny strings plus one repair, so a repair that costs a
  Python call per string shows;
- `tiny_records` / `bare_numbers`: the most records a body of that size can hold (per-record cost);
- `tiny_lists`: as many records, each an empty list: containers the garbage collector tracks (empty
  dicts it does not), so that a parse with the collector running spends most of its one C call in
  collections;
- `properties_escaped_quotes`: the `\\"` run inside a `properties` *string*, the second place the
  repair is reached (records.py).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from acs_sms_devtools.traffic import generate_corpus

#: The Event Hubs maximum event size (Standard/Premium): the largest body a replica can receive.
MAX_EVENT_BYTES = 1024 * 1024


def _repeat(prefix: bytes, unit: bytes, suffix: bytes, size: int) -> bytes:
    count = max(1, (size - len(prefix) - len(suffix)) // len(unit))
    return prefix + unit * count + suffix


def escaped_quote_run(size: int) -> bytes:
    return _repeat(b'"', b'\\"', b"", size)


def unterminated_string(size: int) -> bytes:
    return _repeat(b'{"records": [{"category": "', b"a", b"", size)


def single_quote_run(size: int) -> bytes:
    return _repeat(b"", b"'", b"", size)


def mixed_quote_run(size: int) -> bytes:
    return _repeat(b"", b"\"'", b"", size)


def backslash_mixed_quote_run(size: int) -> bytes:
    return _repeat(b'\\"', b"'\"", b"", size)


def deep_nesting(size: int) -> bytes:
    return _repeat(b"", b"[", b"", size)


def deep_object_nesting(size: int) -> bytes:
    return _repeat(b"", b'{"a":', b"", size)


def nan_run(size: int) -> bytes:
    return _repeat(b"[", b"NaN,Infinity,-Infinity,", b"0]", size)


def non_finite_candidates(size: int) -> bytes:
    return _repeat(b"[", b"N" * 5000 + b" NaN ", b"]", size)


def control_characters(size: int) -> bytes:
    return _repeat(b'{"records": [{"category": "', b"\n\t", b'"}]}', size)


def many_empty_strings(size: int) -> bytes:
    return _repeat(b"[", b'"",', b'"\n"]', size)


def tiny_records(size: int) -> bytes:
    return _repeat(b'{"records": [', b"{},", b"{}]}", size)


def tiny_lists(size: int) -> bytes:
    return _repeat(b'{"records": [', b"[],", b"[]]}", size)


def bare_numbers(size: int) -> bytes:
    return _repeat(b"[", b"1,", b"1]", size)


def properties_escaped_quotes(size: int) -> bytes:
    """A well-formed body whose one record's `properties` is a string that needs the repair."""
    head = {"time": "2024-01-01T00:00:00Z", "category": "SMSOperational", "operationName": "SMSMessagesSent"}
    overhead = len(orjson.dumps({"records": [{**head, "properties": ""}]}))
    inner = "'" + '\\"' * max(1, (size - overhead) // 4)  # each \" is written as \\\" in the JSON body
    return orjson.dumps({"records": [{**head, "properties": inner}]})


#: name → shape; every one of them must decode in time linear in its size.
SHAPES: dict[str, Callable[[int], bytes]] = {
    "escaped_quote_run": escaped_quote_run,
    "unterminated_string": unterminated_string,
    "single_quote_run": single_quote_run,
    "mixed_quote_run": mixed_quote_run,
    "backslash_mixed_quote_run": backslash_mixed_quote_run,
    "deep_nesting": deep_nesting,
    "deep_object_nesting": deep_object_nesting,
    "nan_run": nan_run,
    "non_finite_candidates": non_finite_candidates,
    "control_characters": control_characters,
    "many_empty_strings": many_empty_strings,
    "tiny_records": tiny_records,
    "tiny_lists": tiny_lists,
    "bare_numbers": bare_numbers,
    "properties_escaped_quotes": properties_escaped_quotes,
}


def small_invalid_records(size: int) -> bytes:
    """The costliest records per byte found: each an SMSOperational record with nothing else (invalid,
    ~5 µs each in the pipeline, 31 bytes)."""
    return _repeat(b'{"records": [', b'{"category":"SMSOperational"},', b"{}]}", size)


def realistic_records(size: int) -> bytes:
    """As many records of the traffic generator's realistic mix as fit in a body of `size` bytes (at
    least one): what the service is built for, as the shapes above are what it must survive."""
    count = 1 + size // 400
    records = orjson.loads(generate_corpus(count, records_per_body=count, seed=3)[0])["records"]
    body = orjson.dumps({"records": records})
    while len(body) > size and len(records) > 1:
        records.pop()
        body = orjson.dumps({"records": records})
    return body


#: Shapes of records, not of bytes, that cost the pipeline most per byte (the loop-hold test and
#: bench/bench_loop_hold.py); not in `SHAPES`, which the decoder's linear-time tests go through.
RECORD_SHAPES: dict[str, Callable[[int], bytes]] = {
    "small_invalid_records": small_invalid_records,
    "realistic_records": realistic_records,
}


def crafted_bodies(size: int) -> dict[str, bytes]:
    """Every shape at about `size` bytes (at most `MAX_EVENT_BYTES` minus AMQP overhead for events)."""
    return {name: shape(size) for name, shape in SHAPES.items()}
