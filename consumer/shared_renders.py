"""One `/metrics` render shared by the requests that ask for it at about the same time.

The render is synchronous on the event loop (it must be: a scrape's snapshot of what has been counted
is taken just before it, and the counting runs on the same loop). Rendered once per request, sixteen
scrapers arriving together held the loop for sixteen renders in a row, and `/healthz` (and the
renewal of partition ownership) waited behind them. So the requests for a format that arrive while
its render is pending (scheduled for the next turn of the loop) share it: whatever the number of
clients, a turn of the loop renders each format at most once for scrapes and once for other requests.
With `reuse_seconds` > 0 a render also answers the requests of that many seconds after it, which
bounds the CPU as well (at the price of answers up to that old).

A scrape's render keeps the snapshot `ScrapeObserver.scrape_started()` took just before it; every
scrape answered with it completes that snapshot, so a checkpoint still names only what the bytes a
scraper received show. A render made for other requests (a curl) takes no snapshot, and a scrape does
not share it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class ScrapeObserver(Protocol):
    def scrape_started(self) -> Any:
        """A render starts; what it returns is given back to `scrape_completed`."""

    def scrape_completed(self, token: Any) -> None:
        """The response of that render was written completely."""


class Renderer(Protocol):
    def render_exposition(self, open_metrics: bool) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Render:
    body: bytes
    snapshot: Any  # what `scrape_started` returned before it; None for a render made for no scrape
    at: float


class SharedRenders:
    """The renders of one registry, shared as the module says."""

    def __init__(self, metrics: Renderer, scrapes: ScrapeObserver | None, reuse_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._scrapes = scrapes
        self._reuse_seconds = reuse_seconds
        self._clock = clock
        self._last: dict[tuple[bool, bool], Render] = {}
        self._pending: dict[tuple[bool, bool], asyncio.Future[Render]] = {}
        self.renders = 0

    async def get(self, open_metrics: bool, scrape: bool) -> Render:
        """A render of the format (OpenMetrics or text) for a scrape (with a snapshot) or another request."""
        keys = [(open_metrics, True)] if scrape else [(open_metrics, False), (open_metrics, True)]
        for key in keys:
            last = self._last.get(key)
            if last is not None and self._clock() - last.at < self._reuse_seconds:
                return last
        for key in keys:
            pending = self._pending.get(key)
            if pending is not None:
                return await asyncio.shield(pending)  # a client that goes away must not cancel it for the others
        key = keys[0]
        pending = self._pending[key] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(self._render, key, pending)
        return await asyncio.shield(pending)

    def _render(self, key: tuple[bool, bool], pending: asyncio.Future[Render]) -> None:
        del self._pending[key]
        open_metrics, scrape = key
        try:
            snapshot = self._scrapes.scrape_started() if scrape and self._scrapes is not None else None
            render = Render(self._metrics.render_exposition(open_metrics), snapshot, self._clock())
        except Exception as exc:  # every request waiting for it fails with it (a 500 each)
            pending.set_exception(exc)
            return
        if self._reuse_seconds > 0:  # else no request after this turn of the loop may use it: not kept
            self._last[key] = render
        self.renders += 1
        pending.set_result(render)
