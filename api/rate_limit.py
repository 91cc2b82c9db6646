"""Rate limits with slowapi, per API key and route class.

The key is the caller's API-key fingerprint (set by `require_api_key`), else the client
address; `X-Forwarded-For` is honoured only when the direct peer is a configured trusted
proxy (`TRUSTED_PROXIES`; the right-most address not itself a trusted proxy is the client).
uvicorn's own proxy handling (`FORWARDED_ALLOW_IPS`) is off in `api.serve`: it would
rewrite the peer before this rule sees it. Each route class (`data`, `candles`, `export`,
`probes`) shares one counter per caller, with its limit from settings (`RATE_LIMIT_DEFAULT`,
`RATE_LIMIT_CANDLES`, `RATE_LIMIT_EXPORT`, `RATE_LIMIT_PROBES`). Storage is in-process
(`memory://`) or Redis (`RATE_LIMIT_STORAGE_URI=redis://...`), which makes limits hold
across workers and replicas. Responses carry `X-RateLimit-Limit/Remaining/Reset`; a
limited request gets a 429 problem with `Retry-After`.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cachetools import TTLCache
from limits import parse
from limits.storage import MemoryStorage, RedisStorage
from slowapi import Limiter
from starlette.requests import Request

from api.errors import Problem
from api.settings import ApiSettings

log = logging.getLogger("api.rate_limit")

EMPTY_CONFIG = Path(__file__).with_name("slowapi.env")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


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
    """The caller's address for per-address limits, from `TRUSTED_PROXIES` alone.

    Every `X-Forwarded-For` line counts (a proxy may append its own line rather than extend
    the first one; reading only the first would let the client's own line decide). The
    lines are joined in order and walked right to left past trusted proxies."""
    peer = request.client.host if request.client else "unknown"
    if peer not in trusted_proxies:
        return peer
    lines = request.headers.getlist("x-forwarded-for")
    hops = [hop.strip() for line in lines for hop in line.split(",")]
    for hop in reversed([h for h in hops if h]):
        if hop not in trusted_proxies:
            return hop
    return peer


class OneTripRedisStorage(RedisStorage):
    """Redis limit storage that answers a fixed-window hit *and* its window in one round trip.

    slowapi hits the limit before the route (INCRBY + EXPIRE, one script) and reads the
    window for the `X-RateLimit-*` headers after it (GET, then TTL): three synchronous
    round trips per request, each blocking the event loop (measured: Redis storage served
    a third of the requests memory storage did). Here the hit's script also returns the
    key's TTL, and the window read that follows (same key, within a second) is answered
    from it, so headers describe the state right after this request's own hit. Anything
    else (moving window, a key not hit recently) goes to Redis as before. `redis://`,
    `rediss://` and `redis+unix://` URIs use this storage (see `storage_uri`)."""

    STORAGE_SCHEME = ["onetrip+redis", "onetrip+rediss", "onetrip+redis+unix"]
    INCR_WITH_TTL = b"""
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if current == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("pttl", KEYS[1])}
"""

    def __init__(self, uri: str, **options: Any) -> None:
        self._seen: TTLCache[str, tuple[int, float]] = TTLCache(maxsize=16384, ttl=1.0)
        self._seen_lock = threading.Lock()  # sync routes check limits in worker threads
        super().__init__(uri.removeprefix("onetrip+"), **options)

    def initialize_storage(self, uri: str) -> None:
        super().initialize_storage(uri)
        self.lua_incr_with_ttl = self.get_connection().register_script(self.INCR_WITH_TTL)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        count, ttl_ms = self.lua_incr_with_ttl([self.prefixed_key(key)], [expiry, amount])
        with self._seen_lock:
            self._seen[key] = (int(count), time.time() + max(int(ttl_ms), 0) / 1000)
        return int(count)

    def _recent(self, key: str) -> tuple[int, float] | None:
        with self._seen_lock:
            return self._seen.get(key)

    def get(self, key: str) -> int:
        seen = self._recent(key)
        return seen[0] if seen else super().get(key)

    def get_expiry(self, key: str) -> float:
        seen = self._recent(key)
        return seen[1] if seen else super().get_expiry(key)


def storage_uri(configured: str, timeout_seconds: float) -> str:
    """The limiter's storage URI: Redis URIs go to `OneTripRedisStorage`, with socket
    timeouts (a call blocks the event loop; redis-py's default is to wait forever) unless
    the URI sets its own."""
    scheme = configured.split("://", 1)[0]
    if scheme not in ("redis", "rediss", "redis+unix"):
        return configured
    parts = urlsplit(configured)
    query = dict(parse_qsl(parts.query))
    for name in ("socket_timeout", "socket_connect_timeout"):
        query.setdefault(name, str(timeout_seconds))
    return "onetrip+" + urlunsplit(parts._replace(query=urlencode(query)))


def build_limiter(settings: ApiSettings) -> Limiter:
    trusted = TrustedProxies(settings.trusted_proxies)

    def caller(request: Request) -> str:
        fingerprint = getattr(request.state, "key_fingerprint", None)
        if fingerprint:
            return f"key:{fingerprint}"
        return f"ip:{client_address(request, trusted)}"

    return Limiter(
        key_func=caller,
        storage_uri=storage_uri(
            settings.rate_limit_storage_uri, settings.rate_limit_storage_timeout_seconds
        ),
        headers_enabled=True,
        strategy=settings.rate_limit_strategy,
        key_prefix=settings.rate_limit_key_prefix,
        config_filename=str(EMPTY_CONFIG),  # slowapi must not read our .env itself
        # Redis down: the same limits, counted per process in memory (slowapi re-checks
        # Redis with a growing back-off), instead of a 500 on every route and probe.
        in_memory_fallback_enabled=True,
    )


def storage_state(limiter: Limiter, settings: ApiSettings) -> dict[str, Any]:
    """Which storage counts the limits now: slowapi switches to its in-memory fallback while
    Redis fails, and back when it answers again."""
    configured = "memory" if settings.rate_limit_storage_uri.startswith("memory") else "redis"
    in_use = "memory" if isinstance(limiter.limiter.storage, MemoryStorage) else "redis"
    return {"configured": configured, "in_use": in_use, "degraded": configured != in_use}


class AuthFailureLimit:
    """Wrong keys per client address (`RATE_LIMIT_AUTH_FAILURES`), in the limiter's own
    storage. Checked before a key is compared: once an address is past the limit, every
    request from it is a 429 until the window ends, the right key too, or a guesser would
    still learn which guess was right (200 among 429s).

    The check reads a per-process record of blocked addresses (no storage round trip on
    every keyed request); the record is filled from the shared storage by the refused wrong
    key, so with several workers each one learns of a block at its first refusal."""

    def __init__(self, limiter: Limiter, settings: ApiSettings) -> None:
        self.limiter = limiter
        self.item = parse(settings.rate_limit_auth_failures)
        self.prefix = settings.rate_limit_key_prefix
        self.trusted = TrustedProxies(settings.trusted_proxies)
        self._blocked: TTLCache[str, float] = TTLCache(maxsize=65536, ttl=self.item.get_expiry())

    def check(self, request: Request) -> None:
        """429 when the caller's address is past the wrong-key limit."""
        until = self._blocked.get(client_address(request, self.trusted))
        now = time.time()
        if until is not None and until > now:
            self._refuse(until - now)

    def record(self, request: Request) -> None:
        address = client_address(request, self.trusted)
        identifiers = (self.prefix, "auth-failures", address)
        try:  # `limiter.limiter` is the in-memory fallback while Redis is down
            allowed = self.limiter.limiter.hit(self.item, *identifiers)
            reset = (
                0.0
                if allowed
                else self.limiter.limiter.get_window_stats(self.item, *identifiers).reset_time
            )
        except Exception:  # storage failing right now: the wrong key still gets its 401
            log.warning("auth-failure limit storage unreachable", exc_info=True)
            return
        if not allowed:
            until = max(reset, time.time() + 1)
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
class RouteLimits:
    """Decorators that put a route into its class (one shared counter per caller)."""

    data: Decorator
    candles: Decorator
    export: Decorator
    probes: Decorator

    @classmethod
    def build(cls, limiter: Limiter, settings: ApiSettings) -> RouteLimits:
        return cls(
            data=limiter.shared_limit(settings.rate_limit_default, scope="data"),
            candles=limiter.shared_limit(settings.rate_limit_candles, scope="candles"),
            export=limiter.shared_limit(settings.rate_limit_export, scope="export"),
            probes=limiter.shared_limit(settings.rate_limit_probes, scope="probes"),
        )
