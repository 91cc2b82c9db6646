"""Data-quality reports and the ETL run ledger."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from api.deps import EngineDep, SettingsDep
from api.errors import Problem
from api.params import SymbolsQuery
from api.presenters import quality_out, run_out, run_summary
from api.rate_limit import RouteLimits
from api.responses import body_of, respond
from api.schemas import QualityList, RunList, RunOut
from etl.read.assets import selected_assets
from etl.read.runs import get_run, latest_quality, list_runs

MAX_RUNS_LISTED = 100  # with errors cut at 2,000 characters: a list stays under ~250 KB


def build(limits: RouteLimits) -> APIRouter:
    router = APIRouter(prefix="/api/crypto", tags=["quality", "runs"])

    @router.get("/quality", response_model=QualityList)
    @limits.data
    def quality(
        request: Request, settings: SettingsDep, engine: EngineDep, symbols: SymbolsQuery = None
    ) -> Response:
        """Per asset and series, the latest quality report: score (0-100) and its
        breakdown, completeness, consistency, coverage, freshness, the gap list."""
        with engine.connect() as conn:
            wanted = {a.id for a in selected_assets(conn, symbols)}
            rows = [q for q in latest_quality(conn) if q["asset_id"] in wanted]
        page = QualityList(data=[quality_out(r) for r in rows])
        return respond(request, body_of(page), max_age=settings.cache_max_age_seconds)

    @router.get("/runs", response_model=RunList)
    @limits.data
    def runs(
        request: Request,
        engine: EngineDep,
        limit: Annotated[int, Query(ge=1, le=MAX_RUNS_LISTED)] = 50,
    ) -> Response:
        """The ETL run ledger, newest first: per source its status and counts. Per-file
        details and error messages are on `/runs/{id}`."""
        with engine.connect() as conn:
            page = RunList(data=[run_summary(r) for r in list_runs(conn, limit)])
        return respond(request, body_of(page), max_age=0)

    @router.get("/runs/{run_id}", response_model=RunOut)
    @limits.data
    def run(
        request: Request,
        engine: EngineDep,
        run_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,36}$", max_length=36)],
    ) -> Response:
        """One run: status, per-source counts and details, error."""
        with engine.connect() as conn:
            row = get_run(conn, run_id)
        if row is None:
            raise Problem(404, "run_not_found", f"no run {run_id!r}")
        return respond(request, body_of(run_out(row)), max_age=0)

    return router
