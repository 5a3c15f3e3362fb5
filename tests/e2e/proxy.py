"""A test-controlled TCP proxy on 127.0.0.1 (asyncio in a background thread), to take a service away.

Modes (`proxy.mode = ...`, effective at once, synchronous):

- ``pass``: connections are accepted and piped both ways to the target.
- ``refuse``: the listening socket is closed (connects get ECONNREFUSED) and every open connection is
  reset — what a stopped storage account looks like.
- ``blackhole``: connections are accepted but no byte goes anywhere, and open connections stall —
  what a network partition looks like (clients only learn from their own timeouts). Connections held
  during a blackhole are closed when the mode changes, never resumed with stale bytes.

The port is kept across modes, so clients configured with `proxy.port` see one address throughout.
`proxy.delay = seconds` (any mode that pipes) holds every chunk that long before forwarding it, both
ways: a slow service that still answers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

MODES = ("pass", "refuse", "blackhole")


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = host
        if port == 0:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = sock.getsockname()[1]
        self.port = port
        self._mode = "pass"
        self.delay = 0.0  # seconds each forwarded chunk waits
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._thread.start()
        self.accepted = 0

    # --- control (from any thread) -------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> TcpProxy:
        self._call(self._listen())
        return self

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        assert mode in MODES, mode
        self._call(self._set_mode(mode))

    def close(self) -> None:
        self._call(self._set_mode("refuse"))
        self._call(self._end_tasks())  # else each pending pipe is "destroyed but pending" at exit
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # --- inside the loop ---------------------------------------------------------------------------
    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)

    async def _end_tasks(self) -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _set_mode(self, mode: str) -> None:
        previous, self._mode = self._mode, mode
        if previous != mode and mode != "blackhole":
            # Whatever was open (piping, or stalled in a blackhole) is cut: no stale bytes later.
            # Entering a blackhole leaves open connections in place: their pipes stall.
            for client, upstream in list(self._connections):
                _abort(client)
                if upstream is not None:
                    _abort(upstream)
            self._connections.clear()
        if mode == "refuse":
            if self._server is not None:
                self._server.close()
                self._server = None
        else:
            await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._mode == "refuse":
            _abort(writer)
            return
        if self._mode == "blackhole":
            entry: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
            self._connections.add(entry)
            return  # held open, never read or answered, until the mode changes
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)
            return
        entry = (writer, up_writer)
        self._connections.add(entry)
        await asyncio.gather(self._pipe(reader, up_writer, entry), self._pipe(up_reader, writer, entry),
                             return_exceptions=True)
        self._connections.discard(entry)
        _abort(writer)
        _abort(up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    entry: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            while self._mode == "blackhole" and entry in self._connections:
                await asyncio.sleep(0.05)  # stalled: bytes neither forwarded nor answered
            if entry not in self._connections:
                break
            if self.delay > 0:
                await asyncio.sleep(self.delay)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            try:
                writer.write_eof()
            except OSError:
                pass


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
