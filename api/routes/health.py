"""Root, health and readiness. `/health/live` and `/health/ready` are public and reveal
nothing else; `/health` (keyed) tells the whole story."""

import platform
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api.deps import EngineDep, GeminiDep, RateLimitsDep, SettingsDep
from api.errors import Problem
from api.rate_limit import RouteLimits
from api.responses import age_seconds, body_of, freshness, respond, utc
from api.schemas import Freshness, Health, Link, Live, Root, RunBrief, StreamHealth
from api.settings import ApiSettings
from etl.core.clock import utc_now_ms
from etl.db.engine import current_revision, head_revision
from etl.read.assets import list_assets
from etl.read.prices import latest_metrics
from etl.read.runs import StreamReport, list_runs, schema_ok, stream_report

VERSION = "0.1.0"
LINKS = (
    ("health", "/health"),
    ("latest", "/api/crypto/latest"),
    ("metrics", "/api/crypto/metrics"),
    ("symbols", "/api/crypto/symbols"),
    ("candles", "/api/crypto/candles/{symbol}"),
    ("quality", "/api/crypto/quality"),
    ("runs", "/api/crypto/runs"),
    ("gemini_symbols", "/api/crypto/gemini/symbols"),
)
PLATFORM = f"{platform.python_implementation()} {platform.python_version()} {platform.system()}"


def build_probes(limits: RouteLimits) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live", response_model=Live)
    @limits.probes
    async def live(request: Request) -> Response:  # noqa: ARG001 - the rate limit reads it
        """Liveness: the process answers."""
        return Response(b'{"status":"ok"}', media_type="application/json")

    @router.get("/health/ready", response_model=Live)
    @limits.probes
    def ready(request: Request, engine: EngineDep) -> Response:  # noqa: ARG001
        """Readiness: the database answers and its schema is migrated."""
        try:
            migrated = current_revision(engine) == head_revision()
        except SQLAlchemyError:
            migrated = False
        if not migrated:
            raise Problem(
                503,
                "not_ready",
                "database unreachable or not migrated",
                headers={"Retry-After": "5"},
            )
        return Response(b'{"status":"ready"}', media_type="application/json")

    return router


def _freshness(engine: Engine, stale_after: float) -> list[Freshness]:
    out = []
    with engine.connect() as conn:
        for asset in list_assets(conn):
            for m in latest_metrics(conn, asset.id)[:1]:
                close_ms, age, stale = freshness(m, stale_after)
                out.append(
                    Freshness(
                        symbol=asset.symbol,
                        source=m["source"],
                        interval=m["interval"],
                        as_of=utc(close_ms),
                        age_seconds=round(age, 1),
                        stale=stale,
                    )
                )
    return out


def _last_run(run: dict[str, Any]) -> RunBrief:
    finished = run["finished_at"]
    done = finished is not None
    return RunBrief(
        id=run["id"],
        status=run["status"],
        finished_at=utc(int(finished)) if done else None,
        age_seconds=round(age_seconds(int(finished)), 1) if done else None,
    )


def _stream(report: StreamReport | None) -> StreamHealth | None:
    if report is None:
        return None

    def age(ms: int | None) -> float | None:
        return None if ms is None else round(age_seconds(ms), 1)

    return StreamHealth(
        state=report.state,
        connected=report.connected,
        since=None if report.since_ms is None else utc(report.since_ms),
        last_message_age_seconds=age(report.last_message_ms),
        messages=report.messages,
        bad_messages=report.bad_messages,
        reconnects=report.reconnects,
        last_error=report.last_error,
        report_age_seconds=age(report.reported_ms),
    )


def _database_view(
    engine: Engine, settings: ApiSettings
) -> tuple[dict[str, Any], str | None, RunBrief | None, list[Freshness], StreamHealth | None]:
    """(reachability and latency, schema revision, last batch run, freshness, the stream
    worker): what the database says, or as much of it as it said before it failed."""
    database: dict[str, Any] = {"reachable": False, "latency_ms": None}
    revision, last_run, freshness, stream = None, None, [], None
    try:
        started = time.perf_counter()
        with engine.connect() as conn:
            schema_ok(conn)
            latency_ms = round((time.perf_counter() - started) * 1000, 2)
            database = {"reachable": True, "latency_ms": latency_ms}
            runs = list_runs(conn, 1, batch_only=True)
            stream = _stream(stream_report(conn, utc_now_ms()))
        revision = current_revision(engine)
        last_run = _last_run(runs[0]) if runs else None
        freshness = _freshness(engine, settings.stale_after_intervals)
    except SQLAlchemyError:
        pass
    return database, revision, last_run, freshness, stream


def build(limits: RouteLimits) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/", response_model=Root)
    @limits.data
    def root(request: Request, settings: SettingsDep) -> Response:
        """Name, version and the main routes."""
        docs = "/docs" if settings.docs else None
        links = [Link(rel=r, href=h) for r, h in LINKS]
        return respond(
            request,
            body_of(Root(name="crypto-etl-api", version=VERSION, docs=docs, links=links)),
            max_age=300,
        )

    @router.get("/health", response_model=Health)
    @limits.data
    def health(
        request: Request,
        settings: SettingsDep,
        engine: EngineDep,
        gemini: GeminiDep,
        rate_limits: RateLimitsDep,
    ) -> Response:
        """Database reachability and latency, schema version, the last batch ETL run, data
        freshness per asset, the Gemini breaker state, the stream worker's state, version
        and platform. Degraded when any part is: a stream worker that is reconnecting or
        unresponsive counts; one stopped on purpose does not."""
        database, revision, last_run, freshness, stream = _database_view(engine, settings)
        head = head_revision()
        limit_storage = rate_limits.state()
        ok = (
            database["reachable"]
            and revision == head
            and not limit_storage["degraded"]
            and not any(f.stale for f in freshness)
            and (stream is None or stream.state in ("connected", "stopped"))
        )
        body = Health(
            status="ok" if ok else "degraded",
            version=VERSION,
            platform=PLATFORM,
            database=database,
            schema_version=revision,
            schema_head=head,
            last_run=last_run,
            freshness=freshness,
            gemini_breaker=gemini.breaker_state,
            rate_limits=limit_storage,
            stream=stream,
        )
        return respond(request, body_of(body), max_age=0)

    return router
