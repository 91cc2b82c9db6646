"""Latest prices and metrics per asset (hot reads, served from the in-process cache)."""

from fastapi import APIRouter, Request, Response
from sqlalchemy import Engine

from api.deps import StateDep
from api.params import SymbolsQuery
from api.presenters import latest_out, metric_out
from api.rate_limit import RouteLimits
from api.responses import body_of, respond
from api.schemas import LatestList, MetricList
from etl.read.assets import selected_assets
from etl.read.prices import latest_metrics, latest_ticker


def latest_rows(engine: Engine, symbols: str | None, stale_after: float) -> bytes:
    with engine.connect() as conn:
        out = []
        for asset in selected_assets(conn, symbols):
            metrics = latest_metrics(conn, asset.id)
            if metrics:
                ticker = latest_ticker(conn, asset.id)
                out.append(latest_out(asset.symbol, metrics[0], ticker, stale_after))
    return body_of(LatestList(data=out))


def metric_rows(engine: Engine, symbols: str | None) -> bytes:
    with engine.connect() as conn:
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
    async def latest(request: Request, state: StateDep, symbols: SymbolsQuery = None) -> Response:
        """Per asset: the latest price (the newest ticker when it is newer than the last
        bar's close, else that close), bid/ask/spread, 24h volume, `as_of`, age, `stale`
        (older than `STALE_AFTER_INTERVALS` bar intervals) and its source."""
        settings, engine = state.settings, state.engine
        stale_after = settings.stale_after_intervals
        page = await state.hot_cache.get(
            f"latest?{symbols}", lambda: latest_rows(engine, symbols, stale_after)
        )
        return respond(request, page, max_age=settings.cache_max_age_seconds)

    @router.get("/metrics", response_model=MetricList)
    @limits.data
    async def metrics(request: Request, state: StateDep, symbols: SymbolsQuery = None) -> Response:
        """The latest metrics of each asset's preferred series (newest data, finest
        interval): changes, volatility, SMA/EMA, VWAP, drawdown, 24h high/low/volume."""
        engine = state.engine
        page = await state.hot_cache.get(f"metrics?{symbols}", lambda: metric_rows(engine, symbols))
        return respond(request, page, max_age=state.settings.cache_max_age_seconds)

    return router
