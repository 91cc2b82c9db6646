"""The venue sources: one per exchange of `EXCHANGES` but Gemini, fetched through ccxt.

Per run and venue: its markets (ccxt's `load_markets`) select, for each coin of `COIN_IDS`,
every active spot pair against a quote of `QUOTES` (`etl.extract.venue_pairs`). For each
pair: one ticker snapshot into `ticker` and one window of bars per interval of
`EXCHANGE_CANDLE_INTERVALS` into `candle`, both with `source` = the exchange id (`kraken`),
through the same validation, quarantine and upsert as every other source
(`etl.sources.live_rows`). A series resumes from its newest stored bar (asked of the venue
with `since`, the newest re-read as it may have grown); a new series starts with the last
`EXCHANGE_CANDLE_LIMIT` bars.

A ticker is stamped with the venue's own time when it gives one (Bitstamp), never later than
the run's clock; otherwise (Kraken) with the run's clock, as Gemini's are: a Prefect retry
of the run stores it once, and its age is never understated.

Each venue is its own source in the run ledger (its own status, calls, failures by kind,
last error and breaker state): an unreachable venue leaves the run `partial` and the
others load.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from etl.core.errors import VenueError
from etl.extract.ccxt_client import VenueClient, VenueTicker
from etl.extract.venue_pairs import VenuePair, select_venue_pairs
from etl.sources.base import RunContext, SourceResult
from etl.sources.live_rows import LiveRows, bars_frame, newest_stored_open

log = logging.getLogger(__name__)
T = TypeVar("T")


class VenueSource:
    def __init__(
        self,
        venue: str,
        client: VenueClient | None = None,
        *,
        config: dict[str, Any] | None = None,
    ) -> None:
        """`config` goes to ccxt's constructor when the source builds its own client."""
        self.name = venue
        self.client = client
        self.config = config

    def run(self, ctx: RunContext) -> SourceResult:
        try:
            client = self.client or VenueClient(self.name, ctx.settings, config=self.config)
        except VenueError as exc:
            result = SourceResult(self.name, status="failed", errors=[str(exc)])
            result.details.append(_calls(1, {exc.kind: 1}, str(exc), "none"))
            return result
        try:
            return _VenueRun(ctx, client).execute()
        finally:
            if self.client is None:
                client.close()


class _VenueRun:
    def __init__(self, ctx: RunContext, client: VenueClient) -> None:
        self.ctx, self.client, self.venue = ctx, client, client.venue
        self.result = SourceResult(self.venue)
        self.rows = LiveRows(ctx, self.result, source=self.venue, format="ccxt_ohlcv")
        self.failures: Counter[str] = Counter()
        self.calls = 0
        self.last_error: str | None = None

    def execute(self) -> SourceResult:
        try:
            markets = self._call(self.client.markets)
        except VenueError:
            markets = None
        if markets is not None:
            pairs, skipped = select_venue_pairs(
                self.venue,
                self.ctx.settings.coin_ids,
                markets,
                self.ctx.settings.quotes,
                lambda coin: self.ctx.registry.resolve(coin, strict=False),
            )
            for coin, reason in skipped.items():
                log.info("coin skipped", extra={"venue": self.venue, "coin": coin})
                self.result.details.append({"coin": coin, "status": "skipped", "reason": reason})
            for pair in pairs:
                self._fetch_pair(pair)
        self._summarise()
        return self.result

    def _call(self, fetch: Callable[[], T]) -> T:
        self.calls += 1
        try:
            return fetch()
        except VenueError as exc:
            self.failures[exc.kind] += 1
            self.last_error = str(exc)
            log.warning("venue call failed", extra={"venue": self.venue, "kind": exc.kind})
            raise

    def _fetch_pair(self, pair: VenuePair) -> None:
        symbol = pair.market.symbol
        detail: dict[str, Any] = {"coin": pair.coin, "symbol": symbol}
        try:
            ticker = self._call(partial(self.client.ticker, symbol))
            detail["ticker"] = self._store_ticker(pair, ticker)
        except VenueError as exc:
            detail["ticker"] = f"failed: {exc.kind}"
        for interval in self.ctx.settings.exchange_candle_intervals:
            try:
                detail[f"candles_{interval}"] = self._load_bars(pair, interval)
            except VenueError as exc:
                detail[f"candles_{interval}"] = f"failed: {exc.kind}"
        failed = [v for v in detail.values() if isinstance(v, str) and v.startswith("failed")]
        detail["status"] = "failed" if failed else "loaded"
        self.result.details.append(detail)

    def _store_ticker(self, pair: VenuePair, ticker: VenueTicker) -> dict[str, Any]:
        observed = self.ctx.now_ms
        if ticker.timestamp is not None and 0 < ticker.timestamp < observed:
            observed = ticker.timestamp
        return self.rows.store_ticker(
            pair.asset,
            path=f"ccxt:{self.venue}/ticker/{pair.market.venue_id}",
            raw=ticker.info,
            observed_at=observed,
            bid=ticker.bid,
            ask=ticker.ask,
            last=ticker.last,
            volume_base_24h=ticker.base_volume,
            volume_quote_24h=ticker.quote_volume,
        )

    def _load_bars(self, pair: VenuePair, interval: str) -> dict[str, int]:
        with self.ctx.engine.connect() as conn:
            since = newest_stored_open(conn, pair.asset, self.venue, interval)
        fetch = partial(
            self.client.ohlcv,
            pair.market.symbol,
            interval,
            since=since,
            limit=self.ctx.settings.exchange_candle_limit,
        )
        bars = self._call(fetch)
        path = f"ccxt:{self.venue}/ohlcv/{pair.market.venue_id}/{interval}"
        return self.rows.store_candles(pair.asset, interval, bars_frame(bars), path=path)

    def _summarise(self) -> None:
        failed_calls = sum(self.failures.values())
        if failed_calls and failed_calls >= self.calls:
            self.result.status = "failed"
        elif failed_calls:
            self.result.status = "partial"
        if failed_calls:
            self.result.errors.append(self.last_error or f"{self.venue} failed")
        self.result.details.append(
            _calls(self.calls, dict(self.failures), self.last_error, self.client.breaker_state)
        )


def _calls(
    calls: int, failures: dict[str, int], last_error: str | None, breaker: str
) -> dict[str, Any]:
    return {
        "status": "calls",
        "calls": calls,
        "failures": failures,
        "last_error": last_error,
        "breaker": breaker,
    }
