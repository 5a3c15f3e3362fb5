"""Azure's near-JSON made strict: `repair_json`, the repair `consumer.decode` tries once when a body
(or a `properties` string) does not parse.

Azure is known to emit text that is not strict JSON: raw control characters inside strings,
single-quoted keys and strings, bare NaN/Infinity. The repair escapes the first, turns the second
into double-quoted strings and the third into null, in time linear in the text.

This module is pure: no I/O, no clock, no logging. It never raises on any input.
"""

from __future__ import annotations

import re
from itertools import compress
from operator import not_
from typing import Any

# What the repair does, read from left to right: a double-quoted string (backslash escapes honoured)
# gets its raw control characters escaped; a single-quoted string becomes a double-quoted one (`\'`
# becomes `'`, `"` becomes `\"`, control characters are escaped); a bare NaN, Infinity or -Infinity
# outside strings becomes null. A quote whose string never closes is an ordinary character and the
# reading goes on right after it; then no later quote of that kind can close a string either (every
# later one is escaped within the unclosed string), so from there that kind is ordinary text.
#
# Bodies are untrusted and up to a million characters, so the repair is linear in the text and does
# no Python step per string (a body can hold half a million strings). One regex split cuts the text
# into the pieces between strings, the strings' kinds and their insides; a string always matches, up
# to its closing quote or to the end of the text, so the engine never tries a quote twice (a string
# regex that must find the closing quote fails at an unclosed one and is retried from every later
# quote: quadratic). Each kind of piece is then repaired in bulk: joined by a separator that cannot
# occur in the text, repaired with str.replace and one regex substitution, split again. A string that
# runs to the end ends the split: the text up to its quote is done, and the rest is split again with
# that kind of quote as ordinary text (at most twice).
#
# Both still cost ~100-300 ns per string (a regex match, list items), which a body of half a million
# strings of both kinds turns into ~200 ms. So a text of `BITS_FROM` characters or more is read with
# a constant cost per byte instead (`_repair_bits`): the reading is done on bit masks of the UTF-8
# bytes held in Python integers, whose and/or/xor/shift run in C over 30 bits at a time. Backslash
# escapes are found as simdjson finds them (the bytes after an odd run of backslashes, with one
# addition that carries through each run); then the state after each byte (outside, in a "-string,
# in a '-string) is a sum: a quote of kind c (1 for ", 2 for ') turns state t into c - t (mod 3)
# (outside, a quote opens its kind; in a string, its own kind closes it and the other does nothing),
# so the state after the k-th quote is the alternating sum c_k - c_(k-1) + c_(k-2) - ... (mod 3): a
# prefix parity and a prefix sum mod 3, each in log2(n) shift-and-combine steps. What must change is
# then marked by replacing its byte with one UTF-8 never holds (one per kind of change, by one xor over
# the whole text), and every kind of change is made by str.replace. A backslash outside strings
# escapes nothing; where one stands right before a quote, the sums are made again with that quote
# counted, and if that is not consistent, the states are composed instead (a map of the three
# states per byte, ~3x the work of the sums). The regex way is left for texts under
# `BITS_FROM` characters (where it is quicker) and texts holding lone surrogates.

_DOUBLE_INSIDE = r'[^"\\]*+(?:\\.[^"\\]*+)*+'
_SINGLE_INSIDE = r"[^'\\]*+(?:\\.[^'\\]*+)*+"
#: Groups: 1 the opening quote when it is `"` (None for `'`), 2 what follows it up to the closing quote
#: or to the end of the text, 3 the closing quote (None when the string runs to the end).
_STRING_GROUPS = r"((?(1)" + _DOUBLE_INSIDE + "|" + _SINGLE_INSIDE + r")\\?)((?(1)\"|'))?"
_STRINGS: dict[tuple[bool, bool], re.Pattern[str]] = {
    (True, True): re.compile(r"(?:(\")|')" + _STRING_GROUPS, re.DOTALL),
    (True, False): re.compile(r"(\")" + _STRING_GROUPS, re.DOTALL),
    (False, True): re.compile(r"(?:(?!)(\")|')" + _STRING_GROUPS, re.DOTALL),
}
# `-?\b(?:NaN|Infinity)\b` (left to right): a NaN/Infinity that is a whole run of word characters
# becomes null, with the `-` right before it if there is one. Done in three passes, each beginning
# with a literal so that the engine searches for it at C speed (one pattern beginning with the set
# [-NI] tried every N, I and -, ~60 ns each: 1 MiB of N took ~80 ms): the words not after a `-`
# (NaN, then Infinity: neither pass changes a character the other looks at), then `-NaN` and
# `-Infinity` in one pass (one replaced first could end the word before the other: `-Infinity-NaN`).
_NON_FINITE_PASSES = (
    ("NaN", re.compile(r"NaN(?<![\w-]NaN)\b")),
    ("Infinity", re.compile(r"Infinity(?<![\w-]Infinity)\b")),
)
_SIGNED_NON_FINITE = re.compile(r"-(?:NaN|Infinity)\b")
_CONTROL = re.compile(r"[\x00-\x1f]")
_CONTROL_ESCAPES = tuple(
    (chr(c), {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}.get(chr(c), f"\\u{c:04x}"))
    for c in range(0x20)
)
#: Texts at least this long are read as bit masks (`_repair_bits`): constant cost per byte, but a
#: fixed cost of ~30 µs that the regex way beats below ~1,000 characters.
BITS_FROM = 1024
# Lone surrogates: text decoded from UTF-8 (strictly) or parsed from JSON never holds one, and none is
# a word character (so NaN next to a separator is still a whole word) or changed by the repair.
_SEPARATORS = ("\ud800", "\udbff", "\udfff")


#: The repair reads a text longer than this in steps of about this many characters, each one a few
#: milliseconds of C calls (regex split and substitution, str.replace, big-integer operations) at most,
#: so that a worker thread repairing a 1 MiB body gives the event loop the GIL between them (a thread
#: gets no switch inside one C call). A step ends where the reading is outside strings and no
#: NaN/Infinity can straddle the cut; only a single string longer than a step is read in one piece
#: (`_closing` finds its end in steps, and the bit reading of one string is many short C calls).
STEP = 64 * 1024
_STEP_TAIL = 64  # where a step's cut is looked for: among its last characters (at least 18)
_INSIDE = {'"': re.compile(_DOUBLE_INSIDE, re.DOTALL), "'": re.compile(_SINGLE_INSIDE, re.DOTALL)}
_LAST_NON_WORD = re.compile(r".*\W", re.DOTALL)


def repair_json(text: str) -> str:
    """Make Azure's near-JSON strict: escape raw control characters inside strings, turn
    single-quoted strings into double-quoted ones, and replace bare NaN/Infinity with null.
    Returns the text unchanged when there was nothing to repair. Linear in the text, and read in
    steps of at most `STEP` characters (but for a single string longer than that).

    A text holding every one of the separators (lone surrogates, which neither UTF-8 nor JSON can
    carry) is returned unchanged."""
    for separator in _SEPARATORS:
        if separator not in text:
            break
    else:
        return text
    n = len(text)
    if n <= STEP:
        return _repair_chunk(text, True, True, separator, True)[0]
    done: list[str] = []
    double = single = True  # whether a quote of that kind may still open a string
    pos = 0
    size = STEP
    while pos < n:
        end = pos + size
        if end >= n:
            done.append(_repair_chunk(text[pos:], double, single, separator, True)[0])
            break
        cut = _cut(text, pos, end)
        if cut is None:  # a run of word characters too short to cut in, but no other character
            size *= 2
            continue
        size = STEP
        fixed, read = _repair_chunk(text[pos:cut], double, single, separator, False)
        done.append(fixed)
        pos += read
        if pos == cut:
            continue
        # A string opens at `pos` and runs past the step's end.
        close = _closing(text, pos)
        if close < 0:  # it never closes: its quote is ordinary text, and so is every later quote of its kind
            quote = text[pos]
            done.append(quote)
            double, single = double and quote != '"', single and quote != "'"
            pos += 1
        else:  # read as one piece (the only step that may be longer than `STEP`)
            done.append(_repair_chunk(text[pos : close + 1], double, single, separator, False)[0])
            pos = close + 1
    return "".join(done)


def _cut(text: str, pos: int, end: int) -> int | None:
    """Where a step from `pos` may end, at or before `end`, so that the NaN/Infinity replaced on each
    side are those replaced in the whole text: before a non-word character (a NaN/Infinity match is a
    whole run of word characters, perhaps after a `-`), or in a run of word characters with at least
    9 of them on each side (longer than `-Infinity`: no match in that run either way). None when the
    last `_STEP_TAIL` characters offer neither."""
    low = max(pos + 1, end - _STEP_TAIL)
    match = _LAST_NON_WORD.match(text, low, end)
    if match is not None:
        return match.end() - 1
    if low == end - _STEP_TAIL:  # all word characters: at least 9 on each side of the middle
        return end - _STEP_TAIL // 2
    return None


def _closing(text: str, opening: int) -> int:
    """Where the string opening at `opening` closes (its closing quote), or -1 when it never does.
    A quote is escaped when an odd run of backslashes stands right before it (a run inside a string
    is read from its start); after a few escaped quotes in a row the string is read on by the regex,
    `STEP` characters a call."""
    quote = text[opening]
    n = len(text)
    i = opening + 1
    escaped = 0  # escaped quotes in a row
    while i < n:
        if escaped < 8:
            j = text.find(quote, i)
            if j < 0:
                return -1
            if not (j - i - len(text[i:j].rstrip("\\"))) % 2:
                return j
            escaped += 1
            i = j + 1
            continue
        stop = min(i + max(STEP, 2), n)
        j = _INSIDE[quote].match(text, i, stop).end()  # type: ignore[union-attr]  # the pattern matches ""
        if j < stop and text[j] == quote:
            return j
        if j == i:  # a backslash that is the text's last character
            return -1
        i = j  # the step's end, or a backslash that is its last character
        escaped = 0
    return -1


def _repair_chunk(text: str, double: bool, single: bool, separator: str, final: bool) -> tuple[str, int]:
    """`repair_json` of `text` read from outside strings, `double`/`single` saying whether a quote of
    that kind may still open a string, as (the repaired text, how many characters of `text` it
    repairs). When `final`, `text` is the end of the whole text: all of it is repaired. Otherwise a
    string that runs to the end of `text` may close after it: the repair stops at its opening quote."""
    done: list[str] = []
    rest = text
    while True:
        double = double and '"' in rest
        single = single and "'" in rest
        if not (double or single):
            done.append(_replace_non_finite(rest))
            break
        if len(rest) >= BITS_FROM:
            read = _repair_bits(rest, double, single)
            if read is not None:
                fixed, quote, after = read
                done.append(fixed)
                if not quote:
                    break
                if not final:
                    return "".join(done), len(text) - len(after) - 1
                # A string that never closes: its quote is ordinary text, and so is every later
                # quote of its kind.
                done.append(quote)
                double, single = double and quote != '"', single and quote != "'"
                rest = after
                continue
        if not (double and single) and "\\" not in rest:
            # One kind of quote and no escapes: the strings are the pieces between consecutive quotes.
            quote = '"' if double else "'"
            if not final and rest.count(quote) % 2:  # the last quote opens a string that runs to the end
                last = rest.rfind(quote)
                done.append(_repair_one_kind(rest[:last], quote, separator))
                return "".join(done), len(text) - len(rest) + last
            done.append(_repair_one_kind(rest, quote, separator))
            break
        parts = _STRINGS[double, single].split(rest)
        if len(parts) == 1 or parts[-2] is not None:  # no string (cannot be), or the last one closes
            done.append(_repair_split(parts, separator))
            break
        # The last string runs to the end.
        opening = len(rest) - 1 - len(parts[-3])
        done.append(_repair_split(parts[:-4], separator))
        if not final:
            return "".join(done), len(text) - len(rest) + opening
        # Its quote is ordinary text, and so is every later quote of its kind.
        done.append(rest[opening])
        if parts[-4] is None:
            single = False
        else:
            double = False
        rest = rest[opening + 1 :]
    return (done[0] if len(done) == 1 else "".join(done)), len(text)


def _table(chars: bytes) -> bytes:
    """A bytes.translate table: b"1" for the bytes in `chars`, b"0" for every other."""
    return bytes(49 if b in chars else 48 for b in range(256))


_DOUBLE_BITS = _table(b'"')
_SINGLE_BITS = _table(b"'")
_BACKSLASH_BITS = _table(b"\\")
_CONTROL_BITS = _table(bytes(range(32)))
_N_BITS, _I_BITS = _table(b"N"), _table(b"I")
_NOT_CONTROL = bytes(range(32, 256))

# What `_repair_bits` changes, by code (a hex digit per byte): the byte is first turned into a byte
# UTF-8 never holds, by an xor, and read back (surrogateescape) as the lone surrogate U+DC00 + that
# byte, which str.replace then turns into what it stands for.
#: code → (the byte it finds there, the xor, what the byte becomes)
_CODES: dict[int, tuple[int, int, str]] = {
    1: (ord("'"), ord("'") ^ 0xF8, '"'),  # the quotes of a single-quoted string
    2: (ord('"'), ord('"') ^ 0xF9, '\\"'),  # `"` inside a single-quoted string
    3: (ord("\\"), ord("\\") ^ 0xFA, ""),  # the backslash of `\'` inside a single-quoted string
    # 4: a control character (0x00-0x1F) inside a string, 5: one outside strings; whichever are
    # fewer are marked (the others, if inside, are escaped in the text as a whole): xor 0x80 makes
    # it a lone continuation byte 0x80-0x9F, restored escaped (4) or as it was (5)
    7: (ord("N"), ord("N") ^ 0xFE, "N"),  # N and I inside strings: so that NaN and Infinity there
    8: (ord("I"), ord("I") ^ 0xFF, "I"),  # are not words
}
_INSIDE_CONTROL, _OUTSIDE_CONTROL = 4, 5
#: hex digit (b"0".."8") → the xor of its code
_XOR = bytes(_CODES[b - 48][1] if b - 48 in _CODES else 0x80 if b - 48 in (4, 5) else 0 for b in range(256))
_RESTORE: dict[int, Any] = {code: (chr(0xDC00 + (byte ^ xor)), final) for code, (byte, xor, final) in _CODES.items()}
_RESTORE[_INSIDE_CONTROL] = tuple((chr(0xDC80 + ord(char)), escaped) for char, escaped in _CONTROL_ESCAPES)
_RESTORE[_OUTSIDE_CONTROL] = tuple((chr(0xDC80 + ord(char)), char) for char, _ in _CONTROL_ESCAPES)


def _bits(reversed_text: bytes, table: bytes) -> int:
    """Bit i set where byte i of the text is one of the table's bytes."""
    return int(reversed_text.translate(table), 2)


def _prefix_xor(x: int, n: int, full: int) -> int:
    """Bit i = parity of the set bits 0..i of x."""
    k = 1
    while k < n:
        x = (x ^ (x << k)) & full
        k <<= 1
    return x


def _prefix_sum_mod3(lo: int, hi: int, n: int, full: int) -> tuple[int, int]:
    """Per position a value 0, 1 (bit in lo) or 2 (bit in hi); returns the sums mod 3 of 0..i."""
    k = 1
    while k < n:
        slo, shi = (lo << k) & full, (hi << k) & full
        zero, szero = full ^ (lo | hi), full ^ (slo | shi)
        lo, hi = (zero & slo) | (lo & szero) | (hi & shi), (zero & shi) | (hi & szero) | (lo & slo)
        k <<= 1
    return lo, hi


def _states_by_sums(doubles: int, singles: int, n: int, full: int) -> tuple[int, int]:
    """The state after each byte (bits: in a "-string, in a '-string) when every one of these quotes
    counts (none escaped): a quote of kind c (1 for ", 2 for ') turns state t into c - t (mod 3), so
    the state after byte i is (-1)**p(i) * sum over quotes j <= i of (-1)**p(j) * c_j (mod 3), p(i)
    being the parity of the number of quotes up to i."""
    parity = _prefix_xor(doubles | singles, n, full)
    even = full ^ parity
    lo, hi = _prefix_sum_mod3((doubles & even) | (singles & parity), (singles & even) | (doubles & parity), n, full)
    return (lo & even) | (hi & parity), (hi & even) | (lo & parity)


def _states_by_composition(doubles: int, singles: int, escaped: int, n: int, full: int) -> tuple[int, int]:
    """The state after each byte when a quote after an odd run of backslashes counts only outside
    strings (the backslashes escape it inside a string, and nothing outside): each byte's map of
    the states (0 outside, 1 in a "-string, 2 in a '-string), composed over 0..i in log2(n) steps;
    a map is held as the images of 0, 1 and 2, each in two bit planes (image 1, image 2)."""
    # outside, any quote opens its kind; an unescaped quote closes its kind, an escaped one nothing
    f0lo, f0hi = doubles, singles
    f1lo, f1hi = full ^ (doubles & ~escaped), 0
    f2lo, f2hi = 0, full ^ (singles & ~escaped)
    k = 1
    while k < n:
        below = (1 << k) - 1  # the bytes before the start: the identity map
        images = ((f0lo << k) & full, (f0hi << k) & full), (((f1lo << k) | below) & full, (f1hi << k) & full), (
            (f2lo << k) & full, ((f2hi << k) | below) & full)
        composed = []
        for lo, hi in images:  # the map of the k bytes before, then this one's
            zero = full ^ (lo | hi)
            composed.append((zero & f0lo) | (lo & f1lo) | (hi & f2lo))
            composed.append((zero & f0hi) | (lo & f1hi) | (hi & f2hi))
        f0lo, f0hi, f1lo, f1hi, f2lo, f2hi = composed
        k <<= 1
    return f0lo, f0hi


def _repair_bits(text: str, double: bool, single: bool) -> tuple[str, str, str] | None:
    """`repair_json` of `text` read as bit masks (see above), up to the quote of a string that never
    closes: (the repaired text before that quote, the quote, the text after it); the quote and the
    text after it are "" when every string closes. None for a text with lone surrogates."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    n = len(data)
    full = (1 << n) - 1
    rev = data[::-1]  # int(..., 2) reads the first digit as the highest bit: bit i is then byte i
    doubles = _bits(rev, _DOUBLE_BITS) if b'"' in data else 0
    singles = _bits(rev, _SINGLE_BITS) if b"'" in data else 0
    live_doubles = doubles if double else 0
    live_singles = singles if single else 0
    backslash, escaped = _escapes(data, rev, n, full)
    in_double, in_single = _string_states(live_doubles, live_singles, backslash, escaped, n, full)
    before = ((in_double | in_single) << 1) & full  # in a string before the byte
    first_double = live_doubles & in_double & ~before
    first_single = live_singles & in_single & ~before
    end = -1
    if (in_double | in_single) >> (n - 1) & 1:  # the last string never closes
        end = (first_double | first_single).bit_length() - 1
        keep = (1 << end) - 1
    else:
        keep = full
    inner_single = (in_single ^ first_single) & keep
    inside = ((in_double ^ first_double) | inner_single) & keep
    codes: dict[int, int] = {}  # code → the bytes it marks
    if first_single:
        codes[1] = (first_single | (live_singles & (in_single << 1) & ~in_single)) & keep
        codes[2] = doubles & inner_single
        codes[3] = (singles & inner_single) >> 1
    escape_all = _mark_controls(codes, data, rev, inside, keep)
    nonfinite = b"NaN" in data or b"Infinity" in data
    if nonfinite:
        codes[7] = _bits(rev, _N_BITS) & inside
        codes[8] = _bits(rev, _I_BITS) & inside
    codes = {code: mask for code, mask in codes.items() if mask}
    if codes:
        data = _xor_codes(data, codes, n)
    repaired = _restore((data[:end] if end >= 0 else data).decode("utf-8", "surrogateescape"), codes,
                        nonfinite, escape_all)
    if end < 0:
        return repaired, "", ""
    return repaired, chr(data[end]), data[end + 1 :].decode("utf-8")


def _escapes(data: bytes, rev: bytes, n: int, full: int) -> tuple[int, int]:
    """(the backslashes, the bytes they escape inside strings): the bytes after an odd run of
    backslashes, as simdjson finds them."""
    if b"\\" not in data:
        return 0, 0
    backslash = _bits(rev, _BACKSLASH_BITS)
    even = int.from_bytes(b"\x55" * (n // 8 + 2), "little") & ((full << 1) | 1)
    starts = backslash & ~(backslash << 1)
    even_starts = starts & even
    odd_starts = starts ^ even_starts
    escaped = ((((backslash + even_starts) & ~backslash) & ~even)
               | (((backslash + odd_starts) & ~backslash) & even)) & full
    return backslash, escaped


def _string_states(live_doubles: int, live_singles: int, backslash: int, escaped: int, n: int,
                   full: int) -> tuple[int, int]:
    """The state after each byte (bits: in a "-string, in a '-string), the quotes that may open a
    string being `live_doubles` and `live_singles`.

    A backslash outside strings right before a quote escapes nothing: that quote counts. Read again
    with those quotes counted; if then exactly the escaped quotes after a backslash outside strings
    are counted, that reading is the one (each quote was taken as it should be, given the states
    before it); else compose the states, which is exact in one reading."""
    live = live_doubles | live_singles
    in_double, in_single = _states_by_sums(live_doubles & ~escaped, live_singles & ~escaped, n, full)
    counted = (backslash & ~(in_double | in_single)) << 1 & escaped & live
    if not counted:
        return in_double, in_single
    in_double, in_single = _states_by_sums(live_doubles & ~(escaped ^ counted),
                                           live_singles & ~(escaped ^ counted), n, full)
    if (backslash & ~(in_double | in_single)) << 1 & escaped & live != counted:
        in_double, in_single = _states_by_composition(live_doubles, live_singles, escaped, n, full)
    return in_double, in_single


def _mark_controls(codes: dict[int, int], data: bytes, rev: bytes, inside: int, keep: int) -> bool:
    """Mark the control characters of the text in `codes`: those inside strings or those outside,
    whichever are fewer. True when the others must be escaped in the text as a whole (those marked
    being the ones outside, restored as they were)."""
    if not data.translate(None, _NOT_CONTROL):
        return False
    controls = _bits(rev, _CONTROL_BITS) & keep
    inside_controls, outside_controls = controls & inside, controls & ~inside
    if not inside_controls:
        return False
    if outside_controls and inside_controls.bit_count() <= outside_controls.bit_count():
        codes[_INSIDE_CONTROL] = inside_controls
        return False
    codes[_OUTSIDE_CONTROL] = outside_controls
    return True


def _xor_codes(data: bytes, codes: dict[int, int], n: int) -> bytes:
    """`data` with each byte that a code marks turned into its placeholder byte: one hex digit per byte
    (its code), made into one xor over the whole text."""
    planes = [0, 0, 0, 0]
    for code, mask in codes.items():
        for bit in range(4):
            if code >> bit & 1:
                planes[bit] |= mask
    digits = 0
    for bit, plane in enumerate(planes):
        if plane:
            digits |= int(format(plane, "b"), 16) << bit
    xor = int.from_bytes(format(digits, f"0{n}x")[::-1].encode("ascii").translate(_XOR), "little")
    return (int.from_bytes(data, "little") ^ xor).to_bytes(n, "little")


def _restore(repaired: str, codes: dict[int, int], nonfinite: bool, escape_all: bool) -> str:
    """The text read back with its placeholders: NaN/Infinity outside strings replaced, the control
    characters escaped when `escape_all`, then every placeholder turned into what it stands for."""
    if nonfinite:
        repaired = _replace_non_finite(repaired)
    if escape_all:
        repaired = _escape_control(repaired)
    for code in codes:
        if code in (_INSIDE_CONTROL, _OUTSIDE_CONTROL):
            for placeholder, final in _RESTORE[code]:
                if placeholder in repaired:
                    repaired = repaired.replace(placeholder, final)
        else:
            placeholder, final = _RESTORE[code]
            repaired = repaired.replace(placeholder, final)
    return repaired


def _replace_non_finite(text: str) -> str:
    """`text` with every NaN/Infinity word (and a `-` right before it) replaced by null; `text`
    itself when there is none."""
    for word, pattern in _NON_FINITE_PASSES:
        if word in text:
            text = pattern.sub("null", text)
    if "-NaN" in text or "-Infinity" in text:
        text = _SIGNED_NON_FINITE.sub("null", text)
    return text


def _repair_one_kind(text: str, quote: str, separator: str) -> str:
    """`repair_json` of a text without backslashes in which only `quote` may open a string."""
    pieces = text.split(quote)  # outside, inside, outside, inside, ..., outside
    tail = [pieces.pop()] if len(pieces) % 2 == 0 else []  # an odd quote count: the last never closes
    outside = separator.join(pieces[0::2] + tail)
    fixed_outside = _replace_non_finite(outside)
    insides = pieces[1::2]
    inside = separator.join(insides)
    fixed_inside = inside
    if quote == "'" and '"' in fixed_inside:
        fixed_inside = fixed_inside.replace('"', '\\"')
    fixed_inside = _escape_control(fixed_inside)
    if quote == '"' and fixed_outside is outside and fixed_inside is inside:
        return text
    if fixed_outside is not outside:
        outsides = fixed_outside.split(separator)
        if tail:
            tail = [outsides.pop()]
        pieces[0::2] = outsides
    if fixed_inside is not inside:
        pieces[1::2] = fixed_inside.split(separator)
    if tail:
        return '"'.join(pieces) + quote + tail[0]
    return '"'.join(pieces)


def _repair_split(parts: list[str | None], separator: str) -> str:
    """Repair a split of `_STRINGS` in which every string closes: [outside, kind, inside, closing
    quote, outside, ...]; each kind of piece in bulk. Only kinds can be None (a `'` string), so the
    outsides and insides are strings, and so is every piece once each kind is `"`."""
    outside = separator.join(parts[0::4])  # type: ignore[arg-type]  # outsides: never None
    fixed_outside = _replace_non_finite(outside)
    if fixed_outside is not outside:
        parts[0::4] = fixed_outside.split(separator)
    if len(parts) > 1:
        kinds = parts[1::4]
        insides = parts[2::4]
        double = separator.join(compress(insides, kinds))  # type: ignore[arg-type]  # insides: never None
        fixed_double = _escape_control(double)
        singles = list(compress(insides, map(not_, kinds)))
        if singles or fixed_double is not double:
            single = separator.join(singles)  # type: ignore[arg-type]  # insides: never None
            if "\\'" in single:
                single = single.replace("\\'", "'")
            if '"' in single:
                single = single.replace('"', '\\"')
            single = _escape_control(single)
            pick = {'"': iter(fixed_double.split(separator)), None: iter(single.split(separator))}.__getitem__
            parts[2::4] = list(map(next, map(pick, kinds)))
            parts[1::4] = parts[3::4] = ['"'] * len(kinds)
    return "".join(parts)  # type: ignore[arg-type]  # every kind is `"` here: no piece is None


def _escape_control(text: str) -> str:
    """`text` with its control characters written as JSON escapes; `text` itself when it has none."""
    if _CONTROL.search(text) is None:
        return text
    for char, escaped in _CONTROL_ESCAPES:
        if char in text:
            text = text.replace(char, escaped)
    return text
