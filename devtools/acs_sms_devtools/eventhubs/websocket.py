"""AMQP over WebSocket for the local endpoint: what Event Hubs serves on port 443.

The SDK's WebSocket transport (``TransportType.AmqpOverWebsocket``, aiohttp in the async client)
opens ``ws[s]://<host>:<port>/$servicebus/websocket`` with the subprotocol ``AMQPWSB10`` and carries
the AMQP byte stream in binary messages, split anywhere. This listener (aiohttp's web server, TLS when
given a context) unwraps those messages into the very :class:`~.server.Connection` that serves plain
TCP clients: the connection sees a transport (:class:`WebSocketTransport`) and ``data_received``
calls, nothing else changes.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

__all__ = ["WebSocketListener", "WebSocketTransport", "PATH", "SUBPROTOCOL"]

#: The path and subprotocol Event Hubs serves AMQP over WebSocket on (and the SDK asks for).
PATH = "/$servicebus/websocket"
SUBPROTOCOL = "AMQPWSB10"
#: Largest WebSocket message accepted (the AMQP max frame size is 1 MiB; the SDK sends one frame a message).
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
#: Queued outgoing bytes past which the connection is told to pause writing, and below which to resume.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024


class WebSocketTransport(asyncio.Transport):
    """An ``asyncio.Transport`` over one server-side WebSocket: each write becomes one binary message,
    sent in order by a writer task; the protocol is paused past `HIGH_WATER` queued bytes."""

    def __init__(self, ws: web.WebSocketResponse, protocol: asyncio.Protocol, peer: Any) -> None:
        super().__init__()
        self._ws = ws
        self._protocol = protocol
        self._peer = peer
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0
        self._paused = False
        self._closing = False
        self._writer = asyncio.get_running_loop().create_task(self._write_all(), name="eventhubs-ws-writer")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._peer if name == "peername" else default

    def is_closing(self) -> bool:
        return self._closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._queue.put_nowait(bytes(data))
        self._queued += len(data)
        if not self._paused and self._queued > HIGH_WATER:
            self._paused = True
            self._protocol.pause_writing()

    def close(self) -> None:
        """Send what is queued, then close the WebSocket."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)

    def abort(self) -> None:
        """Close at once, dropping what is queued."""
        self._closing = True
        self._writer.cancel()
        asyncio.get_running_loop().create_task(self._ws.close())

    async def _write_all(self) -> None:
        try:
            while (data := await self._queue.get()) is not None:
                await self._ws.send_bytes(data)
                self._queued -= len(data)
                if self._paused and self._queued < LOW_WATER:
                    self._paused = False
                    self._protocol.resume_writing()
        except (ConnectionError, RuntimeError):  # the client went away: the reader sees it too
            pass
        await self._ws.close()

    async def finished(self, timeout: float = 5.0) -> None:
        """After the client left: let the writer send what is queued (at most `timeout` seconds), stop it."""
        self.close()
        done, _ = await asyncio.wait([self._writer], timeout=timeout)
        if not done:
            self._writer.cancel()
        await asyncio.gather(self._writer, return_exceptions=True)


class WebSocketListener:
    """Serves `PATH` on host:port (TLS with `ssl_context`); each WebSocket gets a protocol from `factory`."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], host: str, port: int,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.factory = factory
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None

    @property
    def scheme(self) -> str:
        return "wss" if self.ssl_context is not None else "ws"

    async def start(self) -> None:
        """Listen (port 0 picks a free one, kept for later restarts)."""
        app = web.Application()
        app.router.add_get(PATH, self._serve)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]  # the bound socket tells the real port when 0 was asked for

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(SUBPROTOCOL,), max_msg_size=MAX_MESSAGE_BYTES, autoping=True)
        if ws.can_prepare(request).protocol != SUBPROTOCOL:
            raise web.HTTPBadRequest(text=f"AMQP over WebSocket needs the subprotocol {SUBPROTOCOL}\n")
        await ws.prepare(request)
        protocol = self.factory()
        transport = WebSocketTransport(ws, protocol, request.transport.get_extra_info("peername")
                                       if request.transport else None)
        protocol.connection_made(transport)
        error: Exception | None = None
        try:
            async for message in ws:
                if message.type == WSMsgType.BINARY:
                    protocol.data_received(message.data)
                    if transport.is_closing():
                        break
                elif message.type == WSMsgType.ERROR:
                    error = ws.exception()
                    break
        finally:
            protocol.connection_lost(error)
            await transport.finished()
        return ws
