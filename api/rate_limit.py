"""Rate limits per API key and route class, checked without blocking the event loop.

The key is the caller's API-key fingerprint (set by `require_api_key`), else the client
address; `X-Forwarded-For` is honoured only when the direct peer is a configured trusted
proxy (`TRUSTED_PROXIES`; the right-most address not itself a trusted proxy is the client).
uvicorn's own proxy handling (`FORWARDED_ALLOW_IPS`) is off in `api.serve`: it would
rewrite the peer before this rule sees it. Each route class (`data`, `candles`, `export`,
`probes`) shares one counter per caller, with its limit from settings (`RATE_LIMIT_DEFAULT`,
`RATE_LIMIT_CANDLES`, `RATE_LIMIT_EXPORT`, `RATE_LIMIT_PROBES`). Counters are the `limits`
library's: in-process (`memory://`) or in Redis (`RATE_LIMIT_STORAGE_URI=redis://...`,
through redis.asyncio, one round trip per hit for the fixed window), which makes limits
hold across workers and replicas. Responses carry `X-RateLimit-Limit/Remaining/Reset`; a
limited request gets a 429 problem with `Retry-After`. (slowapi, which the API used
before, checks limits synchronously: every Redis call blocked the event loop.)
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import ipaddress
import logging
import math
import time
import weakref
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from cachetools import TTLCache
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import STRATEGIES as SYNC_STRATEGIES
from redis.exceptions import NoScriptError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.errors import Problem
from api.settings import ApiSettings

log = logging.getLogger("api.rate_limit")


class TrustedProxies:
    """`TRUSTED_PROXIES`: exact addresses (or names, as a test client calls itself) and
    networks in CIDR form (`10.0.0.0/8`: an ingress or a platform router whose address
    changes). `in` is a set lookup, plus an address parse only when networks are given."""

    def __init__(self, entries: list[str]) -> None:
        networks = [e for e in entries if "/" in e]
        self.exact = frozenset(e for e in entries if "/" not in e)
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    def __contains__(self, host: object) -> bool:
        if host in self.exact:
            return True
        if not self.networks or not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def client_address(request: Request, trusted_proxies: Container[str]) -> str:
    """The caller's address for per-address limits, from `TRUSTED_PROXIES` alone."""
    peer = request.client.host if request.client else "unknown"
    return address_of(peer, request.headers.getlist("x-forwarded-for"), trusted_proxies)


def address_of(peer: str, forwarded: Sequence[str], trusted_proxies: Container[str]) -> str:
    """The direct peer, or behind trusted proxies the right-most address that is not one.

    Every `X-Forwarded-For` line counts (a proxy may append its own line rather than extend
    the first one; reading only the first would let the client's own line decide). The
    lines are joined in order and walked right to left past trusted proxies."""
    if peer not in trusted_proxies:
        return peer
    hops = [hop.strip() for line in forwarded for hop in line.split(",")]
    for hop in reversed([h for h in hops if h]):
        if hop not in trusted_proxies:
            return hop
    return peer


@dataclass(frozen=True, slots=True)
class Verdict:
    """One hit's outcome and the window it leaves, as the `X-RateLimit-*` headers say it."""

    allowed: bool
    limit: int
    remaining: int
    reset: float  # epoch seconds when the window frees a request again

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(math.ceil(self.reset)).encode()),
        ]

    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset - time.time()))


class Counts(Protocol):
    async def hit(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> Verdict: ...

    async def check(self) -> bool: ...


class MemoryCounts:
    """Counters in this process (limits' memory storage: no I/O, so no await needed)."""

    def __init__(self, strategy: str) -> None:
        self.limiter = SYNC_STRATEGIES[strategy](MemoryStorage())

    async def hit(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> Verdict:
        allowed = self.limiter.hit(item, *identifiers)
        reset, remaining = self.limiter.get_window_stats(item, *identifiers)
        return Verdict(allowed, item.amount, remaining, reset)

    async def check(self) -> bool:
        return True


class MemoryFixedWindow:
    """The fixed window in this process's memory, the default: per key a count and the
    window's end, the window starting at its first hit (limits' own semantics). limits'
    memory storage measured ~28 us per checked request here (locks, expiry bookkeeping and
    a second look-up for the headers), a sixth of a cached answer; this is ~1 us. Expired
    windows are swept once a minute, so memory follows the callers of the last window."""

    SWEEP_SECONDS = 60.0

    def __init__(self) -> None:
        self._windows: dict[str, list[float]] = {}  # key -> [count, window end]
        self._sweep_at = 0.0

    async def hit(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> Verdict:
        key = item.key_for(*identifiers)
        now = time.time()
        window = self._windows.get(key)
        if window is None or window[1] <= now:
            window = self._windows[key] = [0, now + item.get_expiry()]
        window[0] += 1
        if now >= self._sweep_at:
            self._sweep(now)
        count = int(window[0])
        return Verdict(count <= item.amount, item.amount, max(0, item.amount - count), window[1])

    def _sweep(self, now: float) -> None:
        self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
        self._sweep_at = now + self.SWEEP_SECONDS

    async def check(self) -> bool:
        return True


@dataclass
class _Lane:
    """One event loop's Redis client and the hits waiting for its next pipeline."""

    client: Any
    pending: list[tuple[str, int, asyncio.Future[tuple[int, int]]]] = field(default_factory=list)
    scheduled: bool = False


class RedisFixedWindow:
    """A fixed window in Redis in one round trip, on the event loop without blocking it
    (redis.asyncio): one script increments the key, starts its expiry on the window's
    first hit and returns the count with the key's remaining time, which is all the
    headers need (slowapi used to block the loop for three calls: the hit, then GET and
    TTL for the headers). Hits that arrive in the same turn of the event loop go out
    together, one pipeline for all of them: under load, one round trip and one reply
    parse serve many requests. Keys are limits' own (`LIMITS:LIMITER/<prefix>/...`)."""

    SCRIPT = """
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if current == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("pttl", KEYS[1])}
"""
    SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts so

    def __init__(self, uri: str, timeout_seconds: float) -> None:
        self.uri = uri
        # a waiter's own bound, should a reply never come (the socket timeout is the first)
        self.wait_seconds = 2 * timeout_seconds + 1
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = (
            weakref.WeakKeyDictionary()
        )

    def _lane(self) -> _Lane:
        """This event loop's client and queue (tests and embedders run several loops)."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop)
        if lane is None:
            lane = self._lanes[loop] = _Lane(aioredis.Redis.from_url(self.uri))
        return lane

    async def hit(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> Verdict:
        key = f"{RedisStorage.PREFIX}:{item.key_for(*identifiers)}"
        lane = self._lane()
        answer: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        lane.pending.append((key, item.get_expiry(), answer))
        if not lane.scheduled:  # the first of this turn: send them all next turn
            lane.scheduled = True
            asyncio.get_running_loop().create_task(self._send(lane))
        count, ttl_ms = await asyncio.wait_for(answer, self.wait_seconds)
        reset = time.time() + max(ttl_ms, 0) / 1000
        return Verdict(count <= item.amount, item.amount, max(0, item.amount - count), reset)

    async def _send(self, lane: _Lane) -> None:
        batch, lane.pending, lane.scheduled = lane.pending, [], False
        try:
            replies = await self._run(lane.client, batch)
        except BaseException as exc:  # every waiter gets the error (and counts in memory)
            for _, _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc if isinstance(exc, Exception) else TimeoutError())
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, answer), (count, ttl_ms) in zip(batch, replies, strict=True):
            if not answer.done():
                answer.set_result((int(count), int(ttl_ms)))

    async def _run(self, client: Any, batch: list[tuple[str, int, Any]]) -> list[Any]:
        for attempt in (1, 2):
            pipe = client.pipeline(transaction=False)
            for key, expiry, _ in batch:
                pipe.evalsha(self.SHA, 1, key, expiry, 1)
            try:
                return list(await pipe.execute())
            except NoScriptError:  # a new or flushed server: load it once
                if attempt == 2:
                    raise
                await client.script_load(self.SCRIPT)
        raise AssertionError("unreachable")

    async def check(self) -> bool:
        return bool(await self._lane().client.ping())


class RedisMovingWindow:
    """The moving window in Redis through limits' async storage: the hit, then the window
    for the headers (two round trips; the fixed window needs one)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._limiters: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, MovingWindowRateLimiter
        ] = weakref.WeakKeyDictionary()

    def _limiter(self) -> MovingWindowRateLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            storage = AsyncRedisStorage(f"async+{self.uri}", implementation="redispy")
            limiter = self._limiters[loop] = MovingWindowRateLimiter(storage)
        return limiter

    async def hit(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> Verdict:
        limiter = self._limiter()
        allowed = await limiter.hit(item, *identifiers)
        reset, remaining = await limiter.get_window_stats(item, *identifiers)
        return Verdict(allowed, item.amount, remaining, reset)

    async def check(self) -> bool:
        return await self._limiter().storage.check()


def storage_uri(configured: str, timeout_seconds: float) -> str:
    """The storage URI with socket timeouts (redis-py's default is to wait forever) unless
    the URI sets its own."""
    scheme = configured.split("://", 1)[0]
    if scheme not in ("redis", "rediss", "redis+unix"):
        return configured
    parts = urlsplit(configured)
    query = dict(parse_qsl(parts.query))
    for name in ("socket_timeout", "socket_connect_timeout"):
        query.setdefault(name, str(timeout_seconds))
    return urlunsplit(parts._replace(query=urlencode(query)))


class RateLimits:
    """Every limit's counters: Redis when configured (shared by workers and replicas),
    else this process's memory. While Redis fails, the same limits are counted per process
    in memory (a warning when it starts, an info line when Redis is back); Redis is tried
    again after 1, 2, 4 ... 32 s, so an outage costs no time per request."""

    RETRY_MAX_SECONDS = 32.0

    def __init__(self, settings: ApiSettings) -> None:
        uri = storage_uri(
            settings.rate_limit_storage_uri, settings.rate_limit_storage_timeout_seconds
        )
        strategy = settings.rate_limit_strategy
        self.configured = "memory" if uri.startswith("memory") else "redis"
        self.fallback: Counts = (
            MemoryFixedWindow() if strategy == "fixed-window" else MemoryCounts(strategy)
        )
        self.primary: Counts
        if self.configured == "memory":
            self.primary = self.fallback
        elif strategy == "fixed-window":
            self.primary = RedisFixedWindow(uri, settings.rate_limit_storage_timeout_seconds)
        else:
            self.primary = RedisMovingWindow(uri)
        self._retry_at: float | None = None  # set while the storage is failing
        self._backoff = 1.0

    @property
    def in_use(self) -> str:
        return self.configured if self._retry_at is None else "memory"

    def state(self) -> dict[str, Any]:
        """Which storage counts the limits now (for /health)."""
        in_use = self.in_use
        return {
            "configured": self.configured,
            "in_use": in_use,
            "degraded": in_use != self.configured,
        }

    async def hit(self, item: RateLimitItem, *identifiers: str) -> Verdict:
        if self._retry_at is not None and time.monotonic() < self._retry_at:
            return await self.fallback.hit(item, identifiers)
        try:
            verdict = await self.primary.hit(item, identifiers)
        except Exception:  # redis errors, refused connections, timeouts: count in memory
            self._failed()
            return await self.fallback.hit(item, identifiers)
        if self._retry_at is not None:
            log.info("rate limit storage recovered")
            self._retry_at, self._backoff = None, 1.0
        return verdict

    def _failed(self) -> None:
        """One failure per retry period moves the back-off on: the waiters of one failed
        pipeline (or of one retry) all land here, and count as one."""
        now = time.monotonic()
        if self._retry_at is None:
            log.warning("rate limit storage unreachable: counting limits in memory")
        elif now < self._retry_at:
            return  # this period's failure was already counted
        else:
            self._backoff = min(self._backoff * 2, self.RETRY_MAX_SECONDS)
        self._retry_at = now + self._backoff


class AuthFailureLimit:
    """Wrong keys per client address (`RATE_LIMIT_AUTH_FAILURES`), in the limits' own
    storage. Checked before a key is compared: once an address is past the limit, every
    request from it is a 429 until the window ends, the right key too, or a guesser would
    still learn which guess was right (200 among 429s).

    The check reads a per-process record of blocked addresses (no storage round trip on
    every keyed request); the record is filled from the shared storage by the refused wrong
    key, so with several workers each one learns of a block at its first refusal."""

    def __init__(self, limits: RateLimits, settings: ApiSettings) -> None:
        self.limits = limits
        self.item = parse(settings.rate_limit_auth_failures)
        self.prefix = settings.rate_limit_key_prefix
        self.trusted = TrustedProxies(settings.trusted_proxies)
        self._blocked: TTLCache[str, float] = TTLCache(maxsize=65536, ttl=self.item.get_expiry())

    def blocking(self) -> bool:
        """Whether any address is blocked now (the fast path skips the check when not)."""
        return bool(self._blocked)

    def blocked(self, address: str) -> bool:
        until = self._blocked.get(address)
        return until is not None and until > time.time()

    def check(self, request: Request) -> None:
        """429 when the caller's address is past the wrong-key limit."""
        until = self._blocked.get(client_address(request, self.trusted))
        now = time.time()
        if until is not None and until > now:
            self._refuse(until - now)

    async def record(self, request: Request) -> None:
        address = client_address(request, self.trusted)
        verdict = await self.limits.hit(self.item, self.prefix, "auth-failures", address)
        if not verdict.allowed:
            until = max(verdict.reset, time.time() + 1)
            self._blocked[address] = until
            self._refuse(until - time.time())

    def _refuse(self, seconds: float) -> NoReturn:
        raise Problem(
            429,
            "too_many_auth_failures",
            "too many requests with a wrong API key",
            headers={"Retry-After": str(max(1, math.ceil(seconds)))},
        )


@dataclass(frozen=True)
class LimitClass:
    """One route class (`data`, `candles`, `export`, `probes`): one counter per caller
    shared by its routes. Used as a decorator on a route, it hits the counter after the
    route's parameters and key were accepted and before its body runs; the verdict goes
    into the request's state, where `api.middleware` turns it into `X-RateLimit-*` headers
    (on the refusal too, a 429 problem with `Retry-After`)."""

    name: str
    item: RateLimitItem
    limits: RateLimits
    prefix: str
    trusted: TrustedProxies

    def caller(self, state: dict[str, Any], peer: str, forwarded: list[str]) -> str:
        fingerprint = state.get("key_fingerprint")
        if fingerprint:
            return f"key:{fingerprint}"
        return f"ip:{address_of(peer, forwarded, self.trusted)}"

    async def hit(self, caller: str) -> Verdict:
        return await self.limits.hit(self.item, self.prefix, caller, self.name)

    async def check(self, request: Request) -> None:
        state: dict[str, Any] = request.scope.setdefault("state", {})
        verdict = state.get("rate_limit")  # the fast path's refusal, already counted
        if verdict is None:
            peer = request.client.host if request.client else "unknown"
            caller = self.caller(state, peer, request.headers.getlist("x-forwarded-for"))
            verdict = state["rate_limit"] = await self.hit(caller)
        if not verdict.allowed:
            raise Problem(
                429,
                "rate_limited",
                f"rate limit exceeded: {self.item}",
                headers={"Retry-After": str(verdict.retry_after())},
            )

    def __call__(self, route: Callable[..., Any]) -> Callable[..., Any]:
        is_async = inspect.iscoroutinefunction(route)

        @functools.wraps(route)  # FastAPI reads the route's own signature through this
        async def limited(*args: Any, **kwargs: Any) -> Any:
            await self.check(kwargs["request"])
            if is_async:
                return await route(*args, **kwargs)
            return await run_in_threadpool(route, *args, **kwargs)

        return limited


@dataclass(frozen=True)
class RouteLimits:
    """The route classes, each with its limit from settings."""

    data: LimitClass
    candles: LimitClass
    export: LimitClass
    probes: LimitClass

    @classmethod
    def build(cls, limits: RateLimits, settings: ApiSettings) -> RouteLimits:
        trusted = TrustedProxies(settings.trusted_proxies)
        prefix = settings.rate_limit_key_prefix

        def named(name: str, limit: str) -> LimitClass:
            return LimitClass(name, parse(limit), limits, prefix, trusted)

        return cls(
            data=named("data", settings.rate_limit_default),
            candles=named("candles", settings.rate_limit_candles),
            export=named("export", settings.rate_limit_export),
            probes=named("probes", settings.rate_limit_probes),
        )
