"""What `SharedRenders` keeps between scrapes: a render outlives its turn of the loop only when
`http.render_reuse_seconds` lets a later request use it (an exposition can be megabytes)."""

from __future__ import annotations

import asyncio

from consumer.shared_renders import SharedRenders


class _Renderer:
    def render_exposition(self, open_metrics: bool) -> bytes:
        return b"om" if open_metrics else b"text"


async def test_without_reuse_time_no_render_is_kept() -> None:
    renders = SharedRenders(_Renderer(), None)
    await asyncio.gather(renders.get(True, False), renders.get(False, False))
    assert renders.renders == 2
    assert renders._last == {}  # noqa: SLF001 - what the object holds is the point


async def test_with_reuse_time_the_last_render_of_each_format_is_kept() -> None:
    renders = SharedRenders(_Renderer(), None, reuse_seconds=30)
    await asyncio.gather(renders.get(True, False), renders.get(False, False))
    assert sorted(render.body for render in renders._last.values()) == [b"om", b"text"]  # noqa: SLF001
