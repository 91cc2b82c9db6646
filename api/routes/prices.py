"""Latest prices and metrics per asset (hot reads, served from the in-process cache)."""

from fastapi import APIRouter, Request, Response
from sqlalchemy import Engine

from api.deps import StateDep
from api.hot_path import Hot, cached_answer
from api.params import SourceQuery, SymbolsQuery
from api.presenters import latest_out, metric_out
from api.rate_limit import RouteLimits
from api.responses import body_of
from api.schemas import LatestList, MetricList
from etl.core.clock import utc_now_ms
from etl.read.assets import selected_assets
from etl.read.prices import latest_metrics
from etl.read.venues import latest_venue_quotes
from etl.transform.consolidate import ConsolidationRules


def latest_rows(
    engine: Engine,
    symbols: str | None,
    source: str | None,
    *,
    rules: ConsolidationRules,
    stale_after: float,
) -> bytes:
    """Every selected asset with a stored series (of `source`, when given)."""
    now_ms = utc_now_ms()
    with engine.connect() as conn:
        out = []
        for asset in selected_assets(conn, symbols):
            metrics = [m for m in latest_metrics(conn, asset.id) if source in (None, m["source"])]
            if not metrics:
                continue
            quotes = [q for q in latest_venue_quotes(conn, asset.id) if source in (None, q.source)]
            out.append(
                latest_out(
                    asset.symbol,
                    metrics[0],
                    quotes,
                    now_ms=now_ms,
                    rules=rules,
                    stale_after=stale_after,
                    pinned=source is not None,
                )
            )
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
    async def latest(
        request: Request,
        state: StateDep,
        symbols: SymbolsQuery = None,
        source: SourceQuery = None,
    ) -> Response:
        """Per asset: the consolidated price across its fresh venues (a volume-weighted
        median after an outlier cut; one fresh venue: that venue, `single_source_fallback`;
        none: the newest ticker or bar close, `last_known`), every venue's quote and
        whether it was used; `?source=` gives one venue or series alone. Also bid/ask/
        spread, 24h volume, `as_of`, age and `stale` (older than `STALE_AFTER_INTERVALS`
        bar intervals). docs/metrics.md#consolidated-price has the rules."""
        settings, engine = state.settings, state.engine
        stale_after = settings.stale_after_intervals
        rules = ConsolidationRules.from_settings(settings)
        hot = Hot(
            "/api/crypto/latest",
            limits.data,
            f"latest?{symbols}&{source}",
            lambda: latest_rows(engine, symbols, source, rules=rules, stale_after=stale_after),
            settings.cache_max_age_seconds,
        )
        return await cached_answer(request, state.hot_cache, state.hot_routes, hot)

    @router.get("/metrics", response_model=MetricList)
    @limits.data
    async def metrics(request: Request, state: StateDep, symbols: SymbolsQuery = None) -> Response:
        """The latest metrics of each asset's preferred series (newest data, finest
        interval): changes, volatility, SMA/EMA, VWAP, drawdown, 24h high/low/volume."""
        engine = state.engine
        hot = Hot(
            "/api/crypto/metrics",
            limits.data,
            f"metrics?{symbols}",
            lambda: metric_rows(engine, symbols),
            state.settings.cache_max_age_seconds,
        )
        return await cached_answer(request, state.hot_cache, state.hot_routes, hot)

    return router
