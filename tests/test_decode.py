"""consumer.decode: envelopes, encodings, limits, errors, and the repair of Azure's near-JSON."""

from __future__ import annotations

import json

import pytest

from consumer.decode import DecodeError, decode_body, repair_json

LIMIT = 1_048_576
RECORD = {"time": "2026-11-02T10:00:00Z", "category": "SMSOperational", "operationName": "SMSMessagesSent"}
SECRET = "+15550100001"


def body(value) -> bytes:
    return json.dumps(value).encode()


def ok(decoded, records, repaired=False):
    assert decoded.error is None
    assert decoded.detail == ""
    assert decoded.records == records
    assert decoded.repaired is repaired


def test_records_envelope():
    ok(decode_body(body({"records": [RECORD, RECORD]}), LIMIT), [RECORD, RECORD])


def test_records_key_is_case_insensitive():
    ok(decode_body(body({"Records": [RECORD]}), LIMIT), [RECORD])


def test_bare_array():
    ok(decode_body(body([RECORD, {"a": 1}]), LIMIT), [RECORD, {"a": 1}])


@pytest.mark.parametrize("marker", ["category", "operationName", "time", "TimeGenerated", "timeStamp", "ResultType"])
def test_single_record_object(marker):
    record = {marker: "x", "other": 1}
    ok(decode_body(body(record), LIMIT), [record])


def test_non_object_items_are_kept_for_the_record_layer():
    ok(decode_body(body({"records": [1, "x", None, RECORD]}), LIMIT), [1, "x", None, RECORD])


def test_utf8_bom_is_stripped():
    ok(decode_body(b"\xef\xbb\xbf" + body({"records": [RECORD]}), LIMIT), [RECORD])


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_or_32_is_encoding_error(encoding):
    text = json.dumps({"records": [RECORD]})
    data = text.encode(encoding)
    if encoding == "utf-16-le":
        data = b"\xff\xfe" + data
    elif encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    decoded = decode_body(data, LIMIT)
    assert decoded.records == [] and decoded.error is DecodeError.ENCODING
    assert "UTF-8" in decoded.detail


@pytest.mark.parametrize("data", ['{"records": [{"category": "Caf\xe9"}]}'.encode("latin-1"), b'["\xff\xfe\xfd"]'])
def test_non_utf8_is_encoding_error(data):
    decoded = decode_body(data, LIMIT)
    assert decoded.error is DecodeError.ENCODING
    assert decoded.records == []
    assert decoded.detail.startswith("body is not valid UTF-8 (byte ")


def test_over_limit_is_too_large_and_at_limit_is_fine():
    data = body({"records": [RECORD]})
    decoded = decode_body(data, len(data) - 1)
    assert decoded.error is DecodeError.TOO_LARGE
    assert decoded.detail == f"body is {len(data)} bytes, over the {len(data) - 1}-byte limit"
    ok(decode_body(data, len(data)), [RECORD])


@pytest.mark.parametrize(
    "value, detail",
    [
        ({"records": []}, "records array is empty"),
        ([], "records array is empty"),
        ({"records": {"a": 1}}, '"records" is a JSON object, not an array'),
        ({"records": "x"}, '"records" is a JSON string, not an array'),
        ({"records": None}, 'JSON object has neither "records" nor record fields'),  # null = absent
        ({"hello": "world"}, 'JSON object has neither "records" nor record fields'),
        ({}, 'JSON object has neither "records" nor record fields'),
        (42, "body is a JSON number, not an object or array"),
        ("text", "body is a JSON string, not an object or array"),
        (None, "body is a JSON null, not an object or array"),
        (True, "body is a JSON boolean, not an object or array"),
    ],
)
def test_not_records(value, detail):
    decoded = decode_body(body(value), LIMIT)
    assert decoded.error is DecodeError.NOT_RECORDS
    assert decoded.records == []
    assert decoded.detail == detail


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"this is not json {",
        b'{"records": [{"PhoneNumber": "' + SECRET.encode() + b'"',
        b'{"records": [{"PhoneNumber": ' + SECRET.encode() + b"}]}",
        b'{"records": [1,]}',
        b"[1e400]",
    ],
)
def test_invalid_json_detail_does_not_quote_the_body(data):
    decoded = decode_body(data, LIMIT)
    assert decoded.error is DecodeError.INVALID_JSON
    assert decoded.records == []
    assert decoded.detail.startswith("not JSON: ")
    assert SECRET not in decoded.detail
    assert "PhoneNumber" not in decoded.detail


def test_repair_that_does_not_help_says_so():
    decoded = decode_body(b"{'records': [1,,]}", LIMIT)
    assert decoded.error is DecodeError.INVALID_JSON
    assert decoded.detail.endswith(" (repair did not help)")


# --- repair ------------------------------------------------------------------------------------


def test_raw_newline_and_control_chars_inside_strings_are_repaired():
    data = b'{"records": [{"category": "SMSOperational", "resultDescription": "two\nlines\r\tand\x01"}]}'
    decoded = decode_body(data, LIMIT)
    ok(decoded, [{"category": "SMSOperational", "resultDescription": "two\nlines\r\tand\x01"}], repaired=True)


def test_single_quotes_are_repaired():
    data = b"{'records': [{'category': 'SMSOperational', 'resultDescription': 'it\\'s \"fine\"'}]}"
    decoded = decode_body(data, LIMIT)
    ok(decoded, [{"category": "SMSOperational", "resultDescription": "it's \"fine\""}], repaired=True)


def test_nan_and_infinity_become_null():
    data = b'{"records": [{"category": "Usage", "a": NaN, "b": Infinity, "c": -Infinity, "d": "NaN"}]}'
    ok(decode_body(data, LIMIT), [{"category": "Usage", "a": None, "b": None, "c": None, "d": "NaN"}], repaired=True)


def test_strict_json_is_never_repaired():
    # Valid JSON that the repair would otherwise touch: a string holding a single-quoted part and "NaN".
    value = {"records": [{"category": "x", "d": "it's 'quoted' NaN Infinity"}]}
    ok(decode_body(body(value), LIMIT), value["records"], repaired=False)


def test_repair_json_leaves_clean_text_unchanged():
    text = json.dumps({"records": [RECORD]})
    assert repair_json(text) == text


def test_repair_json_escapes():
    assert repair_json('"a\nb"') == '"a\\nb"'
    assert repair_json('"\x00"') == '"\\u0000"'
    assert repair_json("'x'") == '"x"'
    assert repair_json("[NaN, -Infinity]") == "[null, null]"
    assert repair_json('"NaN"') == '"NaN"'


def test_decode_never_raises_on_odd_inputs():
    for data in [b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"[", b"'", b'"', b"\\", b"{" * 10_000, b"[" * 100_000]:
        decoded = decode_body(data, LIMIT)
        assert decoded.error is not None and decoded.records == []


# --- the repair is the one it replaced, in linear time -------------------------------------------

import re  # noqa: E402
from unittest import mock  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from consumer import decode, repair  # noqa: E402
from tests.crafted import SHAPES  # noqa: E402

# The repair as it was (a backtracking regex: quadratic in the worst case, see tests/test_linear_time.py):
# the reference for what the repair does.
_OLD_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|-?\b(?:NaN|Infinity)\b', re.DOTALL)
_OLD_CONTROL = re.compile(r"[\x00-\x1f]")
_OLD_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _old_escape(match: re.Match[str]) -> str:
    return _OLD_ESCAPES.get(match.group()) or f"\\u{ord(match.group()):04x}"


def _old_fix(match: re.Match[str]) -> str:
    token = match.group()
    if token[0] == '"':
        return _OLD_CONTROL.sub(_old_escape, token)
    if token[0] == "'":
        inner = token[1:-1].replace("\\'", "'").replace('"', '\\"')
        return '"' + _OLD_CONTROL.sub(_old_escape, inner) + '"'
    return "null"


def old_repair(text: str) -> str:
    return _OLD_TOKEN.sub(_old_fix, text)


NEAR_JSON = st.lists(st.sampled_from(['"', "'", "\\", '\\"', "\\'", "\\\\", "NaN", "Infinity", "-Infinity", "-", "N",
                                      "aN", "xNaN", "NaN_", "a", "é", "_", "1", " ", "\n", "\t", "\x00", "\x1f", "[", "]",
                                      "{", "}", ":", ",", "null", "\ud7ff"]), max_size=40).map("".join)


# Texts are read as bit masks from `BITS_FROM` characters on, the regex way below: both readings are
# held to the old repair, on short texts (BITS_FROM set to 0 for the bit reading).
READINGS = pytest.mark.parametrize("bits_from", [0, repair.BITS_FROM], ids=["bits", "regex"])

# Like NEAR_JSON, made of whole strings more often, so that the bit reading applies (a backslash
# outside strings sends a text the regex way).
NEAR_JSON_STRINGS = st.lists(st.sampled_from(['"a\\"b"', "'x\\'y'", '"\n"', "NaN", ",", "[", "]", '"\'"', "'\"'",
                                              "'a\\\\'", '"\\\\"', "-Infinity", " ", "\t", "\r", "'\x01'", "xNaN",
                                              "'NaN'", '"I"', "'", '"', "\\", "\u00e9", "{", ":", "'\\\"'", "'it''s'"]),
                             max_size=16).map("".join)


@READINGS
@settings(max_examples=2000, deadline=None)
@given(st.one_of(NEAR_JSON, NEAR_JSON_STRINGS))
def test_repair_is_the_old_repair(bits_from, text):
    with mock.patch.object(repair, "BITS_FROM", bits_from):
        assert repair_json(text) == old_repair(text)


@READINGS
@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SHAPES)), st.integers(1, 300), NEAR_JSON, NEAR_JSON)
def test_repair_of_crafted_shapes_is_the_old_repair(bits_from, shape, size, before, after):
    if shape == "escaped_quote_run":
        size = min(size, 64)  # the old repair is quadratic here
    text = before + SHAPES[shape](size).decode() + after
    with mock.patch.object(repair, "BITS_FROM", bits_from):
        assert repair_json(text) == old_repair(text)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_crafted_shape_of_event_size_is_read_as_bits(shape):
    text = SHAPES[shape](64 * 1024).decode()
    if '"' in text or "'" in text:
        assert repair._repair_bits(text, '"' in text, "'" in text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "[\\'a', \"b\\\"\"]",  # a backslash outside strings right before a quote: the states composed
        "[\x01, 'a\x02', \"\x03\"]",  # control characters outside strings: fewer marked than inside
        "[\x01, \x02, 'a\x03']",  # more outside than inside
        "\n['\\'', NaN, \"NaN\", 'Infinity\\'s']\n",
    ],
)
def test_odd_texts_read_as_bits_are_repaired_as_before(text):
    assert repair._repair_bits(text, True, True) is not None
    with mock.patch.object(repair, "BITS_FROM", 0):
        assert repair_json(text) == old_repair(text)


def test_a_text_with_lone_surrogates_is_read_the_regex_way():
    text = "['\udc80', NaN]"
    assert repair._repair_bits(text, True, True) is None
    with mock.patch.object(repair, "BITS_FROM", 0):
        assert repair_json(text) == old_repair(text) == '["\udc80", null]'


def test_a_backslash_outside_strings_before_no_quote_is_read_as_bits():
    text = "[\\x, 'a', \\\\ \"b\"]"
    assert repair._repair_bits(text, True, True) == ('[\\x, "a", \\\\ "b"]', "", "")
    assert old_repair(text) == '[\\x, "a", \\\\ "b"]'


@pytest.mark.parametrize(
    "text, composed",
    [
        # \"'"'"'...: the first quote opens a string (the backslash escapes nothing outside strings);
        # counting it, the sums read the rest consistently
        ('\\"' + "'\"" * 300, False),
        ('\\"\\"', True),  # counting the first quote puts the second backslash inside: the states composed
        ("\\'\\'" * 300, True),
    ],
)
def test_a_backslash_before_a_quote_outside_strings(text, composed):
    with mock.patch.object(repair, "_states_by_composition", wraps=repair._states_by_composition) as composition:
        read = repair._repair_bits(text, True, True)
    assert read is not None
    assert composition.called is composed
    with mock.patch.object(repair, "BITS_FROM", 0):
        assert repair_json(text) == old_repair(text)


# --- the repair in steps (a worker thread gives the event loop the GIL between them) ---------------

# A text longer than `STEP` is read in steps; held to the old repair with tiny steps, so that every
# kind of cut is met on short texts: before a non-word character, in a long run of word characters
# (`_STEP_TAIL` 20), a string running past a step (read whole, its end found in steps), a string
# that never closes, a backslash at a step's end.
STEPS = pytest.mark.parametrize("step, tail", [(2, 64), (3, 64), (7, 20), (24, 20), (40, 64)])
WORDY = st.lists(st.sampled_from(["NaN", "Infinity", "-", "a", "N", "aN", "_", "1", "é", " ", ",", "'", '"', "\\",
                                  "'NaN'", '"\\""', "xxxxxxxxx"]), max_size=40).map("".join)


@READINGS
@STEPS
@settings(max_examples=300, deadline=None)
@given(st.one_of(NEAR_JSON, NEAR_JSON_STRINGS, WORDY))
def test_repair_in_steps_is_the_old_repair(bits_from, step, tail, text):
    with mock.patch.multiple(repair, BITS_FROM=bits_from, STEP=step, _STEP_TAIL=tail):
        assert repair_json(text) == old_repair(text)


@READINGS
@STEPS
@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(SHAPES)), st.integers(1, 300), NEAR_JSON, NEAR_JSON)
def test_repair_of_crafted_shapes_in_steps_is_the_old_repair(bits_from, step, tail, shape, size, before, after):
    if shape == "escaped_quote_run":
        size = min(size, 64)  # the old repair is quadratic here
    text = before + SHAPES[shape](size).decode() + after
    with mock.patch.multiple(repair, BITS_FROM=bits_from, STEP=step, _STEP_TAIL=tail):
        assert repair_json(text) == old_repair(text)


@pytest.mark.parametrize("shape", sorted([*SHAPES, "word_run", "minus_run"]))
def test_every_step_of_a_crafted_body_is_bounded(shape):
    """No step of the repair of a 1 MiB body reads more than `STEP` characters, but for a single
    string (from its opening to its closing quote); `_closing` reads `STEP` characters a call."""
    size = 1024 * 1024
    text = {  # runs of the characters NaN/Infinity matches begin with, a NaN after each (no cut in them)
        "word_run": lambda: ("N" * 5000 + " NaN ") * (size // 5005),
        "minus_run": lambda: ("-" * 5000 + "NaN ") * (size // 5004),
    }.get(shape, lambda: SHAPES[shape](size).decode())()
    chunks: list[str] = []
    real = repair._repair_chunk

    def recording(chunk, *args):
        chunks.append(chunk)
        return real(chunk, *args)

    with mock.patch.object(repair, "_repair_chunk", recording):
        stepped = repair_json(text)
    assert len(chunks) > 1
    with mock.patch.object(repair, "STEP", 2 * size):
        assert stepped == repair_json(text)  # in one step
    for chunk in chunks:
        if len(chunk) > repair.STEP:
            assert chunk[0] in "\"'" and repair._closing(chunk, 0) == len(chunk) - 1, (shape, len(chunk))


# --- large texts parsed with the garbage collector paused ------------------------------------------


def _gc_during_parse(data, enabled_before: bool) -> tuple[bool, bool]:
    """(whether the collector ran during orjson's parse of `data`, whether it runs after `loads`)."""
    import gc

    seen = []
    real = decode.orjson.loads

    def parse(text):
        seen.append(gc.isenabled())
        return real(text)

    was = gc.isenabled()
    (gc.enable if enabled_before else gc.disable)()
    try:
        with mock.patch.object(decode.orjson, "loads", parse):
            decode.loads(data)
        return seen == [True], gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


def test_a_large_text_is_parsed_with_the_collector_paused():
    large = SHAPES["tiny_lists"](decode.PAUSE_GC_FROM + 8)
    assert len(large) >= decode.PAUSE_GC_FROM
    assert _gc_during_parse(large, enabled_before=True) == (False, True)
    assert _gc_during_parse(large.decode(), enabled_before=True) == (False, True)
    assert _gc_during_parse(large, enabled_before=False) == (False, False)  # not enabled by loads
    small = SHAPES["tiny_lists"](decode.PAUSE_GC_FROM // 2)
    assert _gc_during_parse(small, enabled_before=True) == (True, True)


def test_the_collector_runs_again_when_the_parse_fails():
    import gc

    assert gc.isenabled()
    with pytest.raises(decode.orjson.JSONDecodeError):
        decode.loads(b"[" * decode.PAUSE_GC_FROM)
    assert gc.isenabled()
    decoded = decode_body(SHAPES["tiny_lists"](decode.PAUSE_GC_FROM + 8), LIMIT)
    assert decoded.error is None and decoded.records[:2] == [[], []]
    assert gc.isenabled()


def test_where_a_step_is_cut():
    # before the last non-word character of the step's tail
    assert repair._cut("NaN,NaN,NaN", 0, 9) == 7
    # in 64 word characters: the middle (no NaN/Infinity can be a run of 9 or more of them)
    text = "[" + "N" * 200 + "]"
    assert repair._cut(text, 0, 150) == 150 - repair._STEP_TAIL // 2
    # neither: a step that is all word characters but shorter than the tail grows
    assert repair._cut("NaNaNaNaN", 0, 8) is None
    with mock.patch.object(repair, "STEP", 32):
        for text in ("[" + "N" * 200 + "aN]", "-" * 100 + "Infinity", "x" * 70 + "NaN" + "N" * 70 + " NaN"):
            assert repair_json(text) == old_repair(text)


@pytest.mark.parametrize("step", [2, 3, 1024])
@pytest.mark.parametrize(
    "text, closing",
    [
        ('"abc"', 4),
        ('"a\\"b"', 5),
        ('"a\\\\"b"', 4),  # an even run: the quote closes
        ('"' + '\\"' * 20 + '"', 41),  # past 8 escaped quotes in a row: read on by the regex
        ('"' + '\\"' * 20 + '\\\\"x', 43),
        ('"' + '\\"' * 20, -1),
        ('"abc\\', -1),  # a backslash that is the last character
        ('"abc', -1),
        ("'a\"b'", 4),
        ("'it\\'s'", 6),
    ],
)
def test_where_a_string_closes(step, text, closing):
    with mock.patch.object(repair, "STEP", step):
        assert repair._closing(text, 0) == closing


_OLD_NON_FINITE = re.compile(r"-?\b(?:NaN|Infinity)\b")
NON_FINITE_TEXT = st.lists(st.sampled_from(["NaN", "Infinity", "-", "N", "aN", "I", "nfinity", "x", "_", "1", "é",
                                            " ", ",", "[", "\udfff", "-NaN", "-Infinity"]), max_size=30).map("".join)


@settings(max_examples=3000, deadline=None)
@given(NON_FINITE_TEXT)
def test_non_finite_words_are_replaced_as_by_the_one_regex(text):
    assert repair._replace_non_finite(text) == _OLD_NON_FINITE.sub("null", text)


def test_non_finite_examples():
    assert repair._replace_non_finite("-Infinity-NaN,NaN-Infinity") == "nullnull,nullnull"
    assert repair._replace_non_finite("Infinity_-Infinity-NaN") == "Infinity_nullnull"
    assert repair._replace_non_finite("--NaN xNaN NaNx -NaN_") == "-null xNaN NaNx -NaN_"
    text = "N" * 100
    assert repair._replace_non_finite(text) is text
