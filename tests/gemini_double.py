"""A local stand-in for Gemini's public REST API: a real HTTP server on 127.0.0.1 that
serves the documented payloads (shared reference gemini-api.md) exactly as Gemini shapes
them, records every request, and injects faults on demand.

Shapes served: `/v1/symbols` lower-case ids; details and v2 ticker echo upper case; prices
as strings; candles as numbers, newest first; a 400 `InvalidSymbol` body for an unknown
symbol and a 400 `InvalidParameterValue` for the docs' `1h`/`6h`/`1d` frames; a 429 with
no Retry-After and no rate-limit headers.

Faults (queued per path prefix, consumed one per matching request): `429`, `500`,
`502-html`, `503`, `timeout` (answers after `slow_seconds`), `reset` (closes the socket
without answering), `truncated` (promises more bytes than it sends), `malformed` (200 with
a body that is not JSON), `wrong-types` (200 with fields of the wrong type), `empty` (200
with `[]`), `nested` (200 with JSON nested 100,000 deep), `huge` (200 declaring a body over
the client's cap), `flood` (200 with a valid 40 MiB JSON list and no Content-Length, sent
until the client hangs up) and `drip` (200 whose body starts with whitespace sent one byte
every 50 ms for `drip_seconds`, then the real JSON). `Seen.sent` counts the body bytes
written for each request.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.http_double import HttpDouble, serve, shut

SYMBOLS = [
    "btcusd",
    "btcusdt",
    "btcgusd",
    "btcgusdperp",
    "ethbtc",
    "ethusd",
    "ethgusdperp",
    "solusd",
    "solbtc",
    "ltcusd",
    "dogeusd",
    "btcrlusd",
    "usdtusd",
    "gusdusd",
]
TIME_FRAMES = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1hr": 3_600_000,
    "6hr": 21_600_000,
    "1day": 86_400_000,
}
DAY_OPEN_OFFSET_MS = 4 * 3_600_000  # Gemini's daily bars open at 04:00 UTC
PRICES = {"btcusd": 67_250.5, "ethusd": 3_450.25, "solusd": 145.125, "ltcusd": 82.5}


@dataclass
class Seen:
    at: float
    path: str
    status: int
    sent: int = 0


@dataclass
class GeminiDouble(HttpDouble[Seen]):
    now_ms: int
    candle_count: int = 5
    slow_seconds: float = 1.0
    drip_seconds: float = 5.0
    overrides: dict[str, Any] = field(default_factory=dict)  # path -> JSON body to serve

    def arrive(self, path: str) -> Seen:
        """Record a request when it arrives (its status is filled in when answered)."""
        return self.record(Seen(time.monotonic(), path, 0))

    # -- payloads ----------------------------------------------------------------------

    def route(self, path: str) -> tuple[int, Any]:
        if path in self.overrides:
            return 200, self.overrides[path]
        parts = [p for p in path.split("/") if p]
        if parts == ["v1", "symbols"]:
            return 200, SYMBOLS
        if parts == ["v1", "pricefeed"]:
            return 200, [
                {"pair": s.upper(), "price": f"{p}", "percentChange24h": "-0.0920"}
                for s, p in PRICES.items()
            ]
        if len(parts) >= 3 and parts[0] in ("v1", "v2"):
            symbol = parts[-1] if parts[1] != "candles" else parts[2]
            if symbol.lower() not in SYMBOLS:
                return 400, {
                    "result": "error",
                    "reason": "InvalidSymbol",
                    "message": f"Received unsupported symbol '{symbol.upper()}'",
                }
            price = PRICES.get(symbol.lower(), 1.0)
            if parts[:3] == ["v1", "symbols", "details"]:
                return 200, self._details(symbol)
            if parts[:2] == ["v1", "pubticker"]:
                return 200, self._pubticker(symbol, price)
            if parts[:2] == ["v2", "ticker"]:
                return 200, self._ticker_v2(symbol, price)
            if parts[:2] == ["v2", "candles"] and len(parts) == 4:
                return self._candles(parts[3], price)
        return 404, {"result": "error", "reason": "EndpointNotFound", "message": "not found"}

    @staticmethod
    def _details(symbol: str) -> dict[str, Any]:
        base, quote = symbol[:-3].upper(), symbol[-3:].upper()
        return {
            "symbol": symbol.upper(),
            "base_currency": base,
            "quote_currency": quote,
            "tick_size": 1e-8,
            "quote_increment": 0.01,
            "min_order_size": "0.00001",
            "status": "open",
            "wrap_enabled": False,
            "product_type": "spot",
            "contract_type": "vanilla",
            "contract_price_currency": quote,
        }

    def _pubticker(self, symbol: str, price: float) -> dict[str, Any]:
        base, quote = symbol[:-3].upper(), symbol[-3:].upper()
        return {
            "bid": f"{price - 0.01:.2f}",
            "ask": f"{price + 0.01:.2f}",
            "last": f"{price:.2f}",
            "volume": {
                base: "1615.46861748",
                quote: "14727307.57545006088",
                "timestamp": self.now_ms,
            },
        }

    @staticmethod
    def _ticker_v2(symbol: str, price: float) -> dict[str, Any]:
        return {
            "symbol": symbol.upper(),
            "open": f"{price * 0.98:.2f}",
            "high": f"{price * 1.02:.2f}",
            "low": f"{price * 0.97:.2f}",
            "close": f"{price * 0.5:.2f}",  # stale, as the live API's can be
            "changes": [f"{price - i:.2f}" for i in range(24)],
            "bid": f"{price - 0.01:.2f}",
            "ask": f"{price + 0.01:.2f}",
        }

    def _candles(self, frame: str, price: float) -> tuple[int, Any]:
        if frame not in TIME_FRAMES:
            return 400, {
                "result": "error",
                "reason": "InvalidParameterValue",
                "message": "time_frame expects one of the following: "
                "[1m, 5m, 15m, 30m, 1hr, 6hr, 1day]",
            }
        return 200, candle_rows(frame, self.now_ms, self.candle_count, price)


def candle_rows(frame: str, now_ms: int, count: int, price: float) -> list[list[float]]:
    """Newest first, the newest bar still open at `now_ms`, as Gemini serves them."""
    step = TIME_FRAMES[frame]
    offset = DAY_OPEN_OFFSET_MS if frame == "1day" else 0
    newest = (now_ms - offset) // step * step + offset
    rows = []
    for i in range(count):
        close = price + i
        rows.append([newest - i * step, close - 0.5, close + 1.0, close - 1.0, close, 0.25 * i])
    return rows


class _Handler(BaseHTTPRequestHandler):
    double: GeminiDouble  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002, ARG002 - quiet
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        double = self.double
        path = self.path.split("?")[0]
        seen = double.arrive(path)
        fault = double.next_fault(path)
        if fault == "reset":
            # linger 0: the close sends a TCP reset instead of a clean end
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if fault == "timeout":
            time.sleep(double.slow_seconds)
        status, body = double.route(path)
        text = json.dumps(body)
        content_type = "application/json"
        if fault in ("429", "500", "503"):
            status = int(fault)
            reason = {"429": "RateLimit", "500": "InternalServerError", "503": "Maintenance"}
            text = json.dumps({"result": "error", "reason": reason[fault], "message": fault})
        elif fault == "502-html":
            status, content_type = 502, "text/html"
            text = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        elif fault == "malformed":
            text = text[: max(1, len(text) // 2)]  # a complete response whose JSON is cut
        elif fault == "wrong-types":
            text = json.dumps({"bid": {"x": 1}, "ask": [1], "last": None, "volume": "lots"})
        elif fault == "empty":
            text = "[]"
        elif fault == "nested":
            text = "[" * 100_000 + "]" * 100_000
        seen.status = status
        if fault in ("flood", "drip", "huge"):
            self._stream(seen, fault, text.encode())
            return
        payload = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            length = len(payload) + (1000 if fault == "truncated" else 0)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(payload)
            if fault == "truncated":
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a timeout test): nothing to answer

    def _stream(self, seen: Seen, fault: str, payload: bytes) -> None:
        """Bodies a client must not read whole or wait for: sent piece by piece, counting
        what actually left, until done or the client hangs up."""
        self.send_response(seen.status)
        self.send_header("Content-Type", "application/json")
        if fault == "huge":
            self.send_header("Content-Length", str(6 * 1024 * 1024))
        self.end_headers()  # flood and drip: no length, the body ends when the socket closes
        if fault == "flood":
            item = b'"' + b"x" * 1022 + b'",'
            pieces = [b"[", *[item * 64] * 640, b'"end"]']  # 40 MiB of valid JSON
        elif fault == "drip":
            pieces = [b" "] * int(self.double.drip_seconds / 0.05) + [payload]
        else:
            pieces = [b"[" + b"0," * 32_000]  # the rest never comes: the header is enough
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                seen.sent += len(piece)
                if fault == "drip":
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up reading, as it should


def start(double: GeminiDouble) -> GeminiDouble:
    return serve(double, _Handler)


def stop(double: GeminiDouble) -> None:
    shut(double)
