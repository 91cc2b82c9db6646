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
from typing import NamedTuple, TypeVar

from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.middleware import (
    Compression,
    RequestMetrics,
    request_id_of,
    secured,
    with_request_headers,
)
from api.rate_limit import AuthFailureLimit, LimitClass, address_of
from api.responses import HotCache, Rendered, conditional
from api.settings import MAX_KEY_BYTES
from etl.core.log import request_context

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Hot:
    """How to answer one validated request: its route template (for the log and metrics),
    its rate-limit class, its cache entry and the renderer that refreshes it."""

    template: str
    limit: LimitClass
    key: str
    render: Callable[[], bytes]
    max_age: int


class Built(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]  # the response's, compression's and security's
    body: bytes


class Bounded(dict[K, V]):
    """A dict that forgets its oldest entries past a budget of `weight` (1 per entry by
    default): reads are plain dict reads (an LRU's bookkeeping cost more than the rest of
    a look-up on the hot path)."""

    def __init__(self, budget: int, weight: Callable[[V], int] = lambda _: 1) -> None:
        super().__init__()
        self.budget, self.weight, self.total = budget, weight, 0

    def put(self, key: K, value: V) -> None:
        if key in self:
            self.total -= self.weight(self.pop(key))
        added = self.weight(value)
        while self and self.total + added > self.budget:
            self.total -= self.weight(self.pop(next(iter(self))))
        self[key] = value
        self.total += added


class HotRoutes:
    """Requests FastAPI accepted, by exact (path, query string), the newest 4,096."""

    def __init__(self, size: int = 4096) -> None:
        self._known: Bounded[tuple[str, bytes], Hot] = Bounded(size)

    def get(self, scope: Scope) -> Hot | None:
        return self._known.get((scope["path"], scope["query_string"]))

    def remember(self, scope: Scope, hot: Hot) -> None:
        self._known.put((scope["path"], scope["query_string"]), hot)


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
        host_allowed: Callable[[list[bytes]], bool],
        cors: bool,
        trusted_proxies: Container[str],
    ) -> None:
        self.app, self.routes, self.cache = app, routes, cache
        self.key_digests, self.auth_failures, self.metrics = key_digests, auth_failures, metrics
        self.host_allowed, self.cors, self.trusted = host_allowed, cors, trusted_proxies
        # answers as sent, by (ETag, max-age, gzip accepted, ETag matched): bounded
        # as many bytes as the cache itself may hold (CACHE_MAX_MB): together, twice that
        self._built: Bounded[tuple[str, int, bool, bool], Built] = Bounded(
            cache.max_bytes, lambda built: len(built.body) + 256
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            hot = self.routes.get(scope)
            if hot is not None and await self._serve(hot, scope, send):
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

    async def _build(self, rendered: Rendered, max_age: int, *, gzip: bool, matched: bool) -> Built:
        """The answer as the route's response, compression and security headers make it,
        captured once per cached body and kind of request."""
        response = conditional(rendered, rendered.etag if matched else "", max_age=max_age)
        scope = {"type": "http", "path": "", "headers": [(b"accept-encoding", b"gzip")] * gzip}
        sent: list[Message] = []

        async def capture(message: Message) -> None:
            sent.append(message)

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await Compression(response)(scope, nothing, capture)
        start, body = sent
        status = start["status"]
        built = Built(status, secured(status, start["headers"]), body["body"])
        if len(body["body"]) <= self.cache.largest:  # what the cache would keep
            self._built.put((rendered.etag, max_age, gzip, matched), built)
        return built

    async def _serve(self, hot: Hot, scope: Scope, send: Send) -> bool:
        """Answer from the cache; False (nothing sent, nothing counted unless a refusal
        was) to let the app answer instead."""
        started = time.perf_counter()
        first: dict[bytes, bytes] = {}  # as Starlette reads a header: its first line
        forwarded: list[str] = []
        hosts: list[bytes] = []
        for name, value in scope["headers"]:
            first.setdefault(name, value)
            if name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == b"host":
                hosts.append(value)
        key = first.get(b"x-api-key")
        if_none_match = first.get(b"if-none-match", b"").decode("latin-1")
        gzip = b"gzip" in first.get(b"accept-encoding", b"")
        origin = first.get(b"origin")
        if not self.host_allowed(hosts) or (origin is not None and self.cors):
            return False
        fingerprint = self._fingerprint(key) if key else None  # empty: missing, as FastAPI
        if fingerprint is None:
            return False
        if self.auth_failures.blocking():
            peer = scope["client"][0] if scope.get("client") else "unknown"
            if self.auth_failures.blocked(address_of(peer, forwarded, self.trusted)):
                return False
        state = scope.setdefault("state", {})
        state["key_fingerprint"] = fingerprint
        verdict = state["rate_limit"] = await hot.limit.hit(f"key:{fingerprint}")
        if not verdict.allowed:
            return False  # the route answers the 429 with this verdict
        rendered = self.cache.peek(hot.key, hot.render)  # after the limit, as the route
        if rendered is None:
            return False  # the route renders it, with this verdict (counted once)
        request_id = request_id_of(scope)
        state["request_id"] = request_id
        tags = if_none_match.split(",") if if_none_match else ()
        matched = any(tag.strip() == rendered.etag for tag in tags)
        built = self._built.get((rendered.etag, hot.max_age, gzip, matched))
        if built is None:
            built = await self._build(rendered, hot.max_age, gzip=gzip, matched=matched)
        headers = with_request_headers(built.headers, scope, request_id)
        with request_context(request_id):
            try:
                await send(
                    {"type": "http.response.start", "status": built.status, "headers": headers}
                )
                await send({"type": "http.response.body", "body": built.body})
            finally:
                self.metrics.record(
                    scope, hot.template, built.status, time.perf_counter() - started
                )
                self.metrics.served_fast(hot.template)
        return True
