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
from functools import partial
from typing import Any, TypeVar

from etl.core.errors import VenueError
from etl.extract.ccxt_client import VenueClient, VenueTicker
from etl.extract.venue_pairs import VenuePair, select_venue_pairs
from etl.sources.base import RunContext, SourceResult
from etl.sources.live_rows import CallLog, LiveRows, bars_frame, newest_stored_open

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
        calls = CallLog(self.name)
        try:
            client = self.client or calls.call(
                lambda: VenueClient(self.name, ctx.settings, config=self.config)
            )
        except VenueError:  # e.g. an exchange ccxt does not have
            result = SourceResult(self.name)
            calls.summarise(result, "none")
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
        self.log = CallLog(self.venue)

    def execute(self) -> SourceResult:
        try:
            markets = self.log.call(self.client.markets)
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
        self.log.summarise(self.result, self.client.breaker_state)
        return self.result

    def _fetch_pair(self, pair: VenuePair) -> None:
        symbol = pair.market.symbol
        detail: dict[str, Any] = {"coin": pair.coin, "symbol": symbol}
        try:
            ticker = self.log.call(partial(self.client.ticker, symbol))
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
        bars = self.log.call(fetch)
        path = f"ccxt:{self.venue}/ohlcv/{pair.market.venue_id}/{interval}"
        return self.rows.store_candles(pair.asset, interval, bars_frame(bars), path=path)
