"""The assets we hold, one asset in detail, and Gemini's tradable symbols."""

from fastapi import APIRouter, Request, Response

from api.deps import EngineDep, GeminiDep, SettingsDep, StateDep
from api.hot_path import Hot, cached_answer
from api.params import SymbolPath
from api.presenters import metric_out, quality_out, symbol_out, ticker_out, venues_out
from api.rate_limit import RouteLimits
from api.responses import body_of, respond, utc
from api.schemas import GeminiSymbolOut, GeminiSymbols, SymbolDetail, SymbolList
from etl.core.clock import utc_now_ms
from etl.extract.gemini_client import gemini_symbols
from etl.read.assets import list_assets, resolve_asset
from etl.read.prices import latest_metrics
from etl.read.runs import latest_quality
from etl.read.venues import latest_venue_quotes, newest_quote
from etl.transform.consolidate import ConsolidationRules, consolidated_price


def build(limits: RouteLimits) -> APIRouter:
    router = APIRouter(prefix="/api/crypto", tags=["symbols"])

    @router.get("/symbols", response_model=SymbolList)
    @limits.data
    async def symbols(request: Request, state: StateDep) -> Response:
        """Every asset we hold: aliases, sources, first/last bar per series."""

        engine = state.engine

        def render() -> bytes:
            with engine.connect() as conn:
                return body_of(SymbolList(data=[symbol_out(conn, a) for a in list_assets(conn)]))

        hot = Hot(
            "/api/crypto/symbols",
            limits.data,
            "symbols",
            render,
            state.settings.cache_max_age_seconds,
        )
        return await cached_answer(request, state.hot_cache, state.hot_routes, hot)

    @router.get("/symbol/{symbol}", response_model=SymbolDetail)
    @limits.data
    def symbol_detail(
        request: Request, settings: SettingsDep, engine: EngineDep, symbol: SymbolPath
    ) -> Response:
        """One asset by any alias: latest ticker, every venue's latest quote (and whether
        the consolidated price uses it), metrics of every series, quality and coverage. An
        unknown alias is a 404 problem."""
        with engine.connect() as conn:
            asset = resolve_asset(conn, symbol)
            quotes = latest_venue_quotes(conn, asset.id)
            ticker = newest_quote(quotes)
            rules = ConsolidationRules.from_settings(settings)
            result = consolidated_price(quotes, now_ms=utc_now_ms(), rules=rules)
            detail = SymbolDetail(
                asset=symbol_out(conn, asset),
                ticker=None if ticker is None else ticker_out(ticker),
                venues=venues_out(quotes, result),
                metrics=[metric_out(asset.symbol, m) for m in latest_metrics(conn, asset.id)],
                quality=[quality_out(q) for q in latest_quality(conn, asset.id)],
            )
        return respond(request, body_of(detail), max_age=settings.cache_max_age_seconds)

    @router.get("/gemini/symbols", response_model=GeminiSymbols)
    @limits.data
    def gemini(request: Request, client: GeminiDep) -> Response:
        """Gemini's tradable symbols (base/quote parsed, perpetuals marked), from the
        client's cache; the last good list (`stale: true`) when Gemini fails; a 503 problem
        with Retry-After when Gemini is unreachable and nothing was ever fetched."""
        found = gemini_symbols(client)
        page = GeminiSymbols(
            data=[GeminiSymbolOut(**s.model_dump()) for s in found.symbols],
            fetched_at=utc(int(found.fetched_at * 1000)),
            stale=found.stale,
        )
        return respond(request, body_of(page), max_age=300)

    return router
