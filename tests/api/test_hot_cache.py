"""The hot-read cache: single flight on a miss, stale-while-revalidate after the TTL."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from api.responses import HotCache


class Renders:
    """A render function whose bodies and blocking the test controls."""

    def __init__(self, *bodies: bytes | Exception) -> None:
        self.bodies = list(bodies)
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> bytes:
        self.calls += 1
        self.gate.wait(timeout=10)
        body = self.bodies.pop(0)
        if isinstance(body, Exception):
            raise body
        return body


def test_concurrent_misses_render_once_and_all_get_the_body() -> None:
    render = Renders(b"body")
    render.gate.clear()

    async def burst() -> list[bytes]:
        cache = HotCache(ttl_seconds=60)
        waiting = [asyncio.ensure_future(cache.body("k", render)) for _ in range(20)]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiting)  # all wait for the one render
        render.gate.set()
        return await asyncio.gather(*waiting)

    assert asyncio.run(burst()) == [b"body"] * 20
    assert render.calls == 1


def test_an_expired_entry_is_served_stale_while_one_refresh_runs() -> None:
    render = Renders(b"v1", b"v2")

    async def scenario() -> None:
        cache = HotCache(ttl_seconds=0.01, stale_seconds=60)
        assert await cache.body("k", render) == b"v1"
        await asyncio.sleep(0.02)  # past the TTL
        render.gate.clear()  # the refresh will block until released
        # Served at once from the stale entry: were the request waiting for the blocked
        # refresh, wait_for would time out.
        for _ in range(5):
            assert await asyncio.wait_for(cache.body("k", render), timeout=1) == b"v1"
        render.gate.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if await cache.body("k", render) == b"v2":
                break
        assert await cache.body("k", render) == b"v2"

    asyncio.run(scenario())
    assert render.calls == 2  # one refresh, however many requests saw the stale entry


def test_a_failed_refresh_keeps_the_stale_body_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    render = Renders(b"v1", RuntimeError("database down"), RuntimeError("still down"))

    async def scenario() -> None:
        cache = HotCache(ttl_seconds=0.2, stale_seconds=0.5)
        assert await cache.body("k", render) == b"v1"
        await asyncio.sleep(0.25)
        assert await cache.body("k", render) == b"v1"  # starts the refresh, which fails
        await asyncio.sleep(0.05)
        assert await cache.body("k", render) == b"v1"  # stale body; no retry before a TTL
        assert render.calls == 2
        await asyncio.sleep(0.5)  # past TTL + stale: a miss, rendered in the request
        with pytest.raises(RuntimeError, match="still down"):
            await cache.body("k", render)

    with caplog.at_level(logging.WARNING, logger="api.cache"):
        asyncio.run(scenario())
    assert render.calls == 3
    assert any("rendering the cached k failed" in r.getMessage() for r in caplog.records)


def test_a_zero_ttl_disables_the_cache() -> None:
    render = Renders(b"a", b"b")

    async def twice() -> list[bytes]:
        cache = HotCache(ttl_seconds=0)
        return [await cache.body("k", render), await cache.body("k", render)]

    assert asyncio.run(twice()) == [b"a", b"b"]
