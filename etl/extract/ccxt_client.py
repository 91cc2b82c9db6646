"""Exchange venues through ccxt (sync): markets, a ticker, recent bars, each call guarded.

One `VenueClient` per venue and run. Each call goes through, outermost first:
- retries (tenacity): exponential backoff with jitter from `EXCHANGE_BACKOFF_SECONDS`, up to
  `EXCHANGE_RETRIES` attempts, only for rate limits, unavailability and timeouts;
- the venue's circuit breaker (`etl.extract.breakers`, named `ccxt:<venue>`): after
  `EXCHANGE_BREAKER_FAILURES` failed attempts in a row it opens and calls fail at once
  (`circuit_open`) for `EXCHANGE_BREAKER_RESET_SECONDS`; our own bad requests never trip it;
- ccxt's own rate limiter (`enableRateLimit`): every request waits the venue's documented
  spacing (`rateLimit` times the endpoint's cost: Kraken 1 s, 1.2 s for OHLC; Bitstamp
  75 ms), so the client never bursts past a venue's public limit;
- ccxt's HTTP request with `EXCHANGE_TIMEOUT_SECONDS`.

Failures are classified once, from ccxt's exception hierarchy, into the kinds the run ledger
counts: `rate_limited` (429, DDoS protection), `timeout`, `unavailable` (5xx, maintenance,
connection refused or reset), `malformed` (a body ccxt could not read, or that read as no
data: an HTML page with status 200 parses to nothing), `bad_request` (an unknown symbol),
`other`.

`EXCHANGE_URLS` replaces the origin (scheme, host, port) of every API URL ccxt has for the
venue, keeping ccxt's paths: `bitstamp=https://proxy.example/bitstamp` sends
`/api/v2/ticker/btcusd/` to `https://proxy.example/bitstamp/api/v2/ticker/btcusd/`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import ccxt
import pybreaker
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from etl.core.errors import VenueError, VenueRequestError, VenueTransientError
from etl.core.settings import Settings
from etl.extract.breakers import shared_breaker

log = logging.getLogger(__name__)
T = TypeVar("T")
# What ccxt's parsers raise on a payload of the wrong shape (a list where a dict was due).
_PARSE_ERRORS = (TypeError, KeyError, ValueError, IndexError, AttributeError)
_NOT_ASKED = object()  # last_json_response before a request (markets already loaded)


@dataclass(frozen=True)
class VenueMarket:
    """A spot market as ccxt unifies it: `BTC/USD` whatever the venue calls it (XXBTZUSD)."""

    symbol: str
    venue_id: str
    base: str
    quote: str
    active: bool


@dataclass(frozen=True)
class VenueTicker:
    symbol: str
    bid: float | None
    ask: float | None
    last: float | None
    base_volume: float | None
    quote_volume: float | None
    timestamp: int | None  # the venue's own time (ms) when it gives one
    info: Any  # the venue's payload, stored as the ticker's raw text


def apply_url_override(urls: Any, override: str) -> Any:
    """ccxt's `urls['api']` (a URL or a nested dict of them) with every origin replaced by
    `override`'s, `override`'s path prefixed to ccxt's paths."""
    if isinstance(urls, dict):
        return {key: apply_url_override(value, override) for key, value in urls.items()}
    if not isinstance(urls, str):
        return urls
    base, ours = urlsplit(override), urlsplit(urls)
    path = base.path.rstrip("/") + ours.path
    return urlunsplit((base.scheme, base.netloc, path, ours.query, ours.fragment))


def failure_kind(exc: BaseException, status: int | None = None) -> tuple[str, type[VenueError]]:
    """The ledger's kind for a ccxt exception (refined by the HTTP status when ccxt could
    only say ExchangeError), and whether it is worth retrying."""
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return "rate_limited", VenueTransientError
    if isinstance(exc, ccxt.RequestTimeout):
        return "timeout", VenueTransientError
    if isinstance(exc, ccxt.BadResponse):
        return "malformed", VenueError
    if isinstance(exc, ccxt.NetworkError):  # ExchangeNotAvailable, OnMaintenance, refused
        return "unavailable", VenueTransientError
    if isinstance(exc, ccxt.BadRequest):  # BadSymbol too
        return "bad_request", VenueRequestError
    if status == 429:
        return "rate_limited", VenueTransientError
    if status is not None and status >= 500:
        return "unavailable", VenueTransientError
    if status is not None and status >= 400:
        return "bad_request", VenueRequestError
    return "other", VenueError


class VenueClient:
    def __init__(
        self, venue: str, settings: Settings, *, config: dict[str, Any] | None = None
    ) -> None:
        """`config` goes to ccxt's constructor over ours (tests pass a shorter `rateLimit`)."""
        if venue not in ccxt.exchanges:
            raise VenueRequestError(venue, "unsupported", "ccxt has no such exchange")
        self.venue = venue
        self.settings = settings
        options = {
            "enableRateLimit": True,
            "enableLastJsonResponse": True,  # None after a body that is not JSON
            "timeout": int(settings.exchange_timeout_seconds * 1000),
            **(config or {}),
        }
        self.exchange: Any = getattr(ccxt, venue)(options)
        override = settings.exchange_urls.get(venue)
        if override:
            self.exchange.urls["api"] = apply_url_override(self.exchange.urls["api"], override)
        # the HTTP status of the last response: a venue's own JSON error body makes ccxt
        # raise a generic ExchangeError before it looks at the status
        self._last_status: int | None = None
        self.exchange.session.hooks["response"].append(self._note_status)
        self.breaker = shared_breaker(
            f"ccxt:{venue}",
            fail_max=settings.exchange_breaker_failures,
            reset_seconds=settings.exchange_breaker_reset_seconds,
            exclude=[VenueRequestError],
        )

    def _note_status(self, response: Any, *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        self._last_status = int(response.status_code)

    @property
    def breaker_state(self) -> str:
        return str(self.breaker.current_state)

    @property
    def api_urls(self) -> Any:
        return self.exchange.urls["api"]

    def close(self) -> None:
        session = getattr(self.exchange, "session", None)
        if session is not None:
            session.close()

    # -- calls ---------------------------------------------------------------------------

    def markets(self) -> list[VenueMarket]:
        """The venue's spot markets (`load_markets`: what ccxt needs before any call)."""
        loaded = self._call("load_markets", self._load_markets)
        markets = [
            VenueMarket(
                symbol=str(m["symbol"]),
                venue_id=str(m["id"]),
                base=str(m["base"]),
                quote=str(m["quote"]),
                active=m.get("active") is not False,
            )
            for m in loaded.values()
            if m.get("spot") and m.get("base") and m.get("quote")
        ]
        if not markets:
            raise VenueError(self.venue, "malformed", "load_markets: no spot markets read")
        return markets

    def ticker(self, symbol: str) -> VenueTicker:
        raw = self._call(f"fetch_ticker {symbol}", lambda: self.exchange.fetch_ticker(symbol))
        ticker = VenueTicker(
            symbol=symbol,
            bid=_number(raw.get("bid")),
            ask=_number(raw.get("ask")),
            last=_number(raw.get("last")),
            base_volume=_number(raw.get("baseVolume")),
            quote_volume=_number(raw.get("quoteVolume")),
            timestamp=_integer(raw.get("timestamp")),
            info=raw.get("info"),
        )
        if ticker.bid is None and ticker.ask is None and ticker.last is None:
            raise VenueError(self.venue, "malformed", f"fetch_ticker {symbol}: no price read")
        return ticker

    def ohlcv(
        self, symbol: str, interval: str, *, since: int | None, limit: int
    ) -> list[list[Any]]:
        """Bars `[open ms, open, high, low, close, base volume]`, oldest first, from
        `since` (ms) when given, else the newest `limit`. The newest may still be open."""

        def fetch() -> list[list[Any]]:
            rows: list[list[Any]] = self.exchange.fetch_ohlcv(
                symbol, interval, since=since, limit=None if since is not None else limit
            )
            return rows

        rows = self._call(f"fetch_ohlcv {symbol} {interval}", fetch)
        if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) >= 6 for r in rows):
            raise VenueError(self.venue, "malformed", f"fetch_ohlcv {symbol}: not bars")
        return sorted(rows, key=lambda r: r[0] if isinstance(r[0], int | float) else -1)

    # -- plumbing --------------------------------------------------------------------------

    def _load_markets(self) -> dict[str, Any]:
        markets: dict[str, Any] = self.exchange.load_markets(reload=True)
        return markets

    def _call(self, what: str, fetch: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.exchange_retries),
            wait=wait_exponential_jitter(
                initial=self.settings.exchange_backoff_seconds,
                max=self.settings.exchange_backoff_seconds * 16,
                jitter=self.settings.exchange_backoff_seconds,
            ),
            retry=retry_if_exception_type(VenueTransientError),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        result: T = retrying(self._guarded, what, fetch)
        return result

    def _guarded(self, what: str, fetch: Callable[[], T]) -> T:
        try:
            return self.breaker.call(self._attempt, what, fetch)  # type: ignore[no-any-return]
        except pybreaker.CircuitBreakerError as exc:
            raise VenueError(
                self.venue, "circuit_open", "failed repeatedly; not calling it for now"
            ) from exc

    def _attempt(self, what: str, fetch: Callable[[], T]) -> T:
        started = time.monotonic()
        self._last_status = None
        self.exchange.last_json_response = _NOT_ASKED
        try:
            result = fetch()
        except ccxt.BaseError as exc:
            kind, error = failure_kind(exc, self._last_status)
            raise error(self.venue, kind, f"{what}: {_first_line(exc)}") from exc
        except _PARSE_ERRORS as exc:
            raise VenueError(
                self.venue, "malformed", f"{what}: {type(exc).__name__}: {_first_line(exc)}"
            ) from exc
        finally:
            log.debug(
                "venue call",
                extra={"venue": self.venue, "call": what, "seconds": time.monotonic() - started},
            )
        # ccxt hands a body it could not parse (an HTML page with status 200) to the
        # venue's parser as text, which often reads it as "no data" rather than failing
        if self.exchange.last_json_response is None:
            raise VenueError(self.venue, "malformed", f"{what}: the answer is not JSON")
        return result


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _first_line(exc: BaseException) -> str:
    """ccxt's messages carry the whole response body: keep the first 300 characters."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
