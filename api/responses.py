"""JSON responses with ETag / 304 and Cache-Control, and the hot-read cache.

Bodies are serialised once by pydantic; the ETag is a hash of the body, so an unchanged
answer is a 304 for a client that sends `If-None-Match`. Hot reads (`latest`, `metrics`,
`symbols`) keep their rendered body for `CACHE_TTL_SECONDS` in-process: a cache, not shared
state (each replica fills its own), so nothing depends on it for correctness.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cachetools import LRUCache
from fastapi import Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.errors import is_client_error
from etl.core.clock import from_epoch_ms
from etl.core.intervals import INTERVAL_MS

log = logging.getLogger("api.cache")


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


def etag_of(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest()[:20] + '"'


class Rendered(NamedTuple):
    """A response body and its ETag, computed together once (the hash is per render, not
    per request, for cached bodies)."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        return cls(body, etag_of(body))


def respond(request: Request, answer: bytes | Rendered, *, max_age: int) -> Response:
    return conditional(answer, request.headers.get("if-none-match", ""), max_age=max_age)


def conditional(answer: bytes | Rendered, if_none_match: str, *, max_age: int) -> Response:
    """The answer, or a 304 when `if_none_match` names its ETag."""
    rendered = answer if isinstance(answer, Rendered) else Rendered.of(answer)
    # Vary: a browser keeps a keyed answer for max-age; without it, the same URL asked
    # with another key (or none, e.g. after the dashboard's logout) got the cached answer.
    headers = {
        "ETag": rendered.etag,
        "Cache-Control": f"private, max-age={max_age}",
        "Vary": "X-API-Key",
    }
    if rendered.etag in (tag.strip() for tag in if_none_match.split(",")):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type="application/json", headers=headers)


@dataclass(slots=True)
class _Entry:
    rendered: Rendered
    rendered_at: float
    refresh_at: float  # when the next background refresh may start


class HotCache:
    """Rendered bodies of hot reads, refreshed behind the request path.

    Fresh for `ttl_seconds`. After that an entry is still served, for at most
    `stale_seconds` more, while one background task re-renders it: a request never waits
    for the database once a body exists, so an expiry under load is not a latency spike.
    A failed refresh is logged and retried after another `ttl_seconds`, not per request.
    A miss (or an entry past `stale_seconds`, e.g. because refreshes keep failing) renders
    in the request, single-flight: one render, every waiter gets its body or its error.
    A cache, not shared state: each replica fills its own, and nothing depends on it for
    correctness."""

    def __init__(
        self,
        ttl_seconds: float,
        stale_seconds: float = 0.0,
        max_bytes: int = 64 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.stale = ttl_seconds, stale_seconds
        self._clock = clock  # injectable: tests move time instead of sleeping
        self.enabled = ttl_seconds > 0
        # Bounded by the bytes held, not entries: a 5,000-bar page is ~1 MB. A body over
        # 1/16 of the budget is served but not kept.
        self._entries: LRUCache[str, _Entry] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: len(entry.rendered.body) + 256
        )
        self.max_bytes, self.largest = max_bytes, max_bytes // 16
        self._rendering: dict[str, asyncio.Task[Rendered]] = {}  # misses being rendered
        self._refreshing: dict[str, asyncio.Task[Rendered]] = {}  # stale entries, behind
        self._generation = 0  # bumped by invalidate: a render begun before it is not kept

    def invalidate(self, prefix: str) -> int:
        """Drop every entry whose key starts with `prefix` (a new price makes `latest?...`
        wrong at once, not after the TTL); returns how many were dropped. Renders already
        running finish for their waiters but are not kept: they may predate the change."""
        self._generation += 1
        stale = [key for key in self._entries if key.startswith(prefix)]
        for key in stale:
            del self._entries[key]
        return len(stale)

    def peek(self, key: str, render: Callable[[], bytes]) -> Rendered | None:
        """The cached answer if there is one to serve (fresh, or stale with a background
        refresh started), else None: never waits."""
        entry = self._entries.get(key) if self.enabled else None
        if entry is None:
            return None
        now = self._clock()
        if now - entry.rendered_at >= self.ttl + self.stale:
            return None
        if now >= entry.refresh_at and key not in self._refreshing:
            entry.refresh_at = now + self.ttl  # the next try, should this one fail
            self._start(key, render, self._refreshing)
        return entry.rendered

    async def get(self, key: str, render: Callable[[], bytes]) -> Rendered:
        """The cached answer, or `render()` run in the thread pool (it queries the DB)."""
        if not self.enabled:
            return await run_in_threadpool(lambda: Rendered.of(render()))
        cached = self.peek(key, render)
        if cached is not None:
            return cached
        # Single flight: waiters share the one render's task, so they all wake together
        # when it is done (a lock would hand over one waiter per loop iteration).
        task = self._rendering.get(key) or self._start(key, render, self._rendering)
        return await asyncio.shield(task)

    def _start(
        self, key: str, render: Callable[[], bytes], flights: dict[str, asyncio.Task[Rendered]]
    ) -> asyncio.Task[Rendered]:
        generation = self._generation

        async def run() -> Rendered:
            try:
                rendered = await run_in_threadpool(lambda: Rendered.of(render()))
                now = self._clock()
                if len(rendered.body) <= self.largest and generation == self._generation:
                    self._entries[key] = _Entry(rendered, now, now + self.ttl)
                return rendered
            finally:
                del flights[key]

        task = asyncio.create_task(run())
        flights[key] = task
        task.add_done_callback(lambda done: _log_failure(key, done))
        return task


def _log_failure(key: str, task: asyncio.Task[Rendered]) -> None:
    """A failed render: its waiters got the error; a background refresh's only trace is
    this line, and the stale body stays until it ages out (a miss then reports it)."""
    if task.cancelled() or (error := task.exception()) is None:
        return
    if is_client_error(error):  # an unknown symbol is the caller's mistake: no traceback
        log.debug("cached %s answered %s", key, type(error).__name__)
    else:
        log.warning("rendering the cached %s failed", key, exc_info=error)
