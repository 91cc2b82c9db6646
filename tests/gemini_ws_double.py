"""A local stand-in for Gemini's v2 market data WebSocket: a real server on 127.0.0.1
(websockets' asyncio server) speaking the documented shapes (shared reference
gemini-api.md): the `l2_updates` snapshot first (whole book plus recent `trades`), then
increments, `trade` messages, `candles_1m_updates` (newest first), heartbeats, and
`{"result":"error","reason":"NoValidTradingPairs"}` for a subscribe naming no valid pair.

Each accepted connection plays the next script (a list of steps) after the subscribe
message; with no script left it sends heartbeats until closed. Steps: `send(text)` (any
text: malformed and truncated JSON, repeats and out-of-order updates are just texts),
`DROP` (the TCP connection is aborted mid-stream, no close frame), `STALL` (silence, the
connection left open), `pause(seconds)`, `feed(coroutine)` (awaits `coroutine(ws)`: a caller
that sends at its own pace, e.g. the stream benchmark timing each trade as it leaves).
`refuse` answers the next N handshakes with HTTP 503; `on_connect(n)` runs before the n-th
(0-based) accepted handshake completes, so a test can change what the REST double serves
before the worker's backfill asks.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

MINUTE_MS = 60_000
VALID = {"BTCUSD", "ETHUSD", "SOLUSD", "LTCUSD"}
DROP = ("drop", None)
STALL = ("stall", None)
Step = tuple[str, Any]


def send(text: str) -> Step:
    return ("send", text)


def pause(seconds: float) -> Step:
    return ("pause", seconds)


def feed(sender: Callable[[ServerConnection], Awaitable[None]]) -> Step:
    return ("feed", sender)


@dataclass
class GeminiWsDouble:
    scripts: deque[list[Step]] = field(default_factory=deque)
    refuse: int = 0
    heartbeat_seconds: float = 0.05
    on_connect: Callable[[int], None] | None = None
    connections: int = 0  # accepted handshakes
    refused: int = 0
    handshakes: list[float] = field(default_factory=list)  # monotonic time of each, refused too
    subscriptions: list[Any] = field(default_factory=list)
    server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    def script(self, *steps: Step) -> None:
        """The next connection's steps."""
        self.scripts.append(list(steps))

    async def start(self) -> GeminiWsDouble:
        self.server = await serve(self._handler, "127.0.0.1", 0, process_request=self._request)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _request(self, connection: ServerConnection, request: Request) -> Response | None:  # noqa: ARG002
        self.handshakes.append(time.monotonic())
        if self.refuse > 0:
            self.refuse -= 1
            self.refused += 1
            return connection.respond(503, "maintenance\n")
        if self.on_connect is not None:
            self.on_connect(self.connections)
        self.connections += 1
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        steps = self.scripts.popleft() if self.scripts else []
        try:
            message = json.loads(await ws.recv())
            self.subscriptions.append(message)
            symbols = {s for sub in message.get("subscriptions", []) for s in sub["symbols"]}
            if not symbols & VALID:
                await ws.send(json.dumps({"result": "error", "reason": "NoValidTradingPairs"}))
                return
            for kind, value in steps:
                if kind == "send":
                    await ws.send(value)
                elif kind == "pause":
                    await asyncio.sleep(value)
                elif kind == "feed":
                    await value(ws)
                elif kind == "drop":
                    ws.transport.abort()
                    return
                elif kind == "stall":
                    await ws.wait_closed()
                    return
            while True:
                await ws.send(heartbeat())
                await asyncio.sleep(self.heartbeat_seconds)
        except ConnectionClosed:
            return


# -- Gemini v2 message shapes ------------------------------------------------------------


def heartbeat() -> str:
    return json.dumps({"type": "heartbeat", "timestampms": 1_700_000_000_000, "sequence": 1})


def trade(symbol: str, event_id: int, time_ms: int, price: str, quantity: str = "0.5") -> str:
    return json.dumps(trade_body(symbol, event_id, time_ms, price, quantity))


def trade_body(
    symbol: str, event_id: int, time_ms: int, price: str, quantity: str = "0.5"
) -> dict[str, Any]:
    return {
        "type": "trade",
        "symbol": symbol,
        "event_id": event_id,
        "timestamp": time_ms,
        "price": price,
        "quantity": quantity,
        "side": "buy",
        "tid": event_id * 10,
    }


def l2_snapshot(
    symbol: str,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    trades: list[dict[str, Any]] | None = None,
) -> str:
    changes = [["buy", p, q] for p, q in bids] + [["sell", p, q] for p, q in asks]
    return json.dumps(
        {
            "type": "l2_updates",
            "symbol": symbol,
            "changes": changes,
            "trades": trades or [],
            "auction_events": [],
        }
    )


def l2_update(symbol: str, *changes: tuple[str, str, str]) -> str:
    return json.dumps(
        {"type": "l2_updates", "symbol": symbol, "changes": [list(c) for c in changes]}
    )


def candles(symbol: str, *rows: list[Any]) -> str:
    """`candles_1m_updates` with `rows` sent newest first, as Gemini does."""
    ordered = sorted(rows, key=lambda r: r[0], reverse=True)
    return json.dumps({"type": "candles_1m_updates", "symbol": symbol, "changes": ordered})


def minute_bars(first_ms: int, count: int, price: float = 100.0) -> list[list[float]]:
    """A scripted series of closed 1m bars, oldest first: `[t, o, h, l, c, v]`."""
    rows = []
    for i in range(count):
        close = price + i
        rows.append(
            [first_ms + i * MINUTE_MS, close - 0.5, close + 1.0, close - 1.0, close, 1.0 + i]
        )
    return rows


@contextmanager
def served_in_thread(double: GeminiWsDouble) -> Iterator[GeminiWsDouble]:
    """`double` served by its own event loop in a thread, for tests whose client is
    another process (the stream worker as `python -m etl.stream`)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="ws-double", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(double.start(), loop).result(timeout=10)
    try:
        yield double
    finally:
        asyncio.run_coroutine_threadsafe(double.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
