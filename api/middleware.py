"""Request ids, JSON access logs and Prometheus request metrics, as one ASGI middleware.

`X-Request-ID` is taken from the client when it is a sane token (1-64 of
`A-Za-z0-9._-`), generated otherwise (128 random bits as hex: an id, not a secret), set on
the response and bound to every log line of the request. Every answer gets
`X-Content-Type-Options: nosniff`, every error `Cache-Control: no-store`. The access log
line has method, route template, status, duration and the caller's key fingerprint (never
the key).
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access_log import AccessLog
from etl.core.log import request_context

# Routes that encode their own bodies: the event stream (never compressed) and candle
# exports (gzip with exact Accept-Encoding weights; Parquet is compressed inside).
OWN_ENCODING = re.compile(r"/api/crypto/(stream|candles/[^/]+/export)$")
_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestMetrics:
    """Prometheus request counters and the access log: what every answer records."""

    def __init__(self, registry: CollectorRegistry, log: AccessLog) -> None:
        self.log = log
        self.requests = Counter(
            "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )
        self.rate_limited = Counter(
            "http_rate_limited_total",
            "Requests refused by the rate limiter",
            ["route"],
            registry=registry,
        )
        self.hot_path = Counter(
            "http_hot_path_total",
            "Answers served by the hot path in front of the framework (api/hot_path.py)",
            ["route"],
            registry=registry,
        )
        # the labelled children, looked up once (`labels()` costs a lock and a tuple)
        self._counted: dict[tuple[str, str, int], Any] = {}
        self._timed: dict[tuple[str, str], Any] = {}
        self._fast: dict[str, Any] = {}

    def served_fast(self, template: str) -> None:
        counted = self._fast.get(template)
        if counted is None:
            counted = self._fast[template] = self.hot_path.labels(template)
        counted.inc()

    def record(self, scope: Scope, template: str, status: int, seconds: float) -> None:
        """The request's Prometheus counters and its access log line."""
        method = scope.get("method", "")
        counted = self._counted.get((method, template, status))
        if counted is None:
            counted = self._counted[(method, template, status)] = self.requests.labels(
                method, template, str(status)
            )
        counted.inc()
        timed = self._timed.get((method, template))
        if timed is None:
            timed = self._timed[(method, template)] = self.latency.labels(method, template)
        timed.observe(seconds)
        if status == 429:
            self.rate_limited.labels(template).inc()
        state: dict[str, Any] = scope.get("state", {})
        self.log.write(
            {
                "method": method,
                "route": template,
                "path": scope.get("path", ""),
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "key": state.get("key_fingerprint"),
            }
        )


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = final_headers(scope, status, message, request_id)
            await send(message)

        with request_context(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        self.metrics.record(scope, template, status, seconds)


def final_headers(
    scope: Scope, status: int, start: Message, request_id: str
) -> list[tuple[bytes, bytes]]:
    """What every answer gets on its way out: the security headers, the rate-limit
    verdict's headers (when a route class was checked), the request id."""
    return with_request_headers(secured(status, start.get("headers", [])), scope, request_id)


def with_request_headers(
    secured_headers: list[tuple[bytes, bytes]], scope: Scope, request_id: str
) -> list[tuple[bytes, bytes]]:
    """`final_headers` after `secured`: the parts that differ per request."""
    verdict = scope.get("state", {}).get("rate_limit")
    headers = secured_headers + verdict.headers() if verdict is not None else [*secured_headers]
    headers.append((b"x-request-id", request_id.encode()))
    return headers


def request_id_of(scope: Scope) -> str:
    """The client's `X-Request-ID` when it is a sane token, else a new one."""
    given = _header(scope, b"x-request-id")
    return given if given and _SANE_ID.match(given) else _new_id()


def secured(status: int, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`X-Content-Type-Options: nosniff` on every answer; `Cache-Control: no-store` on every
    error (whatever a route or library set), so no cache keeps a 401, 404 or 429."""
    error = status >= 400
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() != b"x-content-type-options"
        and not (error and name.lower() == b"cache-control")
    ]
    kept.append((b"x-content-type-options", b"nosniff"))
    if error:
        kept.append((b"cache-control", b"no-store"))
    return kept


def _new_id() -> str:
    return f"{random.getrandbits(128):032x}"  # noqa: S311 - an id, not a secret


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class Compression:
    """gzip for answers over 1 KB when the client accepts it (browsers do; curl and most API
    clients do not, and pay only a header check). Exports go around it (`OWN_ENCODING`),
    and so does the event stream: gzip holds a response's start until its first body
    chunk, which on a quiet stream is the first heartbeat, 15 s later, and a browser's
    EventSource reports the stream open only when the start arrives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1024, compresslevel=5)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not OWN_ENCODING.search(scope["path"]):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)
