"""Local stand-ins for Kraken's and Bitstamp's public REST APIs: real HTTP servers on
127.0.0.1 that the real ccxt is pointed at (through `EXCHANGE_URLS`, mapped onto ccxt's
`urls['api']`), serving the payloads those venues document, in the shapes ccxt parses.

Kraken (https://docs.kraken.com/api-reference/): `/0/public/Assets` (ccxt's
`fetch_currencies`, which `load_markets` calls first: `XXBT`/`ZUSD` ids with altnames),
`/0/public/AssetPairs` (`XXBTZUSD` style ids, `status: online`), `/0/public/Ticker?pair=`
(arrays: `a`/`b` ask and bid, `c` last, `v` volume today and over 24h, `p` vwap),
`/0/public/OHLC?pair=&interval=&since=` (`[time s, open, high, low, close, vwap, volume,
count]`, oldest first, prices as strings, bars after `since`). Errors are 200s with an
`error` list: `EQuery:Unknown asset pair`, `EAPI:Rate limit exceeded`, `EService:Unavailable`.

Bitstamp (https://www.bitstamp.net/api/): `/api/v2/markets/` (spot and perpetual rows; ccxt
reads both its currencies and its markets from it), `/api/v2/ticker/{pair}/` (strings,
`timestamp` in seconds), `/api/v2/ohlc/{pair}/?step=&limit=&start=&end=` (`data.ohlc` list
of objects, oldest first). Errors: `{"status": "error", "reason": ..., "code": ...}`.

Faults, queued per path prefix and consumed one per matching request: `429`, `500`, `503`
(plain-text bodies, as the venues' edge sends them), `502-html`, `html200` (a 200 whose body
is an HTML page, as a captive proxy sends), `malformed` (a 200 whose JSON is cut short),
`timeout` (answers after `slow_seconds`), `reset` (closes the socket unanswered),
`venue-rate-limit` and `venue-unavailable` (the venue's own error body: status 200 for
Kraken, 429/503 for Bitstamp).
"""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.http_double import HttpDouble, serve, shut

HOUR_S, DAY_S = 3600, 86_400
PRICES = {"BTC": 67_250.0, "ETH": 3_450.0, "SOL": 145.0, "ADA": 0.45}


@dataclass
class Seen:
    at: float
    path: str
    query: dict[str, str]
    status: int = 0


@dataclass
class VenueDouble(HttpDouble[Seen]):
    now_ms: int
    candle_count: int = 5
    slow_seconds: float = 1.0
    price_factor: float = 1.0  # this venue's prices against PRICES (a venue a bit off)

    def seen(self, path_prefix: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def arrive(self, path: str, query: dict[str, str]) -> Seen:
        return self.record(Seen(time.monotonic(), path, query))

    def price(self, base: str) -> float:
        return PRICES[base] * self.price_factor

    def unit(self, base: str) -> float:
        """Price steps scale with the price (1 for BTC): ADA's bid stays positive."""
        return self.price(base) / PRICES["BTC"]

    def bars(self, step_s: int, count: int, since_s: int | None) -> list[tuple[int, int]]:
        """(open time s, position) of the bars served: the newest (still open) at `now`, back
        `count` bars, or every bar from `since_s`. A bar's values follow from its position
        against the newest (`candle_count - 1`), so a bar served twice is the same bar."""
        newest = self.now_ms // 1000 // step_s * step_s
        first = newest - (count - 1) * step_s
        if since_s is not None:
            first = since_s // step_s * step_s
        return [
            (t, self.candle_count - 1 - (newest - t) // step_s)
            for t in range(first, newest + 1, step_s)
        ]

    # implemented per venue
    def route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        raise NotImplementedError

    def venue_error(self, fault: str) -> tuple[int, Any]:
        raise NotImplementedError


# -- Kraken ------------------------------------------------------------------------------

KRAKEN_ASSETS = {
    "XXBT": ("XBT", 10),
    "XETH": ("ETH", 10),
    "SOL": ("SOL", 10),
    "ADA": ("ADA", 8),
    "ZUSD": ("USD", 4),
    "ZEUR": ("EUR", 4),
    "USDT": ("USDT", 8),
}
# pair id -> (base asset id, quote asset id, altname, status)
KRAKEN_PAIRS = {
    "XXBTZUSD": ("XXBT", "ZUSD", "XBTUSD", "online"),
    "XXBTZEUR": ("XXBT", "ZEUR", "XBTEUR", "online"),
    "XBTUSDT": ("XXBT", "USDT", "XBTUSDT", "online"),
    "XETHZUSD": ("XETH", "ZUSD", "ETHUSD", "online"),
    "SOLUSD": ("SOL", "ZUSD", "SOLUSD", "online"),
    "ADAUSD": ("ADA", "ZUSD", "ADAUSD", "cancel_only"),  # listed, not trading
}
KRAKEN_BASES = {"XXBT": "BTC", "XETH": "ETH", "SOL": "SOL", "ADA": "ADA"}


@dataclass
class KrakenDouble(VenueDouble):
    def route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path == "/0/public/Assets":
            return 200, {"error": [], "result": _kraken_assets()}
        if path == "/0/public/AssetPairs":
            return 200, {"error": [], "result": _kraken_pairs()}
        pair = query.get("pair", "")
        if path in ("/0/public/Ticker", "/0/public/OHLC") and pair not in KRAKEN_PAIRS:
            return 200, {"error": ["EQuery:Unknown asset pair"]}
        base = KRAKEN_BASES.get(KRAKEN_PAIRS.get(pair, ("",))[0], "BTC")
        if path == "/0/public/Ticker":
            return 200, {"error": [], "result": {pair: self._ticker(base)}}
        if path == "/0/public/OHLC":
            step = int(query.get("interval", "1")) * 60
            # Kraken serves the bars after `since` (ccxt asks from one bar before)
            since = (int(query["since"]) // step + 1) * step if "since" in query else None
            rows = [self._bar(t, base, i) for t, i in self.bars(step, self.candle_count, since)]
            last = rows[-1][0] if rows else 0
            return 200, {"error": [], "result": {pair: rows, "last": last}}
        return 404, {"error": ["EGeneral:Unknown method"]}

    def _ticker(self, base: str) -> dict[str, Any]:
        price, unit = self.price(base), self.unit(base)
        return {
            "a": [f"{price + 0.1 * unit:.5f}", "1", "1.000"],
            "b": [f"{price - 0.1 * unit:.5f}", "2", "2.000"],
            "c": [f"{price:.5f}", "0.00100000"],
            "v": ["812.50000000", "2500.25000000"],
            "p": [f"{price * 0.99:.5f}", f"{price * 0.995:.5f}"],
            "t": [10_000, 25_000],
            "l": [f"{price * 0.97:.5f}", f"{price * 0.96:.5f}"],
            "h": [f"{price * 1.01:.5f}", f"{price * 1.02:.5f}"],
            "o": f"{price * 0.98:.5f}",
        }

    def _bar(self, open_s: int, base: str, i: int) -> list[Any]:
        unit = self.unit(base)
        close = self.price(base) + i * unit
        return [
            open_s,
            f"{close - 0.5 * unit:.5f}",
            f"{close + unit:.5f}",
            f"{close - unit:.5f}",
            f"{close:.5f}",
            f"{close - 0.2 * unit:.5f}",
            f"{0.5 * (i + 1):.8f}",
            10 + i,
        ]

    def venue_error(self, fault: str) -> tuple[int, Any]:
        message = {
            "venue-rate-limit": "EAPI:Rate limit exceeded",
            "venue-unavailable": "EService:Unavailable",
        }[fault]
        return 200, {"error": [message]}


def _kraken_assets() -> dict[str, Any]:
    return {
        asset: {
            "aclass": "currency",
            "altname": altname,
            "decimals": decimals,
            "display_decimals": min(decimals, 5),
            "status": "enabled",
        }
        for asset, (altname, decimals) in KRAKEN_ASSETS.items()
    }


def _kraken_pairs() -> dict[str, Any]:
    return {
        pair: {
            "altname": altname,
            "wsname": f"{KRAKEN_ASSETS[base][0]}/{KRAKEN_ASSETS[quote][0]}",
            "aclass_base": "currency",
            "base": base,
            "aclass_quote": "currency",
            "quote": quote,
            "lot": "unit",
            "cost_decimals": 5,
            "pair_decimals": 1,
            "lot_decimals": 8,
            "lot_multiplier": 1,
            "leverage_buy": [2, 3],
            "leverage_sell": [2, 3],
            "fees": [[0, 0.4], [10000, 0.35]],
            "fees_maker": [[0, 0.25], [10000, 0.2]],
            "fee_volume_currency": "ZUSD",
            "margin_call": 80,
            "margin_stop": 40,
            "ordermin": "0.00005",
            "costmin": "0.5",
            "tick_size": "0.1",
            "status": status,
        }
        for pair, (base, quote, altname, status) in KRAKEN_PAIRS.items()
    }


# -- Bitstamp ----------------------------------------------------------------------------

# market_symbol -> (base, counter, trading, market type)
BITSTAMP_MARKETS = {
    "btcusd": ("BTC", "USD", "Enabled", "SPOT"),
    "btcusdc": ("BTC", "USDC", "Enabled", "SPOT"),
    "btceur": ("BTC", "EUR", "Enabled", "SPOT"),
    "ethusd": ("ETH", "USD", "Enabled", "SPOT"),
    "adausd": ("ADA", "USD", "Enabled", "SPOT"),
    "solusd": ("SOL", "USD", "Disabled", "SPOT"),
    "btcusd-perp": ("BTC", "USD", "Enabled", "PERPETUAL"),
}
NAMES = {
    "BTC": "Bitcoin",
    "ETH": "Ether",
    "SOL": "Solana",
    "ADA": "Cardano",
    "USD": "U.S. dollar",
    "EUR": "Euro",
    "USDC": "USD Coin",
}


@dataclass
class BitstampDouble(VenueDouble):
    def route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["api", "v2", "markets"]:
            return 200, [_bitstamp_market(symbol) for symbol in BITSTAMP_MARKETS]
        if len(parts) == 4 and parts[:3] in (["api", "v2", "ticker"], ["api", "v2", "ohlc"]):
            pair = parts[3]
            if pair not in BITSTAMP_MARKETS:
                return 404, {"status": "error", "reason": "Invalid pair", "code": "API0003"}
            base = BITSTAMP_MARKETS[pair][0]
            if parts[2] == "ticker":
                return 200, self._ticker(pair, base)
            step = int(query.get("step", "60"))
            limit = int(query.get("limit", "1000"))
            since = int(query["start"]) if "start" in query else None
            served = self.bars(step, min(limit, self.candle_count), since)[:limit]
            bars = [self._bar(t, base, i) for t, i in served]
            name = f"{base}/{BITSTAMP_MARKETS[pair][1]}"
            return 200, {"data": {"pair": name, "market": pair, "ohlc": bars}}
        return 404, {"status": "error", "reason": "Not found", "code": "API0001"}

    def _ticker(self, pair: str, base: str) -> dict[str, Any]:
        price, unit = self.price(base), self.unit(base)
        return {
            "timestamp": str(self.now_ms // 1000),
            "open": f"{price * 0.98:.2f}",
            "high": f"{price * 1.02:.2f}",
            "low": f"{price * 0.96:.2f}",
            "last": f"{price:.2f}",
            "volume": "1234.56780000",
            "vwap": f"{price * 0.995:.2f}",
            "bid": f"{price - unit:.6f}",
            "ask": f"{price + unit:.6f}",
            "side": "0",
            "open_24": f"{price * 0.97:.2f}",
            "percent_change_24": "3.09",
            "pair": f"{base}/{BITSTAMP_MARKETS[pair][1]}",
            "market_type": "SPOT",
        }

    def _bar(self, open_s: int, base: str, i: int) -> dict[str, str]:
        unit = self.unit(base)
        close = self.price(base) + i * unit
        return {
            "timestamp": str(open_s),
            "open": f"{close - 0.5 * unit:.6f}",
            "high": f"{close + unit:.6f}",
            "low": f"{close - unit:.6f}",
            "close": f"{close:.6f}",
            "volume": f"{0.25 * (i + 1):.8f}",
        }

    def venue_error(self, fault: str) -> tuple[int, Any]:
        if fault == "venue-rate-limit":
            return 429, {"status": "error", "reason": "Rate limit exceeded", "code": "API0009"}
        return 503, {"status": "error", "reason": "Service unavailable", "code": "API0012"}


def _bitstamp_market(symbol: str) -> dict[str, Any]:
    base, counter, trading, kind = BITSTAMP_MARKETS[symbol]
    perp = kind == "PERPETUAL"
    row = {
        "name": f"{base}/{counter}" + ("-PERP" if perp else ""),
        "market_symbol": symbol,
        "base_currency": base,
        "base_decimals": 8,
        "counter_currency": counter,
        "counter_decimals": 2,
        "minimum_order_value": "10",
        "trading": trading,
        "instant_order_counter_decimals": 2,
        "instant_and_market_orders": trading,
        "description": f"{NAMES[base]} / {NAMES[counter]}" + (" Perpetual" if perp else ""),
        "market_type": kind,
    }
    if perp:
        row |= {"payoff_type": "Linear", "contract_size": "1.00000000"}
    return row


# -- the server --------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    double: VenueDouble  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - quiet
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        double = self.double
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        seen = double.arrive(parts.path, query)
        fault = double.next_fault(parts.path)
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if fault == "timeout":
            time.sleep(double.slow_seconds)
        status, body = double.route(parts.path, query)
        if fault in ("venue-rate-limit", "venue-unavailable"):
            status, body = double.venue_error(fault)
        text, content_type = json.dumps(body), "application/json"
        if fault in ("429", "500", "503"):  # from the venue's edge (CDN), not its API
            status, content_type = int(fault), "text/plain"
            text = {"429": "Too Many Requests", "500": "Internal error", "503": "Unavailable"}[
                fault
            ]
        elif fault == "502-html":
            status, content_type = 502, "text/html"
            text = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        elif fault == "html200":
            content_type = "text/html; charset=utf-8"
            text = "<!DOCTYPE html><html><body>Please sign in to the network</body></html>"
        elif fault == "malformed":
            text = text[: max(1, len(text) // 2)]
        seen.status = status
        payload = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a timeout test)


def start(double: VenueDouble) -> VenueDouble:
    return serve(double, _Handler)


def stop(double: VenueDouble) -> None:
    shut(double)


FAST = {"rateLimit": 1}  # ccxt's spacing between calls, in ms: none worth waiting for here


@contextmanager
def kraken_and_bitstamp() -> Iterator[dict[str, VenueDouble]]:
    """Both doubles, Bitstamp 0.1% above Kraken, with the breakers reset around them."""
    from etl.extract.gemini_client import reset_breakers

    now = int(time.time() * 1000)
    made: dict[str, VenueDouble] = {
        "kraken": start(KrakenDouble(now_ms=now, slow_seconds=0.5)),
        "bitstamp": start(BitstampDouble(now_ms=now, slow_seconds=0.5, price_factor=1.001)),
    }
    reset_breakers()
    try:
        yield made
    finally:
        for double in made.values():
            stop(double)
        reset_breakers()
