"""The hot-read cache: single flight on a miss, stale-while-revalidate after the TTL."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.responses import HotCache, etag_of
from tests.api.helpers import KEY, api_settings


class Clock:
    """A monotonic clock the test moves by hand (no real sleeps for TTLs)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle(task_done: Callable[[], bool]) -> None:
    """Let background refreshes run: yield to the loop until `task_done` or 5 s pass."""
    for _ in range(500):
        if task_done():
            return
        await asyncio.sleep(0.01)


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
        waiting = [asyncio.ensure_future(cache.get("k", render)) for _ in range(20)]
        await asyncio.sleep(0.05)
        assert not any(w.done() for w in waiting)  # all wait for the one render
        render.gate.set()
        return [answer.body for answer in await asyncio.gather(*waiting)]

    assert asyncio.run(burst()) == [b"body"] * 20
    assert render.calls == 1


def test_an_expired_entry_is_served_stale_while_one_refresh_runs() -> None:
    render = Renders(b"v1", b"v2")

    async def scenario() -> None:
        clock = Clock()
        cache = HotCache(ttl_seconds=10, stale_seconds=60, clock=clock)
        assert (await cache.get("k", render)).body == b"v1"
        clock.now += 11  # past the TTL
        render.gate.clear()  # the refresh will block until released
        # Served at once from the stale entry: were the request waiting for the blocked
        # refresh, wait_for would time out.
        for _ in range(5):
            assert (await asyncio.wait_for(cache.get("k", render), timeout=1)).body == b"v1"
        render.gate.set()
        await settle(lambda: render.calls == 2 and not cache._refreshing)
        assert (await cache.get("k", render)).body == b"v2"

    asyncio.run(scenario())
    assert render.calls == 2  # one refresh, however many requests saw the stale entry


def test_a_failed_refresh_keeps_the_stale_body_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    render = Renders(b"v1", RuntimeError("database down"), RuntimeError("still down"))

    async def scenario() -> None:
        clock = Clock()
        cache = HotCache(ttl_seconds=10, stale_seconds=20, clock=clock)
        assert (await cache.get("k", render)).body == b"v1"
        clock.now += 11
        assert (await cache.get("k", render)).body == b"v1"  # starts the refresh, which fails
        await settle(lambda: not cache._refreshing)
        clock.now += 1
        assert (await cache.get("k", render)).body == b"v1"  # stale body; no retry before a TTL
        assert render.calls == 2
        clock.now += 20  # past TTL + stale: a miss, rendered in the request
        with pytest.raises(RuntimeError, match="still down"):
            await cache.get("k", render)

    with caplog.at_level(logging.WARNING, logger="api.cache"):
        asyncio.run(scenario())
    assert render.calls == 3
    assert any("rendering the cached k failed" in r.getMessage() for r in caplog.records)


def test_a_zero_ttl_disables_the_cache() -> None:
    render = Renders(b"a", b"b")

    async def twice() -> list[bytes]:
        cache = HotCache(ttl_seconds=0)
        return [(await cache.get("k", render)).body for _ in range(2)]

    assert asyncio.run(twice()) == [b"a", b"b"]


def test_answers_carry_their_etag_and_the_cache_is_bounded_in_bytes() -> None:
    async def scenario() -> None:
        cache = HotCache(ttl_seconds=60, max_bytes=16 * 1024)
        small = await cache.get("small", lambda: b"x" * 100)
        assert small.etag == etag_of(b"x" * 100)
        assert await cache.get("small", lambda: b"other") == small  # cached
        big = Renders(b"y" * 2000, b"z" * 2000)  # over 1/16 of the budget: served, not kept
        assert (await cache.get("big", big)).body == b"y" * 2000
        assert (await cache.get("big", big)).body == b"z" * 2000
        for i in range(40):  # 40 x ~900 bytes: the oldest entries make room
            await cache.get(f"k{i}", Renders(bytes([i]) * 640))
        assert (await cache.get("small", lambda: b"evicted")).body == b"evicted"
        assert (await cache.get("k39", lambda: b"nope")).body == bytes([39]) * 640

    asyncio.run(scenario())


def test_cached_routes_answer_like_uncached_ones(api_database: str) -> None:
    """With the cache on, every cached route answers exactly what a cache-off app answers,
    errors are not cached, and the ETag still gives a 304."""
    paths = [
        "/api/crypto/latest",
        "/api/crypto/metrics?symbols=ETH",
        "/api/crypto/symbols",
        "/api/crypto/candles/bitcoin?interval=1w&limit=20",
    ]
    off = TestClient(create_app(api_settings(api_database)), raise_server_exceptions=False)
    on = TestClient(
        create_app(api_settings(api_database, cache_ttl_seconds=60)), raise_server_exceptions=False
    )
    with off, on:
        for client in (off, on):
            client.headers["X-API-Key"] = KEY
        for path in paths:
            expected = off.get(path)
            first, second = on.get(path), on.get(path)
            assert expected.status_code == first.status_code == second.status_code == 200, path
            if "latest" not in path and "metrics" not in path:  # those carry age_seconds
                assert first.json() == expected.json(), path
            assert (
                second.content == first.content and second.headers["ETag"] == first.headers["ETag"]
            )
            assert on.get(path, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
        for _ in range(2):  # a 404 is answered each time, never cached as a body
            assert on.get("/api/crypto/candles/nosuchcoin").status_code == 404
