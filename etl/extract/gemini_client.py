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
  headers and no Retry-After, so the client must keep itself under it). A caller that
  cannot wait (the API) passes a short `pacer_wait` and gets a `busy` error instead.

Every call, retries and pacer waits included, ends by `GEMINI_CALL_DEADLINE_SECONDS`, and a
body is streamed and abandoned past `GEMINI_MAX_BODY_BYTES` (5 MiB): a slow-drip or endless
server can neither hold a run nor fill memory. Deeply nested JSON is `malformed` too.

Every call needs no key; `GEMINI_API_KEY` is never sent on these endpoints.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
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
    stop_before_delay,
    wait_exponential_jitter,
)
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import ReadTimeoutError

from etl.core.errors import GeminiBusyError, GeminiError, GeminiRequestError, GeminiTransientError
from etl.core.settings import GEMINI_TIME_FRAMES, Settings
from etl.extract.breakers import reset_breakers as reset_breakers
from etl.extract.breakers import shared_breaker
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
PACER_MAX_WAIT_SECONDS = 120.0
API_PACER_WAIT_SECONDS = 3.0  # an API request answers 503 rather than queue longer
CHUNK_BYTES = 65_536
T = TypeVar("T")


def breaker_for(host: str, settings: Settings) -> pybreaker.CircuitBreaker:
    """One breaker per host and `GEMINI_BREAKER_*` values, per process; a 400 (our own bad
    request) never trips it."""
    return shared_breaker(
        host,
        fail_max=settings.gemini_breaker_failures,
        reset_seconds=settings.gemini_breaker_reset_seconds,
        exclude=[GeminiRequestError],
    )


@dataclass(frozen=True)
class SymbolList:
    symbols: list[GeminiSymbol]
    fetched_at: float  # epoch seconds of the successful fetch
    stale: bool  # True when served from the last good answer because Gemini failed


def gemini_symbols(
    client: GeminiClient, *, pacer_wait: float = API_PACER_WAIT_SECONDS
) -> SymbolList:
    """Gemini's tradable symbols with base/quote parsed and perpetuals marked, for the API.

    Served from the client's cache (hours); when a refresh fails, or the pacer has no slot
    within `pacer_wait` seconds, the last good list is returned marked `stale`; with nothing
    ever fetched the `GeminiError` propagates (the API answers 503 with Retry-After)."""
    try:
        return client.symbol_list(pacer_wait=pacer_wait)
    except GeminiError:
        if client.last_symbols is None:
            raise
        return replace(client.last_symbols, stale=True)


class GeminiClient:
    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock` times the answer caches (injectable: tests move time, never sleep)."""
        self.settings = settings
        self.base_url = settings.gemini_base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc
        self.session = session or requests.Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.max_body = settings.gemini_max_body_bytes
        self.breaker = breaker_for(self.host, settings)
        per_burst_ms = int(settings.gemini_burst * 60_000 / settings.gemini_requests_per_minute)
        self.pacer = Limiter(
            [
                Rate(settings.gemini_burst, per_burst_ms),
                Rate(settings.gemini_requests_per_minute, Duration.MINUTE),
            ]
        )
        self._slow_cache: TTLCache[str, Any] = TTLCache(
            maxsize=1024, ttl=settings.gemini_symbols_ttl_seconds, timer=clock
        )
        self._fast_cache: TTLCache[str, Any] = TTLCache(
            maxsize=1024, ttl=settings.gemini_ticker_ttl_seconds, timer=clock
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

    def symbol_list(self, *, pacer_wait: float = PACER_MAX_WAIT_SECONDS) -> SymbolList:
        with self._cache_lock:
            cached: SymbolList | None = self._slow_cache.get("symbols")
        if cached is not None:
            return cached
        raw = self._request("/v1/symbols", pacer_wait=pacer_wait)
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

    def _request(self, path: str, *, pacer_wait: float = PACER_MAX_WAIT_SECONDS) -> Any:
        budget = self.settings.gemini_call_deadline_seconds
        retrying = Retrying(
            # the deadline stops retries whose backoff would end past it
            stop=stop_after_attempt(self.settings.gemini_retries) | stop_before_delay(budget),
            wait=wait_exponential_jitter(
                initial=self.settings.gemini_backoff_seconds,
                max=self.settings.gemini_backoff_max_seconds,
                jitter=self.settings.gemini_backoff_seconds,
            ),
            retry=retry_if_exception_type(GeminiTransientError),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        return retrying(self._guarded, path, time.monotonic() + budget, pacer_wait)

    def _guarded(self, path: str, deadline: float, pacer_wait: float) -> Any:
        # The pacer is waited for outside the breaker: pybreaker holds its lock for the
        # whole guarded call, and a wait there would queue every other caller behind it.
        # While the breaker is open nothing is sent, so it is not waited for either.
        if self.breaker.current_state != pybreaker.STATE_OPEN:
            self._pace(path, min(pacer_wait, _remaining(path, deadline)))
        try:
            return self.breaker.call(self._attempt, path, deadline)
        except pybreaker.CircuitBreakerError as exc:
            raise GeminiError(
                "circuit_open", f"{self.host} failed repeatedly; not calling it for now"
            ) from exc

    def _pace(self, path: str, wait: float) -> None:
        if not self.pacer.try_acquire("gemini", blocking=True, timeout=wait):
            raise GeminiBusyError(
                "busy", f"{path}: client-side pacer had no slot within {wait:.1f}s"
            )

    def _attempt(self, path: str, deadline: float) -> Any:
        url = self.base_url + path
        remaining = _remaining(path, deadline)
        # each blocking socket operation ends by the deadline; _read_body checks it between
        # chunks, since a server dripping a byte at a time never trips a read timeout
        timeout = (
            min(self.settings.gemini_connect_timeout, remaining),
            min(self.settings.gemini_read_timeout, remaining),
        )
        try:
            with self.session.get(url, timeout=timeout, stream=True) as response:
                body = _read_body(path, response, self.max_body, deadline)
        # the body is read through urllib3 (read1), whose errors requests does not wrap
        except (requests.Timeout, ReadTimeoutError) as exc:
            raise GeminiTransientError("timeout", f"{path}: {type(exc).__name__}") from exc
        except (requests.RequestException, TransportError) as exc:
            raise GeminiTransientError("connection", f"{path}: {type(exc).__name__}") from exc
        return _decode(path, response, body)


def _remaining(path: str, deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise GeminiTransientError("timeout", f"{path}: call deadline passed")
    return remaining


def _read_body(path: str, response: requests.Response, cap: int, deadline: float) -> bytes:
    """The body, read a chunk at a time; past `cap` bytes or the deadline it is abandoned
    (the connection is closed, never pooled) instead of being read whole."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        raise GeminiError("malformed", f"{path}: body of {declared} bytes is over {cap}")
    chunks: list[bytes] = []
    size = 0
    while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
        size += len(chunk)
        if size > cap:
            raise GeminiError("malformed", f"{path}: body is over {cap} bytes")
        chunks.append(chunk)
        _remaining(path, deadline)
    return b"".join(chunks)


def _decode(path: str, response: requests.Response, body: bytes) -> Any:
    status = response.status_code
    if status == 429:
        raise GeminiTransientError(
            "rate_limited", f"{path}: 429 {_reason(response, body)}", status=status
        )
    if status >= 500:
        raise GeminiTransientError(
            "server_error", f"{path}: {status} {_reason(response, body)}", status=status
        )
    if status >= 400:
        raise GeminiRequestError(
            "bad_request", f"{path}: {status} {_reason(response, body)}", status=status
        )
    try:
        return json.loads(body)
    except ValueError as exc:
        raise GeminiError("malformed", f"{path}: body is not JSON ({len(body)} bytes)") from exc
    except RecursionError as exc:  # nesting deeper than the parser's stack
        raise GeminiError("malformed", f"{path}: JSON nested too deeply") from exc


def _reason(response: requests.Response, body: bytes) -> str:
    """Gemini's `reason`/`message` when the body is its JSON error, else the content type."""
    try:
        error = json.loads(body)
    except (ValueError, RecursionError):
        return f"(non-JSON {response.headers.get('Content-Type', 'body')})"
    if isinstance(error, dict):
        return f"{error.get('reason', '')} {error.get('message', '')}".strip()
    return ""
