"""Real time from the exchange to the client, every part a real process or server: the
WebSocket and REST doubles of Gemini -> `python -m etl.stream` -> the database (and Redis)
-> `python -m api.serve` -> an SSE client; once with Redis (published on receipt) and once
following the database, on SQLite and PostgreSQL (`api_database`). The worker's state
reaches `/health`, the new price `/latest`, and SIGTERM stops the worker cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis

from tests.api.helpers import KEY
from tests.api.sse_client import Frame, now_ms, opened
from tests.databases import require_redis
from tests.gemini_double import GeminiDouble, start, stop
from tests.gemini_ws_double import (
    GeminiWsDouble,
    candles,
    l2_snapshot,
    pause,
    send,
    served_in_thread,
    trade,
    trade_body,
)
from tests.processes import ROOT, command_env, launched_api

MINUTE_MS = 60_000
PRICE = 100.75  # the live trade's price: what every client must get
T = TypeVar("T")


@contextmanager
def stream_worker(database_url: str, log: Path, **environment: str) -> Iterator[None]:
    """`python -m etl.stream` as the `stream` service runs it; stopped with SIGTERM, which
    must end it cleanly (exit 0) within 15 s."""
    env = command_env(DATABASE_URL=database_url, LOG_LEVEL="INFO", **environment)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "etl.stream"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"the worker ignored SIGTERM:\n{log.read_text()}") from None
    text = log.read_text()
    assert code == 0, text
    assert "Traceback" not in text, text


def events_until(stream: Any, done: Any, timeout: float = 20.0) -> list[Frame]:
    deadline = time.monotonic() + timeout
    seen: list[Frame] = []
    while not done(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"not all events in {timeout}s: {[f.data for f in seen]}")
        seen.append(stream.next_event(timeout=left))
    return seen


def got_all(frames: list[Frame]) -> bool:
    prices = [f.json()["price"] for f in frames if f.event == "price"]
    return PRICE in prices and any(f.event == "candle" for f in frames)


@pytest.mark.parametrize("mode", ["redis", "database"])
def test_a_live_trade_and_bar_travel_from_the_exchange_to_clients(
    mode: str, api_database: str, tmp_path: Path
) -> None:
    minute = (now_ms() // MINUTE_MS - 2) * MINUTE_MS  # a closed minute, two ago
    # a volume of its own: the module's database is shared, and a bar stored unchanged by
    # an earlier test is no update (the database follower would rightly send nothing)
    bar = [minute, 100.0, 101.0, 99.0, PRICE, 1 + uuid.uuid4().int % 10_000 / 100]
    snapshot = l2_snapshot(
        "BTCUSD",
        [("99.5", "2")],
        [("100.5", "1")],
        [trade_body("BTCUSD", 1, now_ms() - 5_000, "100.25")],
    )
    ws = GeminiWsDouble(heartbeat_seconds=0.2)
    # the client is connected before the worker starts; the pause lets the API's database
    # follower or Redis subscriber see the worker's first rows before the live ones
    ws.script(
        send(snapshot),
        pause(1.0),
        send(trade("BTCUSD", 2, now_ms(), str(PRICE))),
        send(candles("BTCUSD", bar)),
    )
    rest = start(GeminiDouble(now_ms=now_ms()))
    rest.overrides["/v2/candles/btcusd/1m"] = []
    channel = f"e2e-{uuid.uuid4().hex[:8]}"
    redis_url = require_redis() if mode == "redis" else ""
    api_env = {
        "API_KEY": KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "STREAM_REDIS_URL": redis_url,
        "STREAM_REDIS_CHANNEL": channel,
        # with Redis, nothing may come from the database: it is polled once a minute
        "STREAM_POLL_SECONDS": "60" if mode == "redis" else "0.1",
        "CACHE_TTL_SECONDS": "60",  # /latest must be invalidated, not expire
    }
    try:
        with (
            served_in_thread(ws),
            launched_api(api_database, tmp_path / "api.log", **api_env) as base,
            # a loaded machine may start the worker slowly: the deadline is events_until's
            opened(base, "?symbols=BTC", read=20.0) as client,
        ):
            if mode == "redis":
                wait_for_subscriber(redis_url, channel)
            keyed = {"X-API-Key": KEY}
            with stream_worker(
                api_database,
                tmp_path / "worker.log",
                GEMINI_WS_URL=ws.url,
                GEMINI_BASE_URL=rest.url,
                COIN_IDS="bitcoin",
                STREAM_REDIS_URL=redis_url,
                STREAM_REDIS_CHANNEL=channel,
                STREAM_BATCH_SECONDS="0.2",
                STREAM_REPORT_SECONDS="0.2",
            ):
                frames = events_until(client, got_all)
                # the worker reports every 0.2 s; a price published on receipt comes first
                health = eventually(
                    lambda: httpx.get(f"{base}/health", headers=keyed, timeout=5).json(),
                    lambda body: (body["stream"] or {}).get("messages", 0) >= 3,
                )
                # the worker's write, then the cache's invalidation: the one fresh venue's
                # mid as the price, and with ?source= the venue's own last trade
                latest = eventually(
                    lambda: httpx.get(
                        f"{base}/api/crypto/latest?symbols=BTC", headers=keyed, timeout=5
                    ).json()["data"][0],
                    lambda row: row["method"] == "single_source_fallback",
                )
                pinned = eventually(
                    lambda: httpx.get(
                        f"{base}/api/crypto/latest?symbols=BTC&source=gemini",
                        headers=keyed,
                        timeout=5,
                    ).json()["data"][0],
                    lambda row: row["price"] == PRICE,
                )
            stopped = httpx.get(f"{base}/health", headers=keyed, timeout=5).json()
    finally:
        stop(rest)
    [price] = [f.json() for f in frames if f.event == "price" and f.json()["price"] == PRICE]
    assert (price["symbol"], price["source"]) == ("BTCUSD", "gemini")
    assert (price["bid"], price["ask"]) == (99.5, 100.5)  # the book the worker keeps
    candle = [f.json() for f in frames if f.event == "candle"][-1]
    assert (candle["interval"], candle["close"], candle["closed"]) == ("1m", PRICE, True)
    assert candle["open_time"] == datetime.fromtimestamp(minute / 1000, UTC).isoformat()
    assert (health["stream"]["state"], health["stream"]["connected"]) == ("connected", True)
    assert health["stream"]["messages"] >= 3
    assert (latest["price"], latest["source"], latest["sources_used"]) == (
        100.0,
        "gemini",
        ["gemini"],
    )
    assert (latest["bid"], latest["ask"]) == (99.5, 100.5)
    assert (pinned["price"], pinned["method"]) == (PRICE, "source")
    assert stopped["stream"]["state"] == "stopped"


def wait_for_subscriber(url: str, channel: str) -> None:
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            counts: list[tuple[bytes, int]] = client.pubsub_numsub(channel)  # type: ignore[assignment]
            if dict(counts).get(channel.encode(), 0) >= 1:
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise AssertionError(f"the API did not subscribe to {channel}")


def eventually(fetch: Callable[[], T], ok: Callable[[T], bool], timeout: float = 5.0) -> T:
    """`fetch()`'s first value that is `ok` within `timeout` s, else its last value."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = fetch()
    return value
