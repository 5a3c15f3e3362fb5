"""Limits on the connections of the HTTP server: how many may be open, and how long a request may take
to arrive.

aiohttp bounds how long a connection may stay idle (`keepalive_timeout`, also from its opening until a
first request), but not how long the headers of a request may take once they have begun, nor how many
connections are open: 300 connections that send half a request and stop held every file descriptor of
a process limited to 256. So each connection goes through a `Guard` (an asyncio protocol wrapped
around aiohttp's), which

- refuses (closes at once, unread) a connection past `max_connections` open ones, or past
  `max_per_client` open ones from its address;
- closes a connection whose request has not reached the application `header_timeout` seconds after
  the connection opened or, later, after the first bytes of a request arrived (the application tells
  it, `ConnectionLimits.request_arrived`; a request with a body must arrive whole in that time, as
  no endpoint here takes one);
- closes a connection whose client has not read its response for `send_timeout` seconds (the
  transport's buffer above its high-water mark all that time): a 60-byte request for `/metrics`
  that is never read would otherwise hold a whole exposition in memory for good.

Each refusal is counted by the caller's `refused(reason)`: `connection_limit`, `header_timeout`,
`send_timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from aiohttp import web


class Guard(asyncio.Protocol):
    """One connection: aiohttp's protocol for it (`inner`), the deadline of its next request, and the
    one of a response its client does not read."""

    def __init__(self, limits: ConnectionLimits, inner: asyncio.Protocol) -> None:
        self._limits = limits
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None  # the request's (header_timeout)
        # The response's, while the client does not read (send_timeout).
        self._stalled: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport subclasses
        if not self._limits.admit(stream, self):
            stream.abort()
            return
        self._transport = stream
        self._deadline = self._timer(self._limits.header_timeout, "header_timeout")
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        if self._deadline is None:  # the first bytes of a request
            self._deadline = self._timer(self._limits.header_timeout, "header_timeout")
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def pause_writing(self) -> None:
        """The transport holds more than its high-water mark of unsent response bytes."""
        if self._stalled is None:
            self._stalled = self._timer(self._limits.send_timeout, "send_timeout")
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._cancel_stalled()
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return  # refused: aiohttp never saw it
        self._cancel_timers()
        self._limits.release(self._transport)
        self._inner.connection_lost(exc)

    def request_arrived(self) -> None:
        """A request of this connection has reached the application: no deadline until the next one begins."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _cancel_stalled(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _cancel_timers(self) -> None:
        self.request_arrived()
        self._cancel_stalled()

    def _timer(self, seconds: float, reason: str) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(seconds, self._expire, reason)

    def _expire(self, reason: str) -> None:
        """A deadline passed: close the connection (its transport's buffer is freed with it)."""
        self._cancel_timers()
        if self._transport is not None and not self._transport.is_closing():
            self._limits.refused(reason)
            self._transport.abort()


def _client(transport: asyncio.BaseTransport) -> str:
    """The peer's address (kept in memory only, to count its connections: never logged)."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""


class ConnectionLimits:
    """The open connections of one server (`Guard`s): at most `max_connections`, and at most
    `max_per_client` from one address, so that one client (a leaking scraper, a hostile pod) cannot
    take every slot from kubelet's probes and Prometheus."""

    def __init__(self, max_connections: int, max_per_client: int, header_timeout: float, send_timeout: float,
                 refused: Callable[[str], None]) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.header_timeout = header_timeout
        self.send_timeout = send_timeout
        self.refused = refused
        self._open: dict[asyncio.BaseTransport, Guard] = {}
        self._per_client: dict[str, int] = {}  # at most max_connections entries

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, transport: asyncio.BaseTransport, guard: Guard) -> bool:
        client = _client(transport)
        if len(self._open) >= self.max_connections or self._per_client.get(client, 0) >= self.max_per_client:
            self.refused("connection_limit")
            return False
        self._open[transport] = guard
        self._per_client[client] = self._per_client.get(client, 0) + 1
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        if self._open.pop(transport, None) is None:
            return
        client = _client(transport)
        left = self._per_client.pop(client, 1) - 1
        if left > 0:
            self._per_client[client] = left

    def request_arrived(self, transport: asyncio.BaseTransport | None) -> None:
        """The application received a request on `transport` (`web.Request.transport`)."""
        guard = None if transport is None else self._open.get(transport)
        if guard is not None:
            guard.request_arrived()

    def protocol(self, make_inner: Callable[[], asyncio.Protocol]) -> Callable[[], Guard]:
        """The protocol factory for `loop.create_server`: aiohttp's protocol, guarded."""
        return lambda: Guard(self, make_inner())


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site whose connections go through `limits`."""

    __slots__ = ("_limits",)

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits) -> None:
        super().__init__(runner, host, port)
        self._limits = limits

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._limits.protocol(server), self._host, self._port,
                                                backlog=self._backlog)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
