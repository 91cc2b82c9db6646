"""Gemini public REST client: paced, retried, circuit-broken, cached.

Each request goes through, outermost first:
- a TTL cache (cachetools) for slow-changing answers: the symbol list and symbol details
  (`GEMINI_SYMBOLS_TTL_SECONDS`, hours) and tickers (`GEMINI_TICKER_TTL_SECONDS`, seconds);
- retries (tenacity): exponential backoff with jitter, only for connection errors,
  timeouts, 429 and 5xx; a 400 (`InvalidSymbol`, bad time frame) is final;
- a circuit breaker per host (pybreaker): after `GEMINI_BREAKER_FAILURES` failed attempts in
  a row it opens, and calls fail at once (`circuit_open`) for
  `GEMINI_BREAKER_RESET_SECONDS`, so one dead exchange cannot stall a run;
- a pacer (pyrate-limiter): at most `GEMINI_BURST` requests at once and
  `GEMINI_REQUESTS_PER_MINUTE` per minute (Gemini allows 120/minute, sends no rate-limit
  headers and no Retry-After, so the client must keep itself under it).

Every call needs no key; `GEMINI_API_KEY` is never sent on these endpoints.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pybreaker
import requests
from cachetools import TTLCache
from pydantic import ValidationError
from pyrate_limiter import Duration, Limiter, Rate
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from etl.core.errors import GeminiError, GeminiRequestError, GeminiTransientError
from etl.core.settings import GEMINI_TIME_FRAMES, Settings
from etl.extract.gemini_models import (
    CandleRow,
    GeminiSymbol,
    PriceFeedItem,
    PubTicker,
    SymbolDetails,
    TickerV2,
)

log = logging.getLogger(__name__)
USER_AGENT = "crypto-etl-api/0.1 (+https://github.com/; self-hosted price aggregator)"
PACER_MAX_WAIT_SECONDS = 120
T = TypeVar("T")

_BREAKERS: dict[str, pybreaker.CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(host: str, settings: Settings) -> pybreaker.CircuitBreaker:
    """One breaker per host and process: every client talking to that host shares it."""
    with _BREAKERS_LOCK:
        if host not in _BREAKERS:
            _BREAKERS[host] = pybreaker.CircuitBreaker(
                fail_max=settings.gemini_breaker_failures,
                reset_timeout=settings.gemini_breaker_reset_seconds,
                exclude=[GeminiRequestError],
                throw_new_error_on_trip=False,
                name=host,
            )
        return _BREAKERS[host]


def reset_breakers() -> None:
    """Forget every breaker (tests, or an operator after fixing the network)."""
    with _BREAKERS_LOCK:
        _BREAKERS.clear()


@dataclass(frozen=True)
class SymbolList:
    symbols: list[GeminiSymbol]
    fetched_at: float  # epoch seconds of the successful fetch
    stale: bool  # True when served from the last good answer because Gemini failed


def gemini_symbols(client: GeminiClient) -> SymbolList:
    """Gemini's tradable symbols with base/quote parsed and perpetuals marked, for the API.

    Served from the client's cache (hours); when a refresh fails, the last good list is
    returned marked `stale`; with nothing ever fetched the `GeminiError` propagates (the API
    answers 503 with Retry-After)."""
    try:
        return client.symbol_list()
    except GeminiError:
        if client.last_symbols is None:
            raise
        return replace(client.last_symbols, stale=True)


class GeminiClient:
    def __init__(self, settings: Settings, *, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.base_url = settings.gemini_base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.timeout = (settings.gemini_connect_timeout, settings.gemini_read_timeout)
        self.breaker = breaker_for(self.host, settings)
        per_burst_ms = int(settings.gemini_burst * 60_000 / settings.gemini_requests_per_minute)
        self.pacer = Limiter(
            [
                Rate(settings.gemini_burst, per_burst_ms),
                Rate(settings.gemini_requests_per_minute, Duration.MINUTE),
            ]
        )
        self._slow_cache: TTLCache[str, Any] = TTLCache(
            maxsize=1024, ttl=settings.gemini_symbols_ttl_seconds
        )
        self._fast_cache: TTLCache[str, Any] = TTLCache(
            maxsize=1024, ttl=settings.gemini_ticker_ttl_seconds
        )
        self._cache_lock = threading.Lock()
        self._last_symbols: SymbolList | None = None

    @property
    def last_symbols(self) -> SymbolList | None:
        return self._last_symbols

    @property
    def breaker_state(self) -> str:
        return str(self.breaker.current_state)

    def close(self) -> None:
        self.session.close()

    # -- endpoints ---------------------------------------------------------------------

    def symbols(self) -> list[GeminiSymbol]:
        """`/v1/symbols`, split into base/quote (cached for hours)."""
        return self.symbol_list().symbols

    def symbol_list(self) -> SymbolList:
        with self._cache_lock:
            cached: SymbolList | None = self._slow_cache.get("symbols")
        if cached is not None:
            return cached
        raw = self._request("/v1/symbols")
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise GeminiError("malformed", f"/v1/symbols is not a list of strings: {raw!r:.80}")
        fetched = SymbolList([GeminiSymbol.parse(s) for s in raw], time.time(), stale=False)
        with self._cache_lock:
            self._slow_cache["symbols"] = fetched
            self._last_symbols = fetched
        return fetched

    def symbol_details(self, symbol: str) -> SymbolDetails:
        return self._model(SymbolDetails, self._slow_cache, f"/v1/symbols/details/{symbol}")

    def pubticker(self, symbol: str) -> PubTicker:
        return self._model(PubTicker, self._fast_cache, f"/v1/pubticker/{symbol}")

    def ticker_v2(self, symbol: str) -> TickerV2:
        return self._model(TickerV2, self._fast_cache, f"/v2/ticker/{symbol}")

    def pricefeed(self) -> list[PriceFeedItem]:
        raw = self._cached(self._fast_cache, "/v1/pricefeed")
        if not isinstance(raw, list):
            raise GeminiError("malformed", "/v1/pricefeed is not a list")
        return [self._validate(PriceFeedItem, item, "/v1/pricefeed") for item in raw]

    def candles(self, symbol: str, interval: str) -> list[CandleRow]:
        """`/v2/candles/{symbol}/{frame}` for our interval name (1h -> 1hr, 1d -> 1day),
        oldest first. Not cached: the window moves. Malformed rows raise."""
        frame = GEMINI_TIME_FRAMES.get(interval)
        if frame is None:
            raise GeminiRequestError("bad_request", f"Gemini has no {interval} candles")
        path = f"/v2/candles/{symbol}/{frame}"
        raw = self._request(path)
        if not isinstance(raw, list):
            raise GeminiError("malformed", f"{path} is not a list: {raw!r:.80}")
        try:
            rows = [CandleRow.from_list(row) for row in raw]
        except (ValueError, ValidationError) as exc:
            raise GeminiError("malformed", f"{path}: {exc}") from exc
        return sorted(rows, key=lambda r: r.time_ms)

    # -- plumbing ----------------------------------------------------------------------

    def _model(self, model: type[T], cache: TTLCache[str, Any], path: str) -> T:
        return self._validate(model, self._cached(cache, path), path)

    @staticmethod
    def _validate(model: type[T], raw: Any, path: str) -> T:
        try:
            return model.model_validate(raw)  # type: ignore[attr-defined, no-any-return]
        except ValidationError as exc:
            errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise GeminiError("malformed", f"{path}: {errors}") from exc

    def _cached(self, cache: TTLCache[str, Any], path: str) -> Any:
        with self._cache_lock:
            if path in cache:
                return cache[path]
        value = self._request(path)
        with self._cache_lock:
            cache[path] = value
        return value

    def _request(self, path: str) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.gemini_retries),
            wait=wait_exponential_jitter(
                initial=self.settings.gemini_backoff_seconds,
                max=self.settings.gemini_backoff_max_seconds,
                jitter=self.settings.gemini_backoff_seconds,
            ),
            retry=retry_if_exception_type(GeminiTransientError),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        return retrying(self._guarded, path)

    def _guarded(self, path: str) -> Any:
        try:
            return self.breaker.call(self._attempt, path)
        except pybreaker.CircuitBreakerError as exc:
            raise GeminiError(
                "circuit_open", f"{self.host} failed repeatedly; not calling it for now"
            ) from exc

    def _attempt(self, path: str) -> Any:
        if not self.pacer.try_acquire("gemini", blocking=True, timeout=PACER_MAX_WAIT_SECONDS):
            raise GeminiTransientError("rate_limited", "client-side pacer wait timed out")
        url = self.base_url + path
        try:
            response = self.session.get(url, timeout=self.timeout)
        except requests.Timeout as exc:
            raise GeminiTransientError("timeout", f"{path}: {type(exc).__name__}") from exc
        except requests.RequestException as exc:
            raise GeminiTransientError("connection", f"{path}: {type(exc).__name__}") from exc
        return _decode(path, response)


def _decode(path: str, response: requests.Response) -> Any:
    status = response.status_code
    if status == 429:
        raise GeminiTransientError(
            "rate_limited", f"{path}: 429 {_reason(response)}", status=status
        )
    if status >= 500:
        raise GeminiTransientError(
            "server_error", f"{path}: {status} {_reason(response)}", status=status
        )
    if status >= 400:
        raise GeminiRequestError(
            "bad_request", f"{path}: {status} {_reason(response)}", status=status
        )
    try:
        return response.json()
    except ValueError as exc:
        raise GeminiError(
            "malformed", f"{path}: body is not JSON ({len(response.content)} bytes)"
        ) from exc


def _reason(response: requests.Response) -> str:
    """Gemini's `reason`/`message` when the body is its JSON error, else the content type."""
    try:
        body = response.json()
    except ValueError:
        return f"(non-JSON {response.headers.get('Content-Type', 'body')})"
    if isinstance(body, dict):
        return f"{body.get('reason', '')} {body.get('message', '')}".strip()
    return ""
