"""The live source: Gemini tickers and recent candles, loaded like any other batch.

Per run: the symbol list (cached) selects a Gemini pair for each coin of `COIN_IDS`
(preferring the USD spot pair; a coin Gemini does not list, such as Cardano, is skipped
with a warning, not an error). For each pair: one `/v1/pubticker` snapshot into `ticker`,
and one `/v2/candles` window per interval of `GEMINI_CANDLE_INTERVALS` into `candle`
(source `gemini`), keeping the bars from the series' newest stored bar on (the newest may
have been incomplete). Rows that fail validation (an inverted bid/ask, a bar with
high < low) are quarantined like bad CSV rows. Each batch is one transaction.

A failed call is counted by kind (timeout, rate_limited, server_error, circuit_open,
malformed, ...) and the run goes on: the source is `partial` when some calls failed and
`failed` when nothing could be fetched; the historical load is never affected.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from etl.core.errors import GeminiError
from etl.extract.gemini_client import GeminiClient
from etl.extract.gemini_models import PubTicker, candles_frame
from etl.extract.gemini_pairs import Selection, select_pairs
from etl.sources.base import RunContext, SourceResult
from etl.sources.live_rows import CallLog, LiveRows

log = logging.getLogger(__name__)
SOURCE = "gemini"


class GeminiSource:
    name = SOURCE

    def __init__(self, client: GeminiClient | None = None) -> None:
        self.client = client

    def run(self, ctx: RunContext) -> SourceResult:
        client = self.client or GeminiClient(ctx.settings)
        run = _GeminiRun(ctx, client)
        try:
            return run.execute()
        finally:
            if self.client is None:
                client.close()


class _GeminiRun:
    def __init__(self, ctx: RunContext, client: GeminiClient) -> None:
        self.ctx, self.client = ctx, client
        self.result = SourceResult(SOURCE)
        self.rows = LiveRows(ctx, self.result, source=SOURCE, format="gemini_candles")
        self.log = CallLog("gemini")

    def execute(self) -> SourceResult:
        try:
            listed = self.log.call(self.client.symbols)
        except GeminiError:
            listed = None
        if listed is not None:
            selections, skipped = select_pairs(
                self.ctx.settings.coin_ids,
                listed,
                lambda coin: self.ctx.registry.resolve(coin, strict=False),
            )
            for coin, reason in skipped.items():
                log.warning("coin skipped", extra={"coin": coin, "reason": reason})
                self.result.details.append({"coin": coin, "status": "skipped", "reason": reason})
            for selection in selections:
                self._fetch_pair(selection)
        self.log.summarise(self.result, self.client.breaker_state)
        return self.result

    def _fetch_pair(self, selection: Selection) -> None:
        detail: dict[str, Any] = {"coin": selection.coin, "symbol": selection.symbol.symbol}
        try:
            ticker = self.log.call(partial(self.client.pubticker, selection.symbol.symbol))
            detail["ticker"] = self._store_ticker(selection, ticker)
        except GeminiError as exc:
            detail["ticker"] = f"failed: {exc.kind}"
        for interval in self.ctx.settings.gemini_candle_intervals:
            try:
                rows = self.log.call(
                    partial(self.client.candles, selection.symbol.symbol, interval)
                )
                detail[f"candles_{interval}"] = self._store_candles(selection, interval, rows)
            except GeminiError as exc:
                detail[f"candles_{interval}"] = f"failed: {exc.kind}"
        failed = [k for k, v in detail.items() if isinstance(v, str) and v.startswith("failed")]
        detail["status"] = "failed" if failed else "loaded"
        self.result.details.append(detail)

    def _store_ticker(self, selection: Selection, ticker: PubTicker) -> dict[str, Any]:
        stored = self.rows.store_ticker(
            selection.asset,
            path=f"/v1/pubticker/{selection.symbol.symbol}",
            raw=ticker.model_dump(mode="json"),
            observed_at=self.ctx.now_ms,  # a Prefect retry runs with the same run clock
            bid=_float(ticker.bid),
            ask=_float(ticker.ask),
            last=float(ticker.last),
            volume_base_24h=_float(ticker.volume_in(selection.asset.base)),
            volume_quote_24h=_float(ticker.volume_in(selection.asset.quote)),
        )
        if "last" in stored:
            stored["last"] = str(ticker.last)
        return stored

    def _store_candles(
        self, selection: Selection, interval: str, rows: list[Any]
    ) -> dict[str, int]:
        path = f"/v2/candles/{selection.symbol.symbol}/{interval}"
        return self.rows.store_candles(selection.asset, interval, candles_frame(rows), path=path)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
