"""The assets we hold, one asset in detail, and Gemini's tradable symbols."""

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Connection

from api.rate_limit import RouteLimits
from api.responses import body_of, respond, utc
from api.routes.common import SymbolPath
from api.routes.prices import metric_out
from api.schemas import (
    Coverage,
    GeminiSymbolOut,
    GeminiSymbols,
    QualityOut,
    SymbolDetail,
    SymbolList,
    SymbolOut,
    TickerOut,
)
from etl.extract.gemini_client import gemini_symbols
from etl.read.assets import AssetRow, list_assets, resolve_asset
from etl.read.prices import latest_metrics, latest_ticker, series_coverage
from etl.read.runs import latest_quality


def symbol_out(conn: Connection, asset: AssetRow) -> SymbolOut:
    coverage = series_coverage(conn, asset.id)
    return SymbolOut(
        symbol=asset.symbol, base=asset.base, quote=asset.quote, name=asset.name,
        coin_id=asset.coin_id, aliases=asset.aliases,
        sources=sorted({c["source"] for c in coverage}),
        coverage=[
            Coverage(source=c["source"], interval=c["interval"], first_open=utc(c["first_open"]),
                     last_open=utc(c["last_open"]), bars=c["bars"])
            for c in coverage
        ],
    )  # fmt: skip


def quality_out(row: dict[str, Any]) -> QualityOut:
    values = {k: v for k, v in row.items() if k in QualityOut.model_fields}
    values["computed_at"] = utc(int(row["computed_at"]))
    return QualityOut(**values)


def build(limits: RouteLimits) -> APIRouter:
    router = APIRouter(prefix="/api/crypto", tags=["symbols"])

    @router.get("/symbols", response_model=SymbolList)
    @limits.data
    async def symbols(request: Request) -> Response:
        """Every asset we hold: aliases, sources, first/last bar per series."""

        def render() -> bytes:
            with request.app.state.engine.connect() as conn:
                return body_of(SymbolList(data=[symbol_out(conn, a) for a in list_assets(conn)]))

        page = await request.app.state.hot_cache.get("symbols", render)
        return respond(request, page, max_age=request.app.state.settings.cache_max_age_seconds)

    @router.get("/symbol/{symbol}", response_model=SymbolDetail)
    @limits.data
    def symbol_detail(request: Request, symbol: SymbolPath) -> Response:
        """One asset by any alias: latest ticker, metrics of every series, quality and
        coverage. An unknown alias is a 404 problem."""
        with request.app.state.engine.connect() as conn:
            asset = resolve_asset(conn, symbol)
            ticker = latest_ticker(conn, asset.id)
            detail = SymbolDetail(
                asset=symbol_out(conn, asset),
                ticker=TickerOut(**{**ticker, "observed_at": utc(int(ticker["observed_at"]))})
                if ticker else None,
                metrics=[metric_out(asset.symbol, m) for m in latest_metrics(conn, asset.id)],
                quality=[quality_out(q) for q in latest_quality(conn, asset.id)],
            )  # fmt: skip
        return respond(
            request, body_of(detail), max_age=request.app.state.settings.cache_max_age_seconds
        )

    @router.get("/gemini/symbols", response_model=GeminiSymbols)
    @limits.data
    def gemini(request: Request) -> Response:
        """Gemini's tradable symbols (base/quote parsed, perpetuals marked), from the
        client's cache; the last good list (`stale: true`) when Gemini fails; a 503 problem
        with Retry-After when Gemini is unreachable and nothing was ever fetched."""
        found = gemini_symbols(request.app.state.gemini)
        page = GeminiSymbols(
            data=[GeminiSymbolOut(**s.model_dump()) for s in found.symbols],
            fetched_at=utc(int(found.fetched_at * 1000)), stale=found.stale,
        )  # fmt: skip
        return respond(request, body_of(page), max_age=300)

    return router
