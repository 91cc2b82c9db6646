"""Rate limits per key and route class, in memory and in Redis (shared across apps)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from limits import parse

from api.main import create_app
from api.rate_limit import RateLimits, storage_uri
from tests.api.helpers import OTHER_KEY, api_settings, limited_client, problem
from tests.databases import REDIS_URL, require_redis


def test_a_class_shares_one_counter_per_key_and_answers_429(api_database: str) -> None:
    with limited_client(api_database) as client:
        remaining = []
        for path in ("/api/crypto/runs", "/api/crypto/symbols", "/api/crypto/quality"):
            answer = client.get(path)
            assert answer.status_code == 200
            assert answer.headers["X-RateLimit-Limit"] == "3"
            assert "Retry-After" not in answer.headers  # only refusals say "come back later"
            reset = int(answer.headers["X-RateLimit-Reset"])  # whole epoch seconds
            assert time.time() < reset <= time.time() + 61  # the window's end, rounded up
            remaining.append(answer.headers["X-RateLimit-Remaining"])
        assert remaining == ["2", "1", "0"]
        limited = client.get("/api/crypto/latest")
        assert limited.status_code == 429 and problem(limited)["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) > 0
        for header in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert header in limited.headers, header
        # another class has its own counter; another key has its own too
        assert client.get("/api/crypto/candles/bitcoin", params={"limit": 1}).status_code == 200
        assert client.get("/api/crypto/runs", headers={"X-API-Key": OTHER_KEY}).status_code == 200


def test_forwarded_for_counts_only_behind_a_trusted_proxy(api_database: str) -> None:
    with limited_client(api_database) as client:  # no trusted proxy: the header is ignored
        for address in ("1.1.1.1", "2.2.2.2"):
            client.get("/health/live", headers={"X-Forwarded-For": address})
        spoofed = client.get("/health/live", headers={"X-Forwarded-For": "3.3.3.3"})
        assert spoofed.status_code == 429
    with limited_client(api_database, trusted_proxies="testclient") as client:
        for address in ("1.1.1.1", "2.2.2.2", "3.3.3.3"):
            answer = client.get(
                "/health/live", headers={"X-Forwarded-For": f"{address}, testclient"}
            )
            assert answer.status_code == 200, address
        for _ in range(2):
            client.get("/health/live", headers={"X-Forwarded-For": "1.1.1.1"})
        assert client.get("/health/live", headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 429


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_two_app_instances_share_one_limit_in_redis(api_database: str) -> None:
    require_redis()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = {"rate_limit_storage_uri": REDIS_URL, "rate_limit_key_prefix": prefix}
    first = limited_client(api_database, **settings)
    second = limited_client(api_database, **settings)
    with first, second:
        assert first.get("/api/crypto/runs").status_code == 200
        assert second.get("/api/crypto/runs").status_code == 200
        assert first.get("/api/crypto/runs").status_code == 200
        refused = second.get("/api/crypto/runs")
        assert refused.status_code == 429
        assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_key_guessing_is_limited_per_address(api_database: str) -> None:
    with limited_client(api_database, rate_limit_auth_failures="3/minute") as client:
        answers = [
            client.get("/api/crypto/runs", headers={"X-API-Key": f"guess-{i}"}).status_code
            for i in range(5)
        ]
        assert answers == [401, 401, 401, 429, 429]
        blocked = client.get("/api/crypto/runs", headers={"X-API-Key": "guess-9"})
        assert problem(blocked)["code"] == "too_many_auth_failures"
        assert int(blocked.headers["Retry-After"]) == 60
        # checked before the key is compared: the right key no longer tells itself apart
        assert client.get("/api/crypto/runs").status_code == 429


def _command_calls(client: Any, *names: str) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in names}


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_redis_limits_cost_one_round_trip_and_headers_match_redis(api_database: str) -> None:
    """Each limited request is one script call in Redis (no GET/TTL for the headers), and
    the headers it gets are Redis' own counter and expiry. (Counts are server-wide: only
    this module's tests use Redis, and they run one after another on one xdist worker.)"""
    import redis

    require_redis()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    direct: Any = redis.Redis.from_url(REDIS_URL)  # its sync/async union types get in the way
    with limited_client(
        api_database,
        rate_limit_storage_uri=REDIS_URL,
        rate_limit_key_prefix=prefix,
        rate_limit_default="50/minute",
    ) as client:
        client.get("/api/crypto/runs")  # loads the script once
        before = _command_calls(direct, "evalsha", "get", "ttl")
        answers = [client.get("/api/crypto/runs") for _ in range(5)]
        after = _command_calls(direct, "evalsha", "get", "ttl")
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["48", "47", "46", "45", "44"]
    assert after["evalsha"] - before["evalsha"] == 5
    assert after["get"] == before["get"] and after["ttl"] == before["ttl"]
    [key] = direct.keys(f"LIMITS:LIMITER/{prefix}/*")
    assert int(direct.get(key) or 0) == 6
    reset = float(answers[-1].headers["X-RateLimit-Reset"])
    assert 0 <= reset - (time.time() + direct.ttl(key)) <= 2  # TTL truncated, reset rounded up


def test_redis_uris_get_socket_timeouts_unless_they_set_their_own() -> None:
    assert storage_uri("memory://", 0.25) == "memory://"
    assert storage_uri("redis://h:6379/1", 0.25) == (
        "redis://h:6379/1?socket_timeout=0.25&socket_connect_timeout=0.25"
    )
    assert storage_uri("rediss://:pw@h:6380/0?socket_timeout=2", 0.5) == (
        "rediss://:pw@h:6380/0?socket_timeout=2&socket_connect_timeout=0.5"
    )


def test_limits_fall_back_to_memory_when_redis_is_unreachable(api_database: str) -> None:
    """Redis refusing connections: the same limits hold per process, the probes answer,
    and a wrong key is still a 401, never a 500."""
    with limited_client(api_database, rate_limit_storage_uri="redis://127.0.0.1:1/0") as client:
        answers = [client.get("/api/crypto/runs").status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        assert client.get("/health/live").status_code == 200
        assert client.get("/api/crypto/runs", headers={"X-API-Key": "wrong"}).status_code == 401
        # /health says so (and is itself limited: a fresh key's class has room)
        health = client.get("/health", headers={"X-API-Key": OTHER_KEY}).json()
        assert health["rate_limits"] == {
            "configured": "redis",
            "in_use": "memory",
            "degraded": True,
        }
        assert health["status"] == "degraded"


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_health_names_the_limit_storage_in_use(api_database: str) -> None:
    require_redis()
    with limited_client(api_database) as client:
        assert client.get("/health").json()["rate_limits"]["in_use"] == "memory"
    with limited_client(api_database, rate_limit_storage_uri=REDIS_URL) as client:
        client.get("/api/crypto/runs")
        state = client.get("/health").json()["rate_limits"]
        assert state == {"configured": "redis", "in_use": "redis", "degraded": False}


@contextmanager
def slow_redis(delay: float) -> Iterator[str]:
    """A TCP relay to the test Redis that holds every reply for `delay` seconds."""
    target = urlsplit(REDIS_URL)
    loop = asyncio.new_event_loop()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            target.hostname, target.port or 6379
        )

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, wait: float) -> None:
            while chunk := await src.read(65536):
                await asyncio.sleep(wait)
                dst.write(chunk)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, upstream_writer, 0), pipe(upstream_reader, writer, delay))

    server = loop.run_until_complete(asyncio.start_server(relay, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:

        async def shut() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_a_slow_redis_does_not_hold_up_other_requests(api_database: str) -> None:
    """Each limit check waits 0.3 s for Redis; ten requests at once still take about one
    wait, not ten: checks are awaited on the event loop, never block it. (slowapi's
    synchronous checks took ten waits, over 3 s, and stalled every other request.)"""
    require_redis()
    delay, requests = 0.3, 10
    with slow_redis(delay) as url:
        settings = api_settings(
            api_database,
            rate_limit_storage_uri=url,
            rate_limit_storage_timeout_seconds=5,
            rate_limit_key_prefix=f"t{uuid.uuid4().hex[:8]}",
        )
        app = create_app(settings)

        async def burst() -> tuple[list[int], float]:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                # the first burst opens the connections and loads the script
                for _ in range(2):
                    started = time.perf_counter()
                    calls = (c.get("/health/live") for _ in range(requests))
                    answers = await asyncio.gather(*calls)
                return [a.status_code for a in answers], time.perf_counter() - started

        statuses, elapsed = asyncio.run(burst())
    assert statuses == [200] * requests
    assert elapsed < requests * delay / 2, elapsed  # serialised checks would take >= 3 s
    assert app.state.api.rate_limits.state()["in_use"] == "redis"  # no fallback happened


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_a_redis_that_forgot_the_script_gets_it_again(api_database: str) -> None:
    """A restarted or flushed Redis has no scripts: the next hit loads it and counts."""
    import redis

    require_redis()
    direct: Any = redis.Redis.from_url(REDIS_URL)
    prefix = f"t{uuid.uuid4().hex[:8]}"
    with limited_client(
        api_database, rate_limit_storage_uri=REDIS_URL, rate_limit_key_prefix=prefix
    ) as client:
        assert client.get("/api/crypto/runs").headers["X-RateLimit-Remaining"] == "2"
        direct.script_flush()
        answer = client.get("/api/crypto/runs")
        assert answer.status_code == 200 and answer.headers["X-RateLimit-Remaining"] == "1"
        assert client.get("/health").json()["rate_limits"]["in_use"] == "redis"


def test_one_failed_batch_moves_the_redis_retry_on_once(api_database: str) -> None:
    """Ten hits in one pipeline to a Redis that refuses: one failure, retried in 1 s (not
    ten failures doubling the wait to 32 s)."""
    limits = RateLimits(api_settings(api_database, rate_limit_storage_uri="redis://127.0.0.1:1/0"))
    item = parse("5/minute")

    async def burst() -> list[bool]:
        verdicts = await asyncio.gather(
            *(limits.hit(item, "p", f"k{i}", "data") for i in range(10))
        )
        return [v.allowed for v in verdicts]

    assert asyncio.run(burst()) == [True] * 10  # counted in memory meanwhile
    assert limits.state()["in_use"] == "memory"
    assert limits._retry_at is not None  # noqa: SLF001 - the schedule under test
    assert limits._retry_at - time.monotonic() <= 1.0  # noqa: SLF001


@pytest.mark.parametrize("api_database", ["sqlite"], indirect=True)
def test_a_hit_left_behind_by_an_ended_event_loop_does_not_stall_the_next(
    api_database: str,
) -> None:
    require_redis()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    limits = RateLimits(
        api_settings(api_database, rate_limit_storage_uri=REDIS_URL, rate_limit_key_prefix=prefix)
    )
    item = parse("5/minute")

    async def abandoned() -> None:  # the loop ends before its pipeline is sent
        asyncio.ensure_future(limits.hit(item, prefix, "a", "data"))

    async def next_loop() -> int:
        verdict = await asyncio.wait_for(limits.hit(item, prefix, "b", "data"), 3)
        return verdict.remaining

    asyncio.run(abandoned())
    assert asyncio.run(next_loop()) == 4
    assert limits.state()["in_use"] == "redis"
