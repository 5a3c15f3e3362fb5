"""Helpers for the local Event Hubs endpoint tests (real SDK clients, bounded waits)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from azure.eventhub import EventData, EventHubConsumerClient


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (test helper, not a hot path)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


async def async_wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


class SyncReceiver:
    """Runs the sync ``EventHubConsumerClient.receive`` in a thread and records events and errors."""

    def __init__(
        self,
        connection_string: str,
        *,
        consumer_group: str = "$Default",
        client_options: dict[str, Any] | None = None,
        **receive_kwargs: Any,
    ) -> None:
        self.client = EventHubConsumerClient.from_connection_string(
            connection_string, consumer_group=consumer_group, **(client_options or {})
        )
        self.events: list[EventData] = []
        self.contexts: list[Any] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._kwargs = receive_kwargs
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.client.receive(on_event=self._on_event, on_error=self._on_error, **self._kwargs)

    def _on_event(self, context: Any, event: EventData | None) -> None:
        if event is not None:
            with self._lock:
                self.events.append(event)
                self.contexts.append(context)

    def _on_error(self, context: Any, error: BaseException) -> None:
        self.errors.append(error)

    def start(self) -> "SyncReceiver":
        self._thread.start()
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EventData]:
        wait_until(lambda: len(self.events) >= count, timeout)
        return list(self.events)

    def close(self) -> None:
        self.client.close()
        self._thread.join(15)
        assert not self._thread.is_alive(), "the SDK consumer did not stop"

    def __enter__(self) -> "SyncReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def receive_sync(connection_string: str, count: int, timeout: float = 10.0, **kwargs: Any) -> list[EventData]:
    """Receive ``count`` events (or what arrives within ``timeout``) with the sync SDK consumer."""
    with SyncReceiver(connection_string, **kwargs) as receiver:
        return receiver.wait_for(count, timeout)


def close_all(receivers: list[SyncReceiver]) -> None:
    """Close sync receivers in parallel (each SDK close takes most of a second)."""
    threads = [threading.Thread(target=r.close) for r in receivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
