"""The hot path: cached answers served in front of the framework.

A hot route (`latest`, `metrics`, `symbols`, a candle page) answers from the hot-read cache
(`api.responses.HotCache`). Once FastAPI has accepted a request (its parameters validated,
its key checked) the route remembers, under the request's exact path and query string,
which cache entry answers it and which rate-limit class counts it (`HotRoutes`). The next
request with the same path and query string is then served by `HotPath`, an ASGI layer
in front of everything else: it checks the Host header, the key and the caller's limit,
takes the cached bytes and sends them through the same response, compression and header
code as the route, with the access log line and the Prometheus counters. No routing, no
dependency resolution, no validation (it was the same string that FastAPI validated), no
serialisation: the bytes are byte for byte what the route would send (a test compares
them, headers included).

Anything else goes through FastAPI unchanged, and so does any request the fast path
cannot answer exactly as the route would: a cache miss (the route renders and fills the
cache), a missing or wrong key (the route's 401 and the wrong-key count), a blocked
address, a refused limit (the route answers the 429 with the verdict already counted), a
cross-origin request when CORS is on, a Host the app does not allow.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Container
from dataclasses import dataclass

from cachetools import LRUCache
from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import Compression, RequestMetrics, final_headers, request_id_of
from api.rate_limit import AuthFailureLimit, LimitClass, address_of
from api.responses import HotCache, conditional
from api.settings import MAX_KEY_BYTES
from etl.core.log import request_context


@dataclass(frozen=True, slots=True)
class Hot:
    """How to answer one validated request: its route template (for the log and metrics),
    its rate-limit class, its cache entry and the renderer that refreshes it."""

    template: str
    limit: LimitClass
    key: str
    render: Callable[[], bytes]
    max_age: int


class HotRoutes:
    """Requests FastAPI accepted, by exact (path, query string): a bounded LRU."""

    def __init__(self, size: int = 4096) -> None:
        self._known: LRUCache[tuple[str, bytes], Hot] = LRUCache(maxsize=size)

    def get(self, scope: Scope) -> Hot | None:
        return self._known.get((scope["path"], scope["query_string"]))

    def remember(self, scope: Scope, hot: Hot) -> None:
        self._known[(scope["path"], scope["query_string"])] = hot


async def cached_answer(
    request: Request,
    cache: HotCache,
    routes: HotRoutes,
    hot: Hot,
) -> Response:
    """A hot route's answer: remembered for the fast path, then from the cache."""
    if request.method == "GET":
        routes.remember(request.scope, hot)
    page = await cache.get(hot.key, hot.render)
    return conditional(page, request.headers.get("if-none-match", ""), max_age=hot.max_age)


class HotPath:
    """The ASGI layer in front of the app (see the module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: HotRoutes,
        cache: HotCache,
        key_digests: list[bytes],
        auth_failures: AuthFailureLimit,
        metrics: RequestMetrics,
        host_allowed: Callable[[str], bool],
        cors: bool,
        trusted_proxies: Container[str],
    ) -> None:
        self.app, self.routes, self.cache = app, routes, cache
        self.key_digests, self.auth_failures, self.metrics = key_digests, auth_failures, metrics
        self.host_allowed, self.cors, self.trusted = host_allowed, cors, trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            hot = self.routes.get(scope)
            if hot is not None and await self._serve(hot, scope, receive, send):
                return
        await self.app(scope, receive, send)

    def _fingerprint(self, key: bytes) -> str | None:
        if len(key) > MAX_KEY_BYTES:
            return None
        presented = hashlib.sha256(key).digest()
        matched = False
        for digest in self.key_digests:  # no early exit: constant time
            matched |= hmac.compare_digest(presented, digest)
        return presented.hex()[:12] if matched else None

    async def _serve(self, hot: Hot, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer from the cache; False (nothing sent, nothing counted unless a refusal
        was) to let the app answer instead."""
        started = time.perf_counter()
        key = host = origin = None
        if_none_match = ""
        forwarded: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                key = value
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"origin":
                origin = value
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
        if host is None or not self.host_allowed(host) or (origin is not None and self.cors):
            return False
        fingerprint = None if key is None else self._fingerprint(key)
        if fingerprint is None:
            return False
        if self.auth_failures.blocking():
            peer = scope["client"][0] if scope.get("client") else "unknown"
            if self.auth_failures.blocked(address_of(peer, forwarded, self.trusted)):
                return False
        rendered = self.cache.peek(hot.key, hot.render)
        if rendered is None:
            return False
        state = scope.setdefault("state", {})
        state["key_fingerprint"] = fingerprint
        verdict = state["rate_limit"] = await hot.limit.hit(f"key:{fingerprint}")
        if not verdict.allowed:
            return False  # the route answers the 429 with this verdict
        request_id = request_id_of(scope)
        state["request_id"] = request_id
        status = 500

        async def send_final(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = final_headers(scope, status, message, request_id)
            await send(message)

        response = conditional(rendered, if_none_match, max_age=hot.max_age)
        with request_context(request_id):
            try:
                await Compression(response)(scope, receive, send_final)
            finally:
                self.metrics.record(scope, hot.template, status, time.perf_counter() - started)
                self.metrics.hot_path.labels(hot.template).inc()
        return True
