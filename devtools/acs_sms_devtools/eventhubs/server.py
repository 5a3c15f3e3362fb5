"""The AMQP 1.0 server of the local Event Hubs endpoint (asyncio, one protocol object per socket).

Protocol handling follows what the azure-eventhub SDK's pyamqp client sends and expects (see the
package docstring). Frames other than event deliveries are encoded with the SDK's own codec.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import socket
import ssl
import time
import uuid
from base64 import b64encode
from hashlib import sha256
from typing import Any
from urllib.parse import parse_qs, quote_plus

from . import codec
from .amqp import (
    TYPE,
    VALUE,
    Accepted,
    AMQPError,
    AMQPTypes,
    AttachFrame,
    BeginFrame,
    CloseFrame,
    DetachFrame,
    DispositionFrame,
    EndFrame,
    FlowFrame,
    Message,
    OpenFrame,
    Properties,
    SASLMechanism,
    SASLOutcome,
    Source,
    Target,
)
from .hub import EventHub, Partition, StoredEvent, now_ms
from .websocket import WebSocketListener

__all__ = ["EventHubsServer", "LINK_STOLEN", "BATCH_MESSAGE_FORMAT"]

_LOG = logging.getLogger(__name__)

BATCH_MESSAGE_FORMAT = 0x80013700
LINK_STOLEN = b"amqp:link:stolen"
NOT_FOUND = b"amqp:not-found"
RESOURCE_LIMIT = b"amqp:resource-limit-exceeded"
UNAUTHORIZED = b"amqp:unauthorized-access"
ARGUMENT_OUT_OF_RANGE = b"com.microsoft:argument-out-of-range"
EPOCH = b"com.microsoft:epoch"
RUNTIME_METRIC = b"com.microsoft:enable-receiver-runtime-metric"
SELECTOR_FILTER = b"apache.org:selector-filter:string"
MAX_NON_EPOCH_RECEIVERS = 5

MAX_FRAME_SIZE = 1024 * 1024
MAX_MESSAGE_SIZE = 1024 * 1024
WINDOW = 2**31 - 1
UINT_MASK = 0xFFFFFFFF
HANDLE_MAX = 2**32 - 1
CHANNEL_MAX = 4999
SEND_CREDIT = 1000
PUMP_BYTES = 4 * 1024 * 1024  # per pump turn; the rest is scheduled so reads are not starved

_RECEIVE_PATH = re.compile(r"^(?:amqps?://[^/]+/)?([^/]+)/ConsumerGroups/([^/]+)/Partitions/([^/]+)/?$", re.I)
_SEND_PATH = re.compile(r"^(?:amqps?://[^/]+/)?([^/]+?)(?:/Partitions/([^/]+))?/?$", re.I)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _symbols(value: Any) -> list[bytes]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [bytes(v) for v in value]
    return [bytes(value)]


class Link:
    """Server side of one link (either direction)."""

    def __init__(self, session: "Session", name: bytes, handle: int, we_send: bool) -> None:
        self.session = session
        self.name = name
        self.handle = handle  # the client's handle; ours is the same number
        self.we_send = we_send
        self.closed = False
        # role: "reply" (we answer $cbs/$management), "request" (requests to $cbs/$management),
        # "events-in" (producer), "events-out" (partition receiver)
        self.kind = ""
        self.address = ""
        self.delivery_count = 0
        self.credit = 0
        # events-out
        self.partition: Partition | None = None
        self.consumer_group = ""
        self.epoch: int | None = None
        self.track_runtime = False
        self.next_sequence = 0
        self.pump_scheduled = False
        self.settled = True
        # events-in
        self.target_partition: Partition | None = None
        self.incoming: bytearray | None = None
        self.incoming_first: list[Any] | None = None

    @property
    def registry_key(self) -> tuple[str, str]:
        assert self.partition is not None
        return (self.consumer_group.lower(), self.partition.id)

    def wake(self) -> None:
        """Partition listener: schedule a delivery turn (coalesced)."""
        if not self.pump_scheduled and not self.closed:
            self.pump_scheduled = True
            asyncio.get_running_loop().call_soon(self.session.connection.pump, self)


class Session:
    """Server side of one session; our channel number equals the client's."""

    def __init__(self, connection: "Connection", channel: int, next_incoming_id: int) -> None:
        self.connection = connection
        self.channel = channel
        self.next_incoming_id = next_incoming_id
        self.next_outgoing_id = 0
        self.next_delivery_id = 0
        self.links: dict[int, Link] = {}
        self.reply_links: dict[str, Link] = {}
        self.pending_replies: dict[str, list[bytes]] = {}

    def flow_frame(self, link: Link | None = None, **link_fields: Any) -> FlowFrame:
        return FlowFrame(
            next_incoming_id=self.next_incoming_id,
            incoming_window=WINDOW,
            next_outgoing_id=self.next_outgoing_id,
            outgoing_window=WINDOW,
            handle=link.handle if link else None,
            delivery_count=link.delivery_count if link else None,
            link_credit=link.credit if link else None,
            available=link_fields.get("available"),
            drain=link_fields.get("drain"),
            echo=None,
            properties=None,
        )


class Connection(asyncio.Protocol):
    """One client connection: SASL, then AMQP frames."""

    def __init__(self, server: "EventHubsServer") -> None:
        self.server = server
        self.hub = server.hub
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._expect_header = True
        self._sasl_done = False
        self.sessions: dict[int, Session] = {}
        self.max_frame_size = 512
        self.closed = False
        self.paused = False
        self._out: list[bytes] = []
        self._last_read = time.monotonic()
        self._last_write = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._heartbeat_s: float | None = None
        self.authorized = False  # a valid SAS token was put on $cbs (only asked for when the server has a key)

    # --- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover
                pass
        self.server.connections.add(self)
        self._schedule_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer:
            self._timer.cancel()
        for session in list(self.sessions.values()):
            self._drop_session(session)
        self.sessions.clear()
        self.server.connections.discard(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for session in self.sessions.values():
            for link in session.links.values():
                if link.kind == "events-out":
                    link.wake()

    def data_received(self, data: bytes) -> None:
        self._last_read = time.monotonic()
        buf = self._buf
        buf += data
        pos = 0
        try:
            while not self.closed:
                avail = len(buf) - pos
                if self._expect_header:
                    if avail < 8:
                        break
                    header = bytes(buf[pos : pos + 8])
                    pos += 8
                    self._on_protocol_header(header)
                    continue
                if avail < 8:
                    break
                size = int.from_bytes(buf[pos : pos + 4], "big")
                if size < 8:
                    raise ValueError(f"invalid frame size {size}")
                if avail < size:
                    break
                frame = bytes(buf[pos : pos + size])
                pos += size
                self._on_frame(frame)
        except Exception:  # noqa: BLE001 - a broken client must not take the server down
            _LOG.exception("eventhubs emulator: closing connection after a protocol error")
            self._abort()
            return
        finally:
            if pos:
                del buf[:pos]
        self.flush()

    # --- output ----------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self._out.append(data)

    def send_frame(self, channel: int, performative: Any, frame_type: int = codec.FRAME_AMQP) -> None:
        self._out.append(codec.encode_performative(channel, performative, frame_type))

    def flush(self) -> None:
        if self._out and self.transport is not None and not self.closed:
            out, self._out = self._out, []
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            self._last_write = time.monotonic()
        else:
            self._out.clear()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- timers: heartbeats and idle timeout ---------------------------------------------------
    def _schedule_timer(self) -> None:
        interval = min(x for x in (self._heartbeat_s and self._heartbeat_s / 2, self.server.idle_timeout_s / 2, 5.0) if x)
        self._timer = asyncio.get_running_loop().call_later(interval, self._on_timer)

    def _on_timer(self) -> None:
        if self.closed:
            return
        now = time.monotonic()
        if self.server.idle_timeout_s and now - self._last_read > 2 * self.server.idle_timeout_s:
            _LOG.info("eventhubs emulator: closing idle connection")
            self.send_frame(0, CloseFrame(error=AMQPError(condition=b"amqp:resource-limit-exceeded",
                                                           description="idle timeout", info=None)))
            self.flush()
            if self.transport:
                self.transport.close()
            return
        if self._heartbeat_s and now - self._last_write >= self._heartbeat_s / 2:
            self.send(codec.EMPTY_FRAME)
            self.flush()
        self._schedule_timer()

    # --- protocol header and SASL -------------------------------------------------------------
    def _on_protocol_header(self, header: bytes) -> None:
        if header == codec.SASL_HEADER and not self._sasl_done:
            self.send(codec.SASL_HEADER)
            self.send_frame(
                0, SASLMechanism(sasl_server_mechanisms=[b"ANONYMOUS", b"PLAIN", b"MSSBCBS"]), codec.FRAME_SASL
            )
            self._expect_header = False
        elif header == codec.AMQP_HEADER:
            self.send(codec.AMQP_HEADER)
            self._expect_header = False
        else:
            self.send(codec.SASL_HEADER if not self._sasl_done else codec.AMQP_HEADER)
            self.flush()
            raise ValueError(f"unsupported protocol header {header!r}")

    def _on_sasl(self, code: int, fields: list[Any]) -> None:
        if code == 0x41:  # sasl-init: accept any mechanism and credentials
            self.send_frame(0, SASLOutcome(code=0, additional_data=None), codec.FRAME_SASL)
            self._sasl_done = True
            self._expect_header = True
        elif code == 0x43:  # sasl-response
            self.send_frame(0, SASLOutcome(code=0, additional_data=None), codec.FRAME_SASL)
            self._sasl_done = True
            self._expect_header = True

    # --- frames ------------------------------------------------------------------------------------
    def _on_frame(self, frame: bytes) -> None:
        size = len(frame)
        if size == 8:
            return  # heartbeat
        doff = frame[4]
        frame_type = frame[5]
        channel = int.from_bytes(frame[6:8], "big")
        code, fields = codec.decode_frame_body(memoryview(frame)[doff * 4 :])
        if frame_type == codec.FRAME_SASL:
            self._on_sasl(code, fields)
            return
        handler = self._HANDLERS.get(code)
        if handler is None:
            raise ValueError(f"unexpected performative {code:#x}")
        handler(self, channel, fields)

    def _on_open(self, channel: int, fields: list[Any]) -> None:
        self.max_frame_size = min(fields[2] or MAX_FRAME_SIZE, 16 * MAX_FRAME_SIZE)
        if fields[4]:
            # the client closes after idle-timeout without a frame from us: keep silences under half of it
            self._heartbeat_s = fields[4] / 1000 / 2
            if self._timer:
                self._timer.cancel()
            self._schedule_timer()
        self.send_frame(
            0,
            OpenFrame(
                container_id=f"eventhubs-emulator-{uuid.uuid4().hex[:8]}",
                hostname=None,
                max_frame_size=MAX_FRAME_SIZE,
                channel_max=CHANNEL_MAX,
                idle_timeout=int(self.server.idle_timeout_s * 1000) if self.server.idle_timeout_s else None,
                outgoing_locales=None,
                incoming_locales=None,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            ),
        )

    def _on_close(self, channel: int, fields: list[Any]) -> None:
        self.send_frame(0, CloseFrame(error=None))
        self.flush()
        self.closed = True
        for session in list(self.sessions.values()):
            self._drop_session(session)
        self.sessions.clear()
        if self.transport:
            self.transport.close()

    def _on_begin(self, channel: int, fields: list[Any]) -> None:
        session = Session(self, channel, fields[1])
        self.sessions[channel] = session
        self.send_frame(
            channel,
            BeginFrame(
                remote_channel=channel,
                next_outgoing_id=0,
                incoming_window=WINDOW,
                outgoing_window=WINDOW,
                handle_max=HANDLE_MAX,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            ),
        )

    def _on_end(self, channel: int, fields: list[Any]) -> None:
        session = self.sessions.pop(channel, None)
        if session is not None:
            self._drop_session(session)
            self.send_frame(channel, EndFrame(error=None))

    def _drop_session(self, session: Session) -> None:
        for link in list(session.links.values()):
            self._forget_link(link)
        session.links.clear()

    def _forget_link(self, link: Link) -> None:
        link.closed = True
        link.session.links.pop(link.handle, None)
        if link.kind == "events-out":
            self.server.unregister_receiver(link)
        elif link.kind == "reply":
            if link.session.reply_links.get(link.address) is link:
                del link.session.reply_links[link.address]

    # --- links -------------------------------------------------------------------------------------
    def _on_attach(self, channel: int, fields: list[Any]) -> None:
        session = self.sessions[channel]
        name, handle, client_is_receiver = fields[0], fields[1], fields[2]
        source = list(fields[5] or [])
        target = list(fields[6] or [])
        source_address = _text(source[0]) if source else None
        target_address = _text(target[0]) if target else None
        link = Link(session, name, handle, we_send=bool(client_is_receiver))
        desired = _symbols(fields[12])
        properties = fields[13] or {}
        offered: list[bytes] | None = None
        error: AMQPError | None = None
        if client_is_receiver:
            address = source_address or ""
            if address.endswith("$cbs") or address.endswith("$management"):
                link.kind = "reply"
                link.address = "$cbs" if address.endswith("$cbs") else "$management"
            else:
                link.kind = "events-out"
                error = self._unauthorized("Listen") or self._setup_receiver(link, address, source, properties)
                if RUNTIME_METRIC in desired:
                    link.track_runtime = True
                    offered = [RUNTIME_METRIC]
            link.settled = fields[3] != 0  # snd-settle-mode unsettled(0) -> send unsettled
        else:
            address = target_address or ""
            if address.endswith("$cbs") or address.endswith("$management"):
                link.kind = "request"
                link.address = "$cbs" if address.endswith("$cbs") else "$management"
            else:
                link.kind = "events-in"
                error = self._unauthorized("Send") or self._setup_sender(link, address)
            link.delivery_count = fields[9] or 0
        session.links[handle] = link
        self.send_frame(
            channel,
            AttachFrame(
                name=name,
                handle=handle,
                role=not client_is_receiver,
                send_settle_mode=fields[3],
                rcv_settle_mode=fields[4],
                source=Source(address=source_address, durable=None, expiry_policy=None, timeout=None,
                              dynamic=None, dynamic_node_properties=None, distribution_mode=None, filters=None,
                              default_outcome=None, outcomes=None, capabilities=None),
                target=Target(address=target_address, durable=None, expiry_policy=None, timeout=None,
                              dynamic=None, dynamic_node_properties=None, capabilities=None),
                unsettled=None,
                incomplete_unsettled=None,
                initial_delivery_count=0 if client_is_receiver else None,
                max_message_size=MAX_MESSAGE_SIZE,
                offered_capabilities=offered,
                desired_capabilities=None,
                properties=None,
            ),
        )
        if error is not None:
            self.detach(link, error)
            return
        if link.kind == "events-out":
            self.server.register_receiver(link)
        elif link.kind == "reply":
            session.reply_links[link.address] = link
            for reply in session.pending_replies.pop(link.address, []):
                self._send_reply(link, reply)
        else:
            link.credit = SEND_CREDIT
            self.send_frame(channel, session.flow_frame(link))

    def _unauthorized(self, claim: str) -> AMQPError | None:
        """The service's refusal of an entity link on a connection without a valid token."""
        if self.server.sas_key is None or self.authorized:
            return None
        return AMQPError(condition=UNAUTHORIZED, description=f"Unauthorized access. '{claim}' claim(s) are required "
                         "to perform this operation.", info=None)

    def _setup_receiver(self, link: Link, address: str, source: list[Any], properties: dict[Any, Any]) -> AMQPError | None:
        match = _RECEIVE_PATH.match(address)
        if not match:
            return AMQPError(condition=NOT_FOUND, description=f"unknown source {address!r}", info=None)
        hub_name, group, partition_id = match.groups()
        if hub_name.lower() != self.hub.name.lower():
            return AMQPError(condition=NOT_FOUND, description=f"The messaging entity '{hub_name}' could not be found.",
                             info=None)
        if not self.hub.has_consumer_group(group):
            return AMQPError(condition=NOT_FOUND, description=f"The consumer group '{group}' could not be found.",
                             info=None)
        partition = self.hub.partitions.get(partition_id)
        if partition is None:
            return AMQPError(condition=ARGUMENT_OUT_OF_RANGE,
                             description=f"The specified partition '{partition_id}' is invalid.", info=None)
        link.partition = partition
        link.consumer_group = group
        epoch = properties.get(EPOCH)
        link.epoch = int(epoch) if epoch is not None else None
        filters = source[7] if len(source) > 7 else None
        selector = None
        if isinstance(filters, dict):
            value = filters.get(SELECTOR_FILTER)
            if isinstance(value, (list, tuple)):  # a described value the codec did not unwrap
                value = value[-1]
            selector = _text(value)
        try:
            link.next_sequence = partition.start_sequence(selector)
        except ValueError as exc:
            return AMQPError(condition=b"amqp:invalid-field", description=str(exc), info=None)
        return self.server.check_epoch(link)

    def _setup_sender(self, link: Link, address: str) -> AMQPError | None:
        match = _SEND_PATH.match(address)
        if not match or match.group(1).lower() != self.hub.name.lower():
            return AMQPError(condition=NOT_FOUND, description=f"unknown target {address!r}", info=None)
        if match.group(2) is not None:
            partition = self.hub.partitions.get(match.group(2))
            if partition is None:
                return AMQPError(condition=ARGUMENT_OUT_OF_RANGE,
                                 description=f"The specified partition '{match.group(2)}' is invalid.", info=None)
            link.target_partition = partition
        return None

    def detach(self, link: Link, error: AMQPError | None) -> None:
        """Detach (close) a link from the server side, e.g. when stolen by a higher epoch."""
        if link.closed and link.handle not in link.session.links:
            return
        self._forget_link(link)
        self.send_frame(link.session.channel, DetachFrame(handle=link.handle, closed=True, error=error))

    def _on_detach(self, channel: int, fields: list[Any]) -> None:
        session = self.sessions.get(channel)
        if session is None:
            return
        link = session.links.get(fields[0])
        if link is None:
            return  # answer to our own detach
        self._forget_link(link)
        self.send_frame(channel, DetachFrame(handle=link.handle, closed=fields[1], error=None))

    def _on_flow(self, channel: int, fields: list[Any]) -> None:
        session = self.sessions.get(channel)
        if session is None or fields[4] is None:
            return
        link = session.links.get(fields[4])
        if link is None or not link.we_send:
            return
        # link-credit is relative to the receiver's view of delivery-count (RFC-1982 serial numbers)
        receiver_count = fields[5] if fields[5] is not None else 0
        credit = (receiver_count + (fields[6] or 0) - link.delivery_count) & UINT_MASK
        link.credit = credit if credit < 2**31 else 0
        if link.kind == "events-out":
            self.pump(link)
            if fields[8] and link.credit > 0:  # drain: use up the credit
                link.delivery_count = (link.delivery_count + link.credit) & UINT_MASK
                link.credit = 0
                self.send_frame(channel, session.flow_frame(link, drain=True))
        if fields[9]:  # echo
            self.send_frame(channel, session.flow_frame(link))

    def _on_disposition(self, channel: int, fields: list[Any]) -> None:
        return  # receivers' settlements need no action: events stay in the partition

    def _on_transfer(self, channel: int, fields: list[Any]) -> None:
        session = self.sessions[channel]
        session.next_incoming_id = (session.next_incoming_id + 1) & UINT_MASK
        link = session.links.get(fields[0])
        if link is None:
            return
        payload = fields[-1]
        if link.incoming is not None or fields[5]:
            if link.incoming is None:
                link.incoming = bytearray()
                link.incoming_first = fields
            link.incoming += payload
            if fields[5]:  # more
                return
            first = link.incoming_first or fields
            message = bytes(link.incoming)
            link.incoming = None
            link.incoming_first = None
        else:
            first = fields
            message = bytes(payload)
        link.delivery_count = (link.delivery_count + 1) & UINT_MASK
        link.credit -= 1
        error: AMQPError | None = None
        if link.kind == "request":
            self._on_request(session, link, message)
        elif link.kind == "events-in":
            error = self._on_events(link, message, first[3] or 0)
        if not first[4]:  # not settled by the sender: settle it
            state = Accepted() if error is None else None
            self.send_frame(
                channel,
                DispositionFrame(role=True, first=first[1], last=first[1], settled=True, state=state, batchable=None),
            )
        if link.credit < SEND_CREDIT // 2 and not link.closed:
            link.credit = SEND_CREDIT
            self.send_frame(channel, session.flow_frame(link))

    # --- events in ---------------------------------------------------------------------------------
    def _on_events(self, link: Link, message: bytes, message_format: int) -> AMQPError | None:
        if message_format == BATCH_MESSAGE_FORMAT:
            outer = codec.split_sections(message, keep_data=True)
            inner = outer.data
            key = outer.annotation(b"x-opt-partition-key")
        else:
            inner = [message]
            key = None
        partition = link.target_partition
        if partition is None and key:
            partition = self.hub.partition_for_key(key)
        self.hub.enqueue_raw(inner, partition=partition)
        return None

    # --- $cbs and $management --------------------------------------------------------------------
    def _on_request(self, session: Session, link: Link, payload: bytes) -> None:
        request = codec.decode_message(payload)
        props = request.application_properties or {}
        message_id = request.properties.message_id if request.properties else None
        if link.address == "$cbs":
            status, description = self.server.check_token(request.value)
            self.authorized = status == 202
            body = None
        elif self.server.sas_key is not None and not self.authorized:
            status, description, body = 401, "Unauthorized access. 'Listen' claim(s) are required.", None
        else:
            status, description, body = self.server.management(props)
        reply = Message(
            properties=Properties(message_id=uuid.uuid4(), correlation_id=message_id),
            application_properties={"status-code": status, "status-description": description},
            value=body,
        )
        encoded = codec.encode_message(reply)
        reply_link = session.reply_links.get(link.address)
        if reply_link is None:
            session.pending_replies.setdefault(link.address, []).append(encoded)
        else:
            self._send_reply(reply_link, encoded)

    def _send_reply(self, link: Link, payload: bytes) -> None:
        session = link.session
        delivery_id = session.next_delivery_id
        session.next_delivery_id = (delivery_id + 1) & UINT_MASK
        session.next_outgoing_id = (session.next_outgoing_id + 1) & UINT_MASK
        link.delivery_count = (link.delivery_count + 1) & UINT_MASK
        link.credit -= 1
        self.send(codec.encode_transfer(session.channel, link.handle, delivery_id, len(payload), settled=True))
        self.send(payload)

    # --- events out --------------------------------------------------------------------------------
    def pump(self, link: Link) -> None:
        """Deliver as many stored events to a partition receiver as its credit allows."""
        link.pump_scheduled = False
        if link.closed or self.closed or self.paused:
            return
        partition = link.partition
        assert partition is not None
        if link.credit <= 0 or link.next_sequence >= partition.next_sequence:
            return
        session = link.session
        channel = session.channel
        handle = link.handle
        settled = link.settled
        out = self._out
        max_payload = self.max_frame_size - codec.TRANSFER_OVERHEAD
        metrics = b""
        if link.track_runtime:
            metrics = codec.encode_runtime_metrics(
                partition.last_sequence, partition.last_offset, partition.last_enqueued_ms, now_ms()
            )
        written = 0
        begin = partition.begin_sequence
        if link.next_sequence < begin:
            link.next_sequence = begin  # fell out of retention
        get = partition.get
        encode_transfer = codec.encode_transfer
        while link.credit > 0 and link.next_sequence < partition.next_sequence:
            event: StoredEvent | None = get(link.next_sequence)
            if event is None:  # pragma: no cover - defensive
                break
            size = event.size + len(metrics)
            delivery_id = session.next_delivery_id
            session.next_delivery_id = (delivery_id + 1) & UINT_MASK
            if size <= max_payload:
                out.append(encode_transfer(channel, handle, delivery_id, size, settled=settled))
                out.extend(event.chunks)
                if metrics:
                    out.append(metrics)
                session.next_outgoing_id = (session.next_outgoing_id + 1) & UINT_MASK
            else:
                payload = b"".join(event.chunks) + metrics
                for start in range(0, size, max_payload):
                    piece = payload[start : start + max_payload]
                    more = start + max_payload < size
                    out.append(encode_transfer(channel, handle, delivery_id, len(piece), settled=settled, more=more))
                    out.append(piece)
                    session.next_outgoing_id = (session.next_outgoing_id + 1) & UINT_MASK
            link.delivery_count = (link.delivery_count + 1) & UINT_MASK
            link.credit -= 1
            link.next_sequence += 1
            written += size
            if written >= PUMP_BYTES:
                if link.credit > 0 and link.next_sequence < partition.next_sequence:
                    link.wake()
                break
        self.flush()

    _HANDLERS = {
        0x10: _on_open,
        0x11: _on_begin,
        0x12: _on_attach,
        0x13: _on_flow,
        0x14: _on_transfer,
        0x15: _on_disposition,
        0x16: _on_detach,
        0x17: _on_end,
        0x18: _on_close,
    }


class EventHubsServer:
    """The asyncio server: listens, owns the hub and the receiver registry (owner levels)."""

    def __init__(self, hub: EventHub, host: str = "127.0.0.1", port: int = 0, *, idle_timeout_s: float = 120.0,
                 sas_key: str | None = None, websocket_port: int | None = None,
                 websocket_ssl: ssl.SSLContext | None = None) -> None:
        """`websocket_port`: also serve AMQP over WebSocket there (0: a free port; None: not at all),
        over TLS with `websocket_ssl` (see .websocket)."""
        self.hub = hub
        self.websocket = (None if websocket_port is None
                          else WebSocketListener(lambda: Connection(self), host, websocket_port, websocket_ssl))
        #: When set, clients must put a SAS token signed with this key on $cbs (as the service does) before
        #: any entity link or management request; None accepts any credentials. May be changed while serving.
        self.sas_key = sas_key
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.connections: set[Connection] = set()
        self.receivers: dict[tuple[str, str], set[Link]] = {}
        self._server: asyncio.base_events.Server | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one, kept for later restarts)."""
        if self._server is not None:
            return
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.websocket is not None:
            await self.websocket.start()

    async def stop(self) -> None:
        """Stop listening and abort every connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.drop_connections()
        if self.websocket is not None:
            await self.websocket.stop()
        if server is not None:
            await server.wait_closed()
        await asyncio.sleep(0)

    def drop_connections(self) -> int:
        """Abruptly close every client socket (no AMQP close); returns how many were open."""
        connections = list(self.connections)
        for connection in connections:
            connection._abort()  # pylint: disable=protected-access
        return len(connections)

    # --- authorization ---------------------------------------------------------------------------
    def check_token(self, token: Any) -> tuple[int, str]:
        """(status, description) of a $cbs put-token, as the service answers it: 404 when the token's
        audience names a hub that does not exist; with a key required, 401 for a bad
        signature or an expired token; else 202."""
        text = token.decode("utf-8", "replace") if isinstance(token, bytes) else str(token or "")
        fields = {k: v[0] for k, v in parse_qs(text.removeprefix("SharedAccessSignature ")).items()}
        audience, signature, expiry = fields.get("sr"), fields.get("sig"), fields.get("se", "")
        missing = self._missing_entity(audience or "")
        if missing:
            return 404, f"The messaging entity '{missing}' could not be found."
        if self.sas_key is None:
            return 202, "Accepted"
        if not audience or not signature or not expiry.isdigit():
            return 401, "InvalidToken: the token is not a SharedAccessSignature with sr, sig and se."
        expected = b64encode(hmac.new(self.sas_key.encode("utf-8"), f"{quote_plus(audience)}\n{expiry}".encode("utf-8"),
                                      sha256).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            return 401, "InvalidSignature: The token has an invalid signature."
        if int(expiry) < time.time():
            return 401, "ExpiredToken: The token is expired."
        return 202, "Accepted"

    def _missing_entity(self, audience: str) -> str | None:
        """The audience (`sb://host/hub[/...]`) if its hub does not exist. (A missing consumer group is
        refused at the receiver's attach, `amqp:not-found`, not here.)"""
        path = [part for part in audience.split("://", 1)[-1].split("/")[1:] if part]
        return audience if path and path[0].lower() != self.hub.name.lower() else None

    # --- receivers and owner level ---------------------------------------------------------------
    def check_epoch(self, link: Link) -> AMQPError | None:
        """Apply the service's owner-level rules to a new receiver; steal or refuse."""
        existing = self.receivers.get(link.registry_key, set())
        epoch_links = [other for other in existing if other.epoch is not None]
        if link.epoch is not None:
            higher = [other.epoch for other in epoch_links if other.epoch is not None and other.epoch > link.epoch]
            if higher:
                return AMQPError(
                    condition=LINK_STOLEN,
                    description=(
                        f"Receiver with a higher epoch '{max(higher)}' already exists. Receiver with epoch "
                        f"'{link.epoch}' cannot be created. Make sure you are creating receiver with "
                        "increasing epoch value to ensure connectivity, or ensure all old epoch receivers "
                        "are closed or disconnected."
                    ),
                    info=None,
                )
            for other in list(existing):
                other.session.connection.detach(
                    other,
                    AMQPError(
                        condition=LINK_STOLEN,
                        description=(
                            f"New receiver with higher epoch of '{link.epoch}' is created hence current receiver "
                            f"with epoch '{other.epoch}' is getting disconnected."
                        ),
                        info=None,
                    ),
                )
                other.session.connection.flush()
            return None
        if epoch_links:
            return AMQPError(
                condition=LINK_STOLEN,
                description=f"Receiver with epoch '{epoch_links[0].epoch}' already exists; a receiver without "
                "epoch cannot be created.",
                info=None,
            )
        if len(existing) >= MAX_NON_EPOCH_RECEIVERS:
            return AMQPError(
                condition=RESOURCE_LIMIT,
                description=f"Exceeded the maximum number of allowed receivers per partition in a consumer group "
                f"which is {MAX_NON_EPOCH_RECEIVERS}.",
                info=None,
            )
        return None

    def register_receiver(self, link: Link) -> None:
        self.receivers.setdefault(link.registry_key, set()).add(link)
        assert link.partition is not None
        link.partition.listeners.add(link.wake)

    def unregister_receiver(self, link: Link) -> None:
        if link.partition is None:
            return
        links = self.receivers.get(link.registry_key)
        if links is not None:
            links.discard(link)
            if not links:
                del self.receivers[link.registry_key]
        link.partition.listeners.discard(link.wake)

    def active_receivers(self, consumer_group: str | None = None, partition_id: str | None = None) -> int:
        """Number of attached partition receivers, optionally for one consumer group / partition."""
        return sum(
            len(links)
            for (group, pid), links in self.receivers.items()
            if (consumer_group is None or group == consumer_group.lower())
            and (partition_id is None or pid == str(partition_id))
        )

    # --- management ----------------------------------------------------------------------------------
    def management(self, props: dict[Any, Any]) -> tuple[int, str, Any]:
        """Answer a ``$management`` READ request: (status code, description, body)."""
        operation = _text(props.get(b"operation"))
        kind = _text(props.get(b"type"))
        name = _text(props.get(b"name"))
        if operation != "READ":
            return 501, f"operation {operation!r} is not supported", None
        if name is None or name.lower() != self.hub.name.lower():
            return 404, f"The messaging entity '{name}' could not be found.", None
        if kind == "com.microsoft:eventhub":
            return 200, "OK", {
                "name": self.hub.name,
                "type": "com.microsoft:eventhub",
                "created_at": {TYPE: AMQPTypes.timestamp, VALUE: self.hub.created_ms},
                "partition_count": {TYPE: AMQPTypes.int, VALUE: self.hub.partition_count},
                "partition_ids": {
                    TYPE: AMQPTypes.array,
                    VALUE: [{TYPE: AMQPTypes.string, VALUE: pid} for pid in self.hub.partitions],
                },
            }
        if kind == "com.microsoft:partition":
            pid = _text(props.get(b"partition"))
            partition = self.hub.partitions.get(pid or "")
            if partition is None:
                return 404, f"The specified partition '{pid}' is invalid.", None
            empty = len(partition) == 0
            return 200, "OK", {
                "name": self.hub.name,
                "type": "com.microsoft:partition",
                "partition": partition.id,
                "begin_sequence_number": {
                    TYPE: AMQPTypes.long,
                    VALUE: partition.begin_sequence if not empty else max(partition.last_sequence, -1),
                },
                "last_enqueued_sequence_number": {TYPE: AMQPTypes.long, VALUE: partition.last_sequence},
                "last_enqueued_offset": partition.last_offset,
                "last_enqueued_time_utc": {TYPE: AMQPTypes.timestamp, VALUE: partition.last_enqueued_ms},
                "is_partition_empty": empty,
            }
        return 400, f"unknown management type {kind!r}", None
