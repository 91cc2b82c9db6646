"""A Server-Sent Events reader over httpx, for tests against a real server: the Starlette
TestClient buffers a streamed body, so it cannot follow an endless stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine, insert, select

from etl.db.models import Asset, Candle, Ticker
from tests.api.helpers import KEY


@dataclass
class Frame:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next_frame(self, timeout: float = 5.0) -> Frame:
        """The next event or comment block; fails after `timeout` (the client's read
        timeout bounds each line, the deadline the whole frame)."""
        deadline = time.monotonic() + timeout
        frame, seen = Frame(), False
        for line in self._lines:
            if time.monotonic() > deadline:
                break
            if not line:
                if seen:
                    return frame
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if not name:
                frame.comments.append(value)
            elif name == "event":
                frame.event = value
            elif name == "id":
                frame.id = value
            elif name == "data":
                frame.data += value
        raise AssertionError(f"no complete frame in {timeout}s (last: {frame})")

    def rest(self) -> list[str]:
        """The lines left until the server ends the stream (the read timeout bounds it)."""
        return list(self._lines)

    def next_event(self, timeout: float = 5.0) -> Frame:
        """The next frame that is an event (heartbeat comments skipped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            frame = self.next_frame(left)
            if frame.data:
                return frame
        raise AssertionError(f"no event in {timeout}s")


@contextmanager
def opened(
    base: str, query: str = "", *, headers: dict[str, str] | None = None, read: float = 5.0
) -> Iterator[Stream]:
    """A stream of `base`, keyed unless `headers` says otherwise; the response must be 200.
    `read`: the longest silence between lines (heartbeats come every 15 s)."""
    sent = {"X-API-Key": KEY} if headers is None else headers
    timeout = httpx.Timeout(5.0, read=read)
    with (
        httpx.Client(timeout=timeout) as client,
        client.stream("GET", f"{base}/api/crypto/stream{query}", headers=sent) as response,
    ):
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"{response.status_code}: {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


def asset_id(engine: Engine, symbol: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(Asset.id).where(Asset.symbol == symbol)).scalar_one())


def now_ms() -> int:
    return int(time.time() * 1000)


def add_tickers(engine: Engine, symbol: str, prices: list[float], *, at_ms: int) -> None:
    """One ticker row per price, 1 ms apart from `at_ms`, in one transaction."""
    rows = [
        {
            "asset_id": asset_id(engine, symbol),
            "source": "test",
            "observed_at": datetime.fromtimestamp((at_ms + i) / 1000, UTC),
            "bid": price - 0.5,
            "ask": price + 0.5,
            "last": price,
        }
        for i, price in enumerate(prices)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Ticker), rows)


def add_candle(engine: Engine, symbol: str, open_ms: int, close: float) -> None:
    """A forming one-minute bar opened at `open_ms`, written now."""

    def at(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    row = {
        "asset_id": asset_id(engine, symbol),
        "source": "test",
        "interval": "1m",
        "open_time": at(open_ms),
        "close_time": at(open_ms + 60_000),
        "open": close - 1,
        "high": close + 1,
        "low": close - 2,
        "close": close,
        "volume": 3.5,
        "volume_quote": None,
        "batch_id": 0,
        "ingested_at": at(now_ms()),
    }
    with engine.begin() as conn:
        conn.execute(insert(Candle), [row])
