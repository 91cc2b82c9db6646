"""Latest prices and metrics per asset (hot reads, served from the in-process cache)."""

from typing import Any

from fastapi import APIRouter, Request, Response

from api.rate_limit import RouteLimits
from api.responses import age_seconds, body_of, freshness, respond, utc
from api.routes.common import SymbolsQuery, selected_assets
from api.schemas import Latest, LatestList, MetricList, MetricOut
from etl.core.intervals import INTERVAL_MS
from etl.read.prices import latest_metrics, latest_ticker


def _latest(
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
        symbol=symbol, price=price, bid=bid, ask=ask,
        spread=ask - bid if ask is not None and bid is not None else None,
        volume_24h=volume, volume_quote_24h=volume_quote, as_of=utc(as_of),
        age_seconds=round(age, 3), stale=age > stale_after * step_ms / 1000,
        source=source, interval=interval,
    )  # fmt: skip


def latest_rows(request: Request, symbols: str | None) -> bytes:
    stale_after = request.app.state.settings.stale_after_intervals
    with request.app.state.engine.connect() as conn:
        out = []
        for asset in selected_assets(conn, symbols):
            metrics = latest_metrics(conn, asset.id)
            if metrics:
                ticker = latest_ticker(conn, asset.id)
                out.append(_latest(asset.symbol, metrics[0], ticker, stale_after))
    return body_of(LatestList(data=out))


def metric_out(symbol: str, row: dict[str, Any]) -> MetricOut:
    return MetricOut(symbol=symbol, **{**row, "as_of": utc(int(row["as_of"]))})


def metric_rows(request: Request, symbols: str | None) -> bytes:
    with request.app.state.engine.connect() as conn:
        out = []
        for asset in selected_assets(conn, symbols):
            metrics = latest_metrics(conn, asset.id)
            if metrics:
                out.append(metric_out(asset.symbol, metrics[0]))
    return body_of(MetricList(data=out))


def build(limits: RouteLimits) -> APIRouter:
    router = APIRouter(prefix="/api/crypto", tags=["prices"])

    @router.get("/latest", response_model=LatestList)
    @limits.data
    async def latest(request: Request, symbols: SymbolsQuery = None) -> Response:
        """Per asset: the latest price (the newest ticker when it is newer than the last
        bar's close, else that close), bid/ask/spread, 24h volume, `as_of`, age, `stale`
        (older than `STALE_AFTER_INTERVALS` bar intervals) and its source."""
        cache = request.app.state.hot_cache
        page = await cache.get(f"latest?{symbols}", lambda: latest_rows(request, symbols))
        return respond(request, page, max_age=request.app.state.settings.cache_max_age_seconds)

    @router.get("/metrics", response_model=MetricList)
    @limits.data
    async def metrics(request: Request, symbols: SymbolsQuery = None) -> Response:
        """The latest metrics of each asset's preferred series (newest data, finest
        interval): changes, volatility, SMA/EMA, VWAP, drawdown, 24h high/low/volume."""
        cache = request.app.state.hot_cache
        page = await cache.get(f"metrics?{symbols}", lambda: metric_rows(request, symbols))
        return respond(request, page, max_age=request.app.state.settings.cache_max_age_seconds)

    return router
