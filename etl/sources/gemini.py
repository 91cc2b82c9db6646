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

import json
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, insert, select

from etl.core.errors import GeminiError
from etl.core.series import SeriesStats
from etl.db.models import Candle, SourceBatch
from etl.extract.gemini_client import GeminiClient
from etl.extract.gemini_models import PubTicker, candles_frame
from etl.extract.gemini_pairs import Selection, select_pairs
from etl.load.writer import (
    LoadCounts,
    ensure_asset,
    insert_rejected,
    insert_ticker,
    load_transaction,
    open_candle_writer,
)
from etl.read.rows import RAW_OPEN_TIME
from etl.sources.base import RunContext, SourceResult
from etl.transform.validate import validate_candles

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
        self.failures: Counter[str] = Counter()
        self.calls = 0
        self.last_error: str | None = None

    def execute(self) -> SourceResult:
        try:
            listed = self._call(self.client.symbols)
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
        self._summarise()
        return self.result

    def _call(self, fetch: Callable[[], Any]) -> Any:
        self.calls += 1
        try:
            return fetch()
        except GeminiError as exc:
            self.failures[exc.kind] += 1
            self.last_error = str(exc)
            log.warning("gemini call failed", extra={"kind": exc.kind, "error": str(exc)})
            raise

    def _fetch_pair(self, selection: Selection) -> None:
        detail: dict[str, Any] = {"coin": selection.coin, "symbol": selection.symbol.symbol}
        try:
            ticker = self._call(partial(self.client.pubticker, selection.symbol.symbol))
            detail["ticker"] = self._store_ticker(selection, ticker)
        except GeminiError as exc:
            detail["ticker"] = f"failed: {exc.kind}"
        for interval in self.ctx.settings.gemini_candle_intervals:
            try:
                rows = self._call(partial(self.client.candles, selection.symbol.symbol, interval))
                detail[f"candles_{interval}"] = self._store_candles(selection, interval, rows)
            except GeminiError as exc:
                detail[f"candles_{interval}"] = f"failed: {exc.kind}"
        failed = [k for k, v in detail.items() if isinstance(v, str) and v.startswith("failed")]
        detail["status"] = "failed" if failed else "loaded"
        self.result.details.append(detail)

    def _store_ticker(self, selection: Selection, ticker: PubTicker) -> dict[str, Any]:
        path = f"/v1/pubticker/{selection.symbol.symbol}"
        raw = ticker.model_dump(mode="json")
        problem = _ticker_problem(ticker)
        self.result.read += 1
        with self._transaction() as conn:
            asset_id = ensure_asset(conn, selection.asset)
            if problem:
                self._quarantine(conn, path, [(None, json.dumps(raw), problem)])
                return {"status": "rejected", "reason": problem}
            # A Prefect retry of this step runs with the same run clock: the snapshot it
            # already stored for that time is kept, not written twice.
            written = insert_ticker(
                conn,
                asset_id=asset_id,
                source=SOURCE,
                observed_at=self.ctx.now_ms,
                bid=_float(ticker.bid),
                ask=_float(ticker.ask),
                last=float(ticker.last),
                volume_base_24h=_float(ticker.volume_in(selection.asset.base)),
                volume_quote_24h=_float(ticker.volume_in(selection.asset.quote)),
                raw=raw,
                run_id=self.ctx.run_id,
            )
        if not written:
            self.result.unchanged += 1
            return {"status": "unchanged", "last": str(ticker.last)}
        self.result.inserted += 1
        return {"status": "loaded", "last": str(ticker.last)}

    def _store_candles(
        self, selection: Selection, interval: str, rows: list[Any]
    ) -> dict[str, int]:
        path = f"/v2/candles/{selection.symbol.symbol}/{interval}"
        frame = candles_frame(rows)
        frame["line"] = np.arange(1, len(frame) + 1)  # position in the (sorted) response
        frame["parse_error"] = None
        with self._transaction() as conn:
            asset_id = ensure_asset(conn, selection.asset)
            frame["asset_id"] = float(asset_id)
            newest = _newest_open(conn, asset_id, interval)
            if newest is not None:  # resume from the newest stored bar (it may have grown)
                frame = frame[frame["open_time"] >= newest]
            checked = validate_candles(
                frame,
                now_ms=self.ctx.now_ms,
                future_tolerance_ms=self.ctx.settings.future_tolerance_seconds * 1000,
            )
            batch_id = self._record_batch(conn, path, len(frame), len(checked.rejected))
            writer = open_candle_writer(
                conn, source=SOURCE, interval=interval, batch_id=batch_id, now_ms=self.ctx.now_ms
            )
            try:
                writer.add(checked.valid)
                counts = writer.finish()
            finally:
                writer.close()
            by_line = frame.set_index("line")
            rejected = checked.rejected
            self._quarantine(
                conn,
                path,
                [
                    (int(line), _raw_candle(by_line.loc[line]), reason)
                    for line, reason in zip(rejected["line"], rejected["reason"], strict=True)
                ],
            )
        self._count(asset_id, interval, len(frame), checked.rejected["code"].tolist(), counts)
        return {
            "read": len(frame),
            "inserted": counts.inserted,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "rejected": len(checked.rejected),
        }

    def _record_batch(self, conn: Connection, path: str, read: int, rejected: int) -> int:
        return int(
            conn.execute(
                insert(SourceBatch)
                .values(
                    run_id=self.ctx.run_id,
                    kind=SOURCE,
                    ref=path,
                    content_sha256=None,
                    format="gemini_candles",
                    rows_read=read,
                    rows_rejected=rejected,
                    created_at=self.ctx.now_ms,
                )
                .returning(SourceBatch.id)
            ).scalar_one()
        )

    def _count(
        self, asset_id: int, interval: str, read: int, reasons: list[str], counts: LoadCounts
    ) -> None:
        stats = self.result.series.setdefault((asset_id, SOURCE, interval), SeriesStats())
        stats.rows += read
        stats.required_cells += read * 6
        stats.rejected.update(reasons)
        self.result.read += read
        self.result.inserted += counts.inserted
        self.result.updated += counts.updated
        self.result.unchanged += counts.unchanged

    def _transaction(self) -> AbstractContextManager[Connection]:
        return load_transaction(self.ctx.engine, "gemini")

    def _quarantine(
        self, conn: Connection, path: str, rows: list[tuple[int | None, str, str]]
    ) -> None:
        insert_rejected(
            conn,
            [
                {
                    "run_id": self.ctx.run_id,
                    "source": SOURCE,
                    "file": path,
                    "line": line,
                    "raw": raw,
                    "reason": reason[:255],
                    "created_at": self.ctx.now_ms,
                }
                for line, raw, reason in rows
            ],
        )
        self.result.rejected += len(rows)

    def _summarise(self) -> None:
        failed_calls = sum(self.failures.values())
        if failed_calls and failed_calls >= self.calls:
            self.result.status = "failed"
        elif failed_calls:
            self.result.status = "partial"
        if failed_calls:
            self.result.errors.append(self.last_error or "gemini failed")
        self.result.details.append(
            {
                "status": "calls",
                "calls": self.calls,
                "failures": dict(self.failures),
                "last_error": self.last_error,
                "breaker": self.client.breaker_state,
            }
        )


def _ticker_problem(ticker: PubTicker) -> str | None:
    prices = {"bid": ticker.bid, "ask": ticker.ask, "last": ticker.last}
    bad = [name for name, value in prices.items() if value is not None and value <= 0]
    if bad:
        return f"non_positive_price: {','.join(bad)} <= 0"
    if ticker.bid is not None and ticker.ask is not None and ticker.bid > ticker.ask:
        return f"inverted_bid_ask: bid {ticker.bid} > ask {ticker.ask}"
    return None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _raw_candle(row: pd.Series) -> str:
    values = [int(row["open_time"]), *(row[c] for c in ("open", "high", "low", "close", "volume"))]
    return json.dumps(values)


def _newest_open(conn: Connection, asset_id: int, interval: str) -> int | None:
    """The newest stored bar's open time of this Gemini series."""
    newest = conn.execute(
        select(func.max(RAW_OPEN_TIME)).where(
            Candle.asset_id == asset_id, Candle.source == SOURCE, Candle.interval == interval
        )
    ).scalar()
    return None if newest is None else int(newest)
