"""Rows from `etl.read` made into the API's response models, one function per model, so
every route presents the same row the same way."""

from __future__ import annotations

import math
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
    VenueOut,
)
from etl.core.intervals import INTERVAL_MS
from etl.read.assets import AssetRow
from etl.read.prices import series_coverage
from etl.read.venues import newest_quote
from etl.transform.consolidate import (
    ConsolidatedPrice,
    ConsolidationRules,
    VenueQuote,
    consolidated_price,
)


def latest_out(
    symbol: str,
    best: dict[str, Any],
    quotes: list[VenueQuote],
    *,
    now_ms: int,
    rules: ConsolidationRules,
    stale_after: float,
    pinned: bool = False,
) -> Latest:
    """An asset's price: the consolidated price of its fresh venues (docs/metrics.md);
    with no fresh venue (`last_known`), or one venue asked for (`pinned`: `source`), the
    newest ticker's last trade when it is newer than the best series' last close, else
    that close."""
    result = consolidated_price(quotes, now_ms=now_ms, rules=rules)
    venues = venues_out(quotes, result)
    step_ms = INTERVAL_MS[best["interval"]]
    if result.method is not None and result.as_of is not None and not pinned:
        used = [q for q in quotes if q.source in result.sources_used]
        bids = [q.bid for q in used if q.bid is not None]
        asks = [q.ask for q in used if q.ask is not None]
        volumes = [q.volume_24h for q in used if q.volume_24h is not None]
        bid, ask = (max(bids) if bids else None), (min(asks) if asks else None)
        weighted = result.method == "weighted_median"
        age = age_seconds(result.as_of)
        return Latest(
            symbol=symbol,
            price=float(result.price or 0.0),
            bid=bid,
            ask=ask,
            spread=ask - bid if ask is not None and bid is not None else None,
            volume_24h=math.fsum(volumes) if volumes else None,
            volume_quote_24h=None,
            as_of=utc(result.as_of),
            age_seconds=round(age, 3),
            stale=age > stale_after * step_ms / 1000,
            source="consolidated" if weighted else result.sources_used[0],
            interval=None,
            method=result.method,
            sources_used=list(result.sources_used),
            venues=venues,
        )
    bar_close, _, _ = freshness(best, stale_after)
    ticker = newest_quote(quotes)
    if ticker is not None and ticker.last is not None and ticker.observed_at >= bar_close:
        price, as_of, source, interval = ticker.last, ticker.observed_at, ticker.source, None
        volume, volume_quote = ticker.volume_24h, ticker.volume_quote_24h
    else:
        price, as_of, source, interval = (
            best["last_price"],
            bar_close,
            best["source"],
            best["interval"],
        )
        volume, volume_quote = best["volume_24h"], best["volume_quote_24h"]
    bid = ticker.bid if ticker else None
    ask = ticker.ask if ticker else None
    age = age_seconds(as_of)
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
        method="source" if pinned else "last_known",
        sources_used=[source],
        venues=venues,
    )


def venues_out(quotes: list[VenueQuote], result: ConsolidatedPrice) -> list[VenueOut]:
    verdicts = {v.source: v for v in result.venues}
    return [
        VenueOut(
            source=q.source,
            price=verdicts[q.source].price,
            bid=q.bid,
            ask=q.ask,
            volume_24h=q.volume_24h,
            as_of=utc(q.observed_at),
            used=verdicts[q.source].used,
            reason_if_not=verdicts[q.source].reason,
        )
        for q in sorted(quotes, key=lambda q: q.source)
    ]


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


def ticker_out(quote: VenueQuote) -> TickerOut:
    return TickerOut(
        source=quote.source,
        observed_at=utc(quote.observed_at),
        bid=quote.bid,
        ask=quote.ask,
        last=float(quote.last or 0.0),  # stored tickers always have one
        volume_base_24h=quote.volume_24h,
        volume_quote_24h=quote.volume_quote_24h,
    )
