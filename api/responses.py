"""JSON responses with ETag / 304 and Cache-Control, and the hot-read cache.

Bodies are serialised once by pydantic; the ETag is a hash of the body, so an unchanged
answer is a 304 for a client that sends `If-None-Match`. Hot reads (`latest`, `metrics`,
`symbols`) keep their rendered body for `CACHE_TTL_SECONDS` in-process: a cache, not shared
state (each replica fills its own), so nothing depends on it for correctness.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cachetools import TTLCache
from fastapi import Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from etl.intervals import INTERVAL_MS
from etl.models import from_epoch_ms


def utc(ms: int) -> datetime:
    return from_epoch_ms(ms)


def age_seconds(ms: int) -> float:
    return max(0.0, (datetime.now(UTC) - from_epoch_ms(ms)).total_seconds())


def freshness(metric: dict[str, Any], stale_after_intervals: float) -> tuple[int, float, bool]:
    """(close time ms, age s, stale) of a series' newest bar, from its metric row: stale
    once older than `stale_after_intervals` bar intervals."""
    step = INTERVAL_MS[metric["interval"]]
    close_ms = int(metric["as_of"]) + step
    age = age_seconds(close_ms)
    return close_ms, age, age > stale_after_intervals * step / 1000


def body_of(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def respond(request: Request, body: bytes, *, max_age: int) -> Response:
    etag = 'W/"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": f"private, max-age={max_age}"}
    wanted = request.headers.get("if-none-match", "")
    if etag in (tag.strip() for tag in wanted.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


class HotCache:
    """Rendered bodies for `ttl_seconds`. Single-flight: when an entry expires under load,
    one request renders it and the others wait for that render instead of all querying."""

    def __init__(self, ttl_seconds: float) -> None:
        self._cache: TTLCache[str, bytes] = TTLCache(maxsize=4096, ttl=ttl_seconds)
        self._locks: dict[str, asyncio.Lock] = {}
        self.enabled = ttl_seconds > 0

    async def body(self, key: str, render: Callable[[], bytes]) -> bytes:
        """The cached body, or `render()` run in the thread pool (it queries the DB)."""
        if not self.enabled:
            return await run_in_threadpool(render)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            if cached is None:
                cached = await run_in_threadpool(render)
                self._cache[key] = cached
        return cached
