"""The exchange side of the stream benchmark: the Gemini v2 WebSocket double
(tests/gemini_ws_double.py) in its own process, so the clients' and the server's load does
not delay its pacing. After the worker subscribes it sends one book snapshot per pair, then
heartbeats until told to go, then `rate` trades a second for `seconds`, round-robin over
the pairs, and reports when each one left (`time.time_ns()` just before the send).

Each trade's price identifies it: pair `p`'s `n`-th trade costs `BASE_CENTS[p] + n` cents,
so a client matches any `price` event (from Redis or from a ticker row) to its send time.
"""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventFlag

import numpy as np
from websockets.asyncio.server import ServerConnection

from tests.gemini_ws_double import GeminiWsDouble, feed, heartbeat, l2_snapshot, trade

PAIRS = ("BTCUSD", "ETHUSD", "SOLUSD", "LTCUSD")
COIN_IDS = "bitcoin,ethereum,solana,litecoin"
# Far enough apart that no two pairs' price ranges meet at any sensible rate and duration.
BASE_CENTS = (600_000_000, 30_000_000, 1_500_000, 100_000)
# A price event names its pair as the worker does (Redis: the exchange's pair) or as the
# database does (DB-follow: the asset's symbol).
PAIR_OF_SYMBOL = {**{s: i for i, s in enumerate(PAIRS)}, "BTC": 0, "ETH": 1, "SOL": 2, "LTC": 3}


def price_text(pair: int, seq: int) -> str:
    cents = BASE_CENTS[pair] + seq
    return f"{cents // 100}.{cents % 100:02d}"


def run_feed(conn: Connection, go: EventFlag, stop: EventFlag, rate: int, seconds: float) -> None:
    """Process entry: sends the double's URL, "subscribed", then the feed's figures."""
    asyncio.run(_serve(conn, go, stop, rate, seconds))


async def _serve(
    conn: Connection, go: EventFlag, stop: EventFlag, rate: int, seconds: float
) -> None:
    async def sender(ws: ServerConnection) -> None:
        conn.send("subscribed")
        for pair, symbol in enumerate(PAIRS):
            bid, ask = price_text(pair, -100), price_text(pair, 10**6)
            await ws.send(l2_snapshot(symbol, [(bid, "5")], [(ask, "5")]))
        while not go.is_set():  # heartbeats keep the worker's idle watchdog quiet
            await ws.send(heartbeat())
            await asyncio.sleep(0.05)
        conn.send(await _trades(ws, rate, seconds) | {"connections": double.connections})

    double = await GeminiWsDouble(heartbeat_seconds=0.5).start()
    double.script(feed(sender))
    conn.send(double.url)
    while not stop.is_set():
        await asyncio.sleep(0.1)
    await double.stop()


async def _trades(ws: ServerConnection, rate: int, seconds: float) -> dict[str, object]:
    total = int(rate * seconds)
    sent = np.zeros(total, dtype=np.int64)
    start, most_late = time.monotonic(), 0.0
    for i in range(total):
        wait = start + i / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            most_late = max(most_late, -wait)
        pair, seq = i % len(PAIRS), i // len(PAIRS)
        now_ns = time.time_ns()
        await ws.send(trade(PAIRS[pair], i + 1, now_ns // 1_000_000, price_text(pair, seq)))
        sent[i] = now_ns
    return {
        "sent_ns": sent.tobytes(),
        "seconds": time.monotonic() - start,
        "most_late_ms": most_late * 1000,
    }
