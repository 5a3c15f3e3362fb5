"""AMQP 1.0 encoding helpers for the local Event Hubs endpoint.

Everything that is not on the hot path is encoded with the SDK's own codec
(``azure.eventhub._pyamqp._encode`` / ``_decode``), so that the frames are exactly what the SDK's
strict pyamqp stack expects (every performative field present, typed values). The hot path (one
``transfer`` per delivered event) is pre-encoded by hand here in the same layout the SDK codec
produces (all 11 transfer fields written, fixed-width ``uint`` handles), which is verified by the
tests with ``decode_frame``.

Messages are never fully re-encoded: the sections of a stored event are kept as the raw bytes the
producer sent, only the message-annotations map is rebuilt (raw key/value pairs are spliced, so the
producer's annotation types survive) to add the ``x-opt-*`` system properties.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from .amqp import TYPE, VALUE, AMQPTypes, amqp_decode, amqp_encode

__all__ = [
    "AMQP_HEADER",
    "SASL_HEADER",
    "MessageSections",
    "decode_frame_body",
    "encode_performative",
    "encode_transfer",
    "encode_annotations_section",
    "encode_message",
    "split_sections",
    "rebuild_message_annotations",
    "EMPTY_FRAME",
]

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"
EMPTY_FRAME = b"\x00\x00\x00\x08\x02\x00\x00\x00"

FRAME_AMQP = 0
FRAME_SASL = 1

SECTION_HEADER = 0x70
SECTION_DELIVERY_ANNOTATIONS = 0x71
SECTION_MESSAGE_ANNOTATIONS = 0x72
SECTION_PROPERTIES = 0x73
SECTION_APPLICATION_PROPERTIES = 0x74
SECTION_DATA = 0x75
SECTION_FOOTER = 0x78

_DECODERS = amqp_decode._DECODE_BY_CONSTRUCTOR  # pylint: disable=protected-access
_FRAME_HEADER = struct.Struct(">IBBH")
# frame header + described(0x14) list8 of 11 fields: handle(uint) delivery-id(uint) tag(vbin8 4)
# message-format(uint0) settled(bool) more(bool) + 5 nulls (rcv-settle-mode state resume aborted batchable)
_TRANSFER = struct.Struct(">IBBH6sBIBIBBIBBB5s")
_TRANSFER_PREFIX = b"\x00\x53\x14\xc0\x19\x0b"
_TRANSFER_SIZE = _TRANSFER.size
_NULLS5 = b"\x40" * 5


def decode_frame_body(body: memoryview) -> tuple[int, list[Any]]:
    """Decode a frame body (after the 8-byte header and extended header) with the SDK codec.

    Returns the performative code and its positional fields (for ``transfer`` the payload is the
    last element, as in pyamqp).
    """
    return amqp_decode.decode_frame(body)


def encode_performative(channel: int, performative: Any, frame_type: int = FRAME_AMQP) -> bytes:
    """Encode a complete frame (header included) for a pyamqp performative named tuple."""
    header, body = amqp_encode.encode_frame(performative, frame_type=bytes((frame_type,)))
    # encode_frame's header carries channel 0; patch the channel in.
    return header[:6] + channel.to_bytes(2, "big") + (body or b"")


def encode_transfer(
    channel: int,
    handle: int,
    delivery_id: int,
    payload_len: int,
    *,
    settled: bool,
    more: bool = False,
) -> bytes:
    """Frame header + transfer performative for a payload of ``payload_len`` bytes that follows it.

    The delivery tag is the 4-byte big-endian delivery id (unique per link while unsettled).
    """
    return _TRANSFER.pack(
        _TRANSFER_SIZE + payload_len,
        2,
        FRAME_AMQP,
        channel,
        _TRANSFER_PREFIX,
        0x70,
        handle,
        0x70,
        delivery_id,
        0xA0,
        4,
        delivery_id,
        0x43,
        0x41 if settled else 0x42,
        0x41 if more else 0x42,
        _NULLS5,
    )


TRANSFER_OVERHEAD = _TRANSFER_SIZE


def _value_end(buf: memoryview, pos: int) -> int:
    """Offset just past the AMQP value starting at ``pos``."""
    rest, _ = _DECODERS[buf[pos]](buf[pos + 1 :])
    return len(buf) - len(rest)


def _decode_at(buf: memoryview, pos: int) -> tuple[int, Any]:
    rest, value = _DECODERS[buf[pos]](buf[pos + 1 :])
    return len(buf) - len(rest), value


class MessageSections:
    """The sections of one encoded AMQP message, as raw byte spans.

    Attributes:
        header: raw header section (or ``b""``).
        annotation_pairs: raw encoded key/value pairs of the message-annotations map, in order, with
            the decoded key (bytes) for each.
        bare: raw bytes of properties, application-properties, body and footer sections, in order.
        data: decoded data sections (only filled when ``keep_data`` was asked).
    """

    __slots__ = ("header", "annotation_pairs", "bare", "data")

    def __init__(self) -> None:
        self.header: bytes = b""
        self.annotation_pairs: list[tuple[Any, bytes]] = []
        self.bare: bytes = b""
        self.data: list[bytes] = []

    def annotation(self, key: bytes) -> Any:
        """Decoded value of message annotation ``key`` or ``None``."""
        for k, raw in self.annotation_pairs:
            if k == key:
                mv = memoryview(raw)
                end = _value_end(mv, 0)
                return _decode_at(mv, end)[1]
        return None


def _section_code(buf: memoryview, pos: int) -> tuple[int, int]:
    """Return (section code, offset of the section's value) for the described section at ``pos``."""
    if buf[pos] != 0x00:
        raise ValueError(f"not a described section at {pos}")
    ctor = buf[pos + 1]
    if ctor == 0x53:
        return buf[pos + 2], pos + 3
    if ctor == 0x80:
        return int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
    raise ValueError(f"unsupported section descriptor constructor {ctor:#x}")


def _map_pairs(buf: memoryview, pos: int) -> tuple[int, list[tuple[Any, bytes]]]:
    """Split the map value at ``pos`` into raw (decoded key, raw key+value bytes) pairs."""
    ctor = buf[pos]
    if ctor == 0x40:  # null
        return pos + 1, []
    if ctor == 0xC1:
        count = buf[pos + 2]
        cur = pos + 3
    elif ctor == 0xD1:
        count = int.from_bytes(buf[pos + 5 : pos + 9], "big")
        cur = pos + 9
    else:
        raise ValueError(f"annotations are not a map (constructor {ctor:#x})")
    pairs: list[tuple[Any, bytes]] = []
    for _ in range(count // 2):
        start = cur
        cur, key = _decode_at(buf, cur)
        cur = _value_end(buf, cur)
        pairs.append((key, bytes(buf[start:cur])))
    return cur, pairs


def split_sections(payload: bytes | memoryview, *, keep_data: bool = False) -> MessageSections:
    """Split an encoded AMQP message into its sections (delivery annotations are dropped)."""
    buf = memoryview(payload)
    out = MessageSections()
    bare_start: int | None = None
    pos = 0
    n = len(buf)
    while pos < n:
        code, vpos = _section_code(buf, pos)
        if code == SECTION_MESSAGE_ANNOTATIONS:
            end, out.annotation_pairs = _map_pairs(buf, vpos)
        else:
            if code == SECTION_DATA and keep_data:
                end, value = _decode_at(buf, vpos)
                out.data.append(value)
            else:
                end = _value_end(buf, vpos)
            if code == SECTION_HEADER:
                out.header = bytes(buf[pos:end])
            elif code >= SECTION_PROPERTIES and bare_start is None:
                bare_start = pos
        pos = end
    if bare_start is not None:
        out.bare = bytes(buf[bare_start:])
    return out


def _encode_typed(value: dict[str, Any]) -> bytes:
    out = bytearray()
    amqp_encode.encode_value(out, value)
    return bytes(out)


def _sym(key: bytes) -> bytes:
    return _encode_typed({TYPE: AMQPTypes.symbol, VALUE: key})


def encode_map_pairs(raw_pairs: Iterable[bytes], count: int) -> bytes:
    """Encode a map from already-encoded key/value pairs (``count`` = number of pairs)."""
    body = b"".join(raw_pairs)
    if len(body) + 1 < 256 and count * 2 < 256:
        return bytes((0xC1, len(body) + 1, count * 2)) + body
    return b"\xd1" + struct.pack(">II", len(body) + 4, count * 2) + body


_K_SEQ = _sym(b"x-opt-sequence-number")
_K_OFFSET = _sym(b"x-opt-offset")
_K_TIME = _sym(b"x-opt-enqueued-time")
_SYSTEM_KEYS = {b"x-opt-sequence-number", b"x-opt-offset", b"x-opt-enqueued-time"}


def _long(v: int) -> bytes:
    return b"\x81" + struct.pack(">q", v)


def _timestamp(ms: int) -> bytes:
    return b"\x83" + struct.pack(">q", ms)


def _string(s: str) -> bytes:
    data = s.encode("utf-8")
    if len(data) < 256:
        return bytes((0xA1, len(data))) + data
    return b"\xb1" + struct.pack(">I", len(data)) + data


def rebuild_message_annotations(
    pairs: list[tuple[Any, bytes]], *, sequence_number: int, offset: str, enqueued_ms: int
) -> bytes:
    """Encoded message-annotations section: the producer's pairs plus the Event Hubs system ones."""
    kept = [raw for key, raw in pairs if key not in _SYSTEM_KEYS]
    kept.append(_K_SEQ + _long(sequence_number))
    kept.append(_K_OFFSET + _string(offset))
    kept.append(_K_TIME + _timestamp(enqueued_ms))
    return b"\x00\x53\x72" + encode_map_pairs(kept, len(kept))


def encode_annotations_section(code: int, annotations: dict[bytes, dict[str, Any]]) -> bytes:
    """Encode an annotations section (``code`` 0x71 or 0x72) from typed values with the SDK codec."""
    out = bytearray()
    amqp_encode.encode_value(
        out,
        {
            TYPE: AMQPTypes.described,
            VALUE: (
                {TYPE: AMQPTypes.ulong, VALUE: code},
                amqp_encode.encode_annotations(annotations),  # type: ignore[arg-type]
            ),
        },
    )
    return bytes(out)


def encode_runtime_metrics(last_sequence: int, last_offset: str, last_enqueued_ms: int, now_ms: int) -> bytes:
    """Delivery-annotations section with the partition's last-enqueued runtime metrics."""
    return encode_annotations_section(
        SECTION_DELIVERY_ANNOTATIONS,
        {
            b"last_enqueued_sequence_number": {TYPE: AMQPTypes.long, VALUE: last_sequence},
            b"last_enqueued_offset": {TYPE: AMQPTypes.string, VALUE: last_offset},
            b"last_enqueued_time_utc": {TYPE: AMQPTypes.timestamp, VALUE: last_enqueued_ms},
            b"runtime_info_retrieval_time_utc": {TYPE: AMQPTypes.timestamp, VALUE: now_ms},
        },
    )


def encode_message(message: Any) -> bytes:
    """Encode a pyamqp ``Message`` with the SDK codec (used for CBS / management responses)."""
    out = bytearray()
    amqp_encode.encode_payload(out, message)
    return bytes(out)


def decode_message(payload: bytes | memoryview) -> Any:
    """Decode an encoded AMQP message into a pyamqp ``Message`` with the SDK codec."""
    return amqp_decode.decode_payload(memoryview(payload))
