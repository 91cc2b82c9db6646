"""Rows from `etl.read` made into the API's response models, one function per model, so
every route presents the same row the same way."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from api.responses import age_seconds, freshness, utc
from api.schemas import (
    Coverage,
    Latest,
    MetricOut,
    QualityOut,
    RunOut,
    RunSummary,
    SymbolOut,
    TickerOut,
)
from etl.core.intervals import INTERVAL_MS
from etl.read.assets import AssetRow
from etl.read.prices import series_coverage


def latest_out(
    symbol: str, best: dict[str, Any], ticker: dict[str, Any] | None, stale_after: float
) -> Latest:
    bar_close, _, _ = freshness(best, stale_after)
    if ticker is not None and int(ticker["observed_at"]) >= bar_close:
        price, as_of, source, interval = (
            float(ticker["last"]),
            int(ticker["observed_at"]),
            ticker["source"],
            None,
        )
        volume, volume_quote = ticker["volume_base_24h"], ticker["volume_quote_24h"]
    else:
        price, as_of, source, interval = (
            best["last_price"],
            bar_close,
            best["source"],
            best["interval"],
        )
        volume, volume_quote = best["volume_24h"], best["volume_quote_24h"]
    bid = ticker["bid"] if ticker else None
    ask = ticker["ask"] if ticker else None
    age = age_seconds(as_of)
    step_ms = INTERVAL_MS[best["interval"]]
    return Latest(
        symbol=symbol,
        price=price,
        bid=bid,
        ask=ask,
        spread=ask - bid if ask is not None and bid is not None else None,
        volume_24h=volume,
        volume_quote_24h=volume_quote,
        as_of=utc(as_of),
        age_seconds=round(age, 3),
        stale=age > stale_after * step_ms / 1000,
        source=source,
        interval=interval,
    )


def metric_out(symbol: str, row: dict[str, Any]) -> MetricOut:
    return MetricOut(symbol=symbol, **{**row, "as_of": utc(int(row["as_of"]))})


def symbol_out(conn: Connection, asset: AssetRow) -> SymbolOut:
    coverage = series_coverage(conn, asset.id)
    return SymbolOut(
        symbol=asset.symbol,
        base=asset.base,
        quote=asset.quote,
        name=asset.name,
        coin_id=asset.coin_id,
        aliases=asset.aliases,
        sources=sorted({c["source"] for c in coverage}),
        coverage=[
            Coverage(
                source=c["source"],
                interval=c["interval"],
                first_open=utc(c["first_open"]),
                last_open=utc(c["last_open"]),
                bars=c["bars"],
            )
            for c in coverage
        ],
    )


def quality_out(row: dict[str, Any]) -> QualityOut:
    values = {k: v for k, v in row.items() if k in QualityOut.model_fields}
    values["computed_at"] = utc(int(row["computed_at"]))
    return QualityOut(**values)


def run_out(row: dict[str, Any]) -> RunOut:
    return RunOut(
        id=row["id"],
        trigger=row["trigger"],
        status=row["status"],
        started_at=utc(int(row["started_at"])),
        finished_at=utc(int(row["finished_at"])) if row["finished_at"] is not None else None,
        sources=row["sources"] or {},
        error=row["error"],
    )


def run_summary(row: dict[str, Any]) -> RunSummary:
    return RunSummary.model_validate({**run_out(row).model_dump(), "sources": row["sources"]})


def ticker_out(row: dict[str, Any]) -> TickerOut:
    return TickerOut(**{**row, "observed_at": utc(int(row["observed_at"]))})
