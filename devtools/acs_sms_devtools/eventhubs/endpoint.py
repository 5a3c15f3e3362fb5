"""``EventHubsEndpoint``: the local Event Hubs endpoint run in a background thread with its own loop.

Usable from synchronous code and from async tests alike: every control method is synchronous and
returns once the server's loop has done the work.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from . import codec
from .amqp import Message
from .hub import EventHub
from .server import EventHubsServer
from ..tls import server_context

__all__ = ["EventHubsEndpoint"]

T = TypeVar("T")


class EventHubsEndpoint:
    """A local AMQP Event Hubs endpoint for one hub.

    Args:
        hub: Event Hub name (the connection string's ``EntityPath``).
        partitions: number of partitions (ids ``"0"`` .. ``str(partitions - 1)``).
        consumer_groups: extra consumer groups (``$Default`` always exists).
        host: address to listen on.
        port: TCP port; 0 picks a free one, which is then kept for :meth:`restart`.
        max_events_per_partition: retention cap; the oldest events are dropped beyond it.
        idle_timeout_s: idle timeout announced to clients (they send heartbeats at half of it).
        sas_key: when set, clients must sign their SAS token with this key (as with the real service);
            :attr:`connection_string` then carries it. None (the default) accepts any key.
        websocket_port: also serve AMQP over WebSocket on this port (0: a free one; None, the
            default: not at all); see :attr:`websocket_connection_string`.
        certfile, keyfile: PEM server certificate and key: the WebSocket listener then speaks TLS
            (``wss://``), as Event Hubs does on 443 (``acs_sms_devtools.tls`` makes a pair for tests).
    """

    def __init__(
        self,
        hub: str = "eventhub",
        partitions: int = 4,
        consumer_groups: Iterable[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_events_per_partition: int = 100_000,
        idle_timeout_s: float = 120.0,
        sas_key: str | None = None,
        websocket_port: int | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        self.hub = EventHub(hub, partitions, tuple(consumer_groups), max_events_per_partition)
        self._server = EventHubsServer(self.hub, host, port, idle_timeout_s=idle_timeout_s, sas_key=sas_key,
                                       websocket_port=websocket_port,
                                       websocket_ssl=server_context(certfile, keyfile) if certfile else None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            self._thread = threading.Thread(target=run, name=f"eventhubs-emulator-{self.hub.name}", daemon=True)
            self._thread.start()
            ready.wait(10)
            self._loop = loop
        return self._loop

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def _run(self, func: Any, *args: Any) -> Any:
        async def wrapper() -> Any:
            return func(*args)

        return self._call(wrapper())

    def start(self) -> "EventHubsEndpoint":
        """Start listening (again, on the same port after a :meth:`stop`)."""
        self._call(self._server.start())
        return self

    def stop(self) -> None:
        """Stop listening and abort every client connection (stored events are kept)."""
        if self._loop is not None:
            self._call(self._server.stop())

    def restart(self, keep_data: bool = True) -> None:
        """Stop, optionally drop every stored event, and start again on the same port."""
        self.stop()
        if not keep_data:
            self._run(self.hub.clear)
        self.start()

    def close(self) -> None:
        """Stop the server and its thread."""
        if self._loop is None:
            return
        self.stop()
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        loop.close()

    def __enter__(self) -> "EventHubsEndpoint":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- connection details ----------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._server.host

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def running(self) -> bool:
        return self._server.running

    @property
    def fully_qualified_namespace(self) -> str:
        """``host:port``, the namespace the SDK (and the blob checkpoint store) sees."""
        return f"{self.host}:{self.port}"

    @property
    def connection_string(self) -> str:
        """Connection string for the azure-eventhub SDK (plain AMQP, emulator mode)."""
        return self._connection_string(f"{self.host}:{self.port}", emulator=True)

    def _connection_string(self, endpoint: str, emulator: bool) -> str:
        """Connection string for `endpoint` (host[:port]), with `UseDevelopmentEmulator=true` (no TLS) when `emulator`."""
        return (f"Endpoint=sb://{endpoint};SharedAccessKeyName=k;SharedAccessKey={self.sas_key or 'v'};"
                f"EntityPath={self.hub.name}" + (";UseDevelopmentEmulator=true" if emulator else ""))

    @property
    def websocket_port(self) -> int | None:
        """The port of the AMQP-over-WebSocket listener (None: there is none)."""
        return self._server.websocket.port if self._server.websocket is not None else None

    @property
    def websocket_address(self) -> str | None:
        """``sb://host:port`` of the WebSocket listener: the SDK's ``custom_endpoint_address``."""
        return f"sb://{self.host}:{self.websocket_port}" if self.websocket_port is not None else None

    @property
    def websocket_connection_string(self) -> str | None:
        """Connection string for the WebSocket listener (with ``custom_endpoint_address``): with TLS a
        namespace's (no ``UseDevelopmentEmulator``, which would turn TLS off), else the emulator's."""
        websocket = self._server.websocket
        if websocket is None:
            return None
        return self._connection_string(f"{self.host}/", emulator=websocket.ssl_context is None)

    @property
    def sas_key(self) -> str | None:
        """The key SAS tokens must be signed with (None: any key is accepted)."""
        return self._server.sas_key

    def require_key(self, key: str | None) -> None:
        """Require SAS tokens signed with `key` from now on (None: accept any); open connections keep
        the authorization they have."""
        self._run(setattr, self._server, "sas_key", key)

    @property
    def partition_ids(self) -> list[str]:
        return list(self.hub.partitions)

    # --- test controls -------------------------------------------------------------------------------
    def drop_connections(self) -> int:
        """Abruptly close every client socket (the server keeps listening); returns how many."""
        return int(self._run(self._server.drop_connections))

    def active_receivers(self, consumer_group: str | None = None, partition_id: str | None = None) -> int:
        """Number of attached partition receivers (optionally per consumer group / partition)."""
        return int(self._run(self._server.active_receivers, consumer_group, partition_id))

    def connection_count(self) -> int:
        """Number of open client connections."""
        return int(self._run(lambda: len(self._server.connections)))

    def event_counts(self) -> dict[str, int]:
        """Retained events per partition id."""
        return dict(self._run(lambda: {pid: len(p) for pid, p in self.hub.partitions.items()}))

    def event_count(self, partition_id: str | None = None) -> int:
        """Retained events in one partition, or in all of them."""
        counts = self.event_counts()
        return counts[str(partition_id)] if partition_id is not None else sum(counts.values())

    def events(self, partition_id: str) -> list[Message]:
        """The retained events of a partition, decoded (with their ``x-opt-*`` annotations)."""

        def collect() -> list[bytes]:
            return [b"".join(e.chunks) for e in self.hub.partitions[str(partition_id)].events()]

        return [codec.decode_message(raw) for raw in self._run(collect)]

    def publish(
        self,
        partition_id: str,
        bodies: Iterable[bytes],
        *,
        properties: Mapping[str, Any] | None = None,
        partition_key: str | None = None,
    ) -> int:
        """Store events directly (no AMQP client): one data section each, optional application
        properties shared by all. Fast way to preload a partition; returns how many were stored."""
        template: dict[str, Any] = {}
        if properties:
            template["application_properties"] = dict(properties)
        if partition_key is not None:
            template["message_annotations"] = {b"x-opt-partition-key": partition_key}
        encoded: dict[bytes, bytes] = {}  # equal bodies share one encoded message (and its memory)
        raws = []
        for body in bodies:
            raw = encoded.get(body)
            if raw is None:
                raw = encoded[body] = codec.encode_message(Message(data=[body], **template))
            raws.append(raw)

        def store() -> int:
            return len(self.hub.enqueue_raw(raws, partition=self.hub.partitions[str(partition_id)]))

        return int(self._run(store))
