"""The FastAPI application: `create_app()` wires settings, security, limits and routers.

    python -m api.serve                                         # the launcher (api/serve.py)
    uvicorn api.main:create_app --factory --host 0.0.0.0 --port 8000
    PYTHONPATH=. uvicorn api.main:app --host 0.0.0.0 --port 8000  # the original spelling

`api.main.app` is built on first access (PEP 562), so importing this module reads no
settings and opens nothing; uvicorn's `api.main:app` is that first access.

Authentication is attached where the routers are included, so a new route is protected
by default; only the probes (`/health/live`, `/health/ready`), and `/metrics` when
`METRICS_PUBLIC=true`, are open. `/docs` and `/openapi.json` are open when enabled
(`DOCS_ENABLED`, default off in production): they describe the API, never its data. So is
the dashboard's page shell at `/dashboard/` with its static files (`DASHBOARD_ENABLED`):
every number it shows comes from the keyed routes.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cache

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.access_log import AccessLog
from api.dashboard import install_dashboard
from api.docs import install_docs
from api.errors import install_error_handlers, problem_response
from api.hot_path import HotPath
from api.middleware import Compression, RequestContextMiddleware, RequestMetrics
from api.rate_limit import AuthFailureLimit, RateLimits, RouteLimits, TrustedProxies
from api.responses import HotCache
from api.routes import candles, health, prices, prometheus, quality_runs, stream, symbols
from api.routes.health import VERSION
from api.security import require_api_key
from api.settings import ApiSettings, get_api_settings
from api.state import AppState
from api.streaming import StreamHub
from etl.core.log import SecretMask, configure_logging, secrets_of
from etl.db.engine import create_db_engine
from etl.extract.gemini_client import GeminiClient
from etl.transform.consolidate import ConsolidationRules

log = logging.getLogger("api")


# The kubelet's HTTP probes send `Host: <pod IP>:<port>`, never a name an operator can list
# in ALLOWED_HOSTS in advance: checking them restarts every pod in a loop. They answer a
# constant body, so no Host header can shape what they say.
HOST_CHECK_EXEMPT = frozenset({"/health/live", "/health/ready"})


class HostRule:
    """`TrustedHostMiddleware`'s rule: exact names, `*.domain`, or `*`."""

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = [h.lower() for h in allowed]

    def allows(self, host: str) -> bool:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.lower()
        return any(
            pattern == "*"
            or name == pattern
            or (pattern.startswith("*.") and name.endswith(pattern[1:]))
            for pattern in self.allowed
        )

    def admits(self, hosts: list[bytes]) -> bool:
        """A request's Host lines: at most one (RFC 9112 3.2: two are a 400, and two
        readers could each pick a different one), and that one allowed."""
        return len(hosts) <= 1 and self.allows(hosts[0].decode("latin-1") if hosts else "")


class TrustedHosts:
    """`HostRule` for every request, answering a bad Host header with the same problem
    document as every other error. The probes (`HOST_CHECK_EXEMPT`, exact paths) pass
    whatever the Host header."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app, self.rule = app, HostRule(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"] not in HOST_CHECK_EXEMPT:
            hosts = [value for name, value in scope.get("headers", []) if name == b"host"]
            if not self.rule.admits(hosts):
                response = problem_response(
                    Request(scope), 400, "invalid_host", "the Host header is not allowed"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _build_state(settings: ApiSettings) -> AppState:
    rate_limits = RateLimits(settings)
    return AppState(
        settings=settings,
        key_digests=settings.key_digests(),
        cursor_key=settings.cursor_key(),  # hashes every key: once, not per page
        hot_cache=HotCache(
            settings.cache_ttl_seconds, settings.cache_stale_seconds, settings.cache_max_mb << 20
        ),
        registry=CollectorRegistry(),
        rate_limits=rate_limits,
        auth_failures=AuthFailureLimit(rate_limits, settings),
    )


def _lifespan(
    state: AppState, gemini: GeminiClient | None, hub: StreamHub
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open the engine and the Gemini client for the app's life; close them after."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine = create_db_engine(state.settings)  # pool sized by DB_POOL_SIZE
        client = gemini or GeminiClient(state.settings)
        state.start(engine, client)
        await hub.start(engine)
        rules = ConsolidationRules.from_settings(state.settings)
        state.registry.register(prometheus.LedgerCollector(engine, rules))
        if not state.key_digests:
            log.warning("no API key configured: every keyed route answers 401 (set API_KEY)")
        # Everything alive now (modules, pandas, SQLAlchemy, pydantic) lives as long as the
        # process: moving it out of the collector's view turns the ~80 ms full collections
        # measured under load into sub-millisecond ones.
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        await hub.stop()
        if gemini is None:
            client.close()
        engine.dispose()

    return lifespan


def _include_routers(app: FastAPI, state: AppState, hub: StreamHub) -> None:
    """Authentication is attached here, so a new route is protected by default."""
    limits = RouteLimits.build(state.rate_limits, state.settings)
    keyed = [Depends(require_api_key)]
    app.include_router(health.build_probes(limits))
    for module in (health, prices, symbols, candles, quality_runs):
        app.include_router(module.build(limits), dependencies=keyed)
    app.include_router(stream.build(limits, hub))  # key header or stream token, per route
    public_metrics = state.settings.metrics_public
    app.include_router(prometheus.build(limits), dependencies=[] if public_metrics else keyed)


def _add_middleware(app: FastAPI, state: AppState) -> None:
    settings = state.settings
    app.add_middleware(Compression)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],  # POST: /api/crypto/stream/token
            allow_headers=["X-API-Key", "X-Request-ID", "If-None-Match", "Last-Event-ID"],
            expose_headers=[
                "X-Request-ID",
                "ETag",
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            ],
        )
    app.add_middleware(TrustedHosts, allowed=settings.allowed_hosts)
    metrics = RequestMetrics(state.registry, AccessLog(SecretMask(secrets_of(settings))))
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.add_middleware(
        HotPath,
        routes=state.hot_routes,
        cache=state.hot_cache,
        key_digests=state.key_digests,
        auth_failures=state.auth_failures,
        metrics=metrics,
        host_allowed=HostRule(settings.allowed_hosts).admits,
        cors=bool(settings.cors_origins),
        trusted_proxies=TrustedProxies(settings.trusted_proxies),
    )


def create_app(
    settings: ApiSettings | None = None, *, gemini: GeminiClient | None = None
) -> FastAPI:
    settings = settings or get_api_settings()
    configure_logging(settings)
    state = _build_state(settings)
    hub = StreamHub(settings, state.hot_cache)
    app = FastAPI(
        title="Crypto ETL API",
        version=VERSION,
        description="Crypto prices, candles, metrics and data quality from CSV history and "
        "Gemini. Send your key in `X-API-Key`. Errors are RFC 9457 problem documents.",
        lifespan=_lifespan(state, gemini, hub),
        docs_url=None,  # served by api.docs, without a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    if settings.docs and app.openapi_url:
        install_docs(app, app.openapi_url)
    if settings.dashboard_enabled:
        install_dashboard(app)
    app.state.api = state
    _include_routers(app, state, hub)
    install_error_handlers(app)
    _add_middleware(app, state)
    return app


@cache
def _default_app() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    """`api.main.app`: the app from the environment's settings, built once, on first use."""
    if name == "app":
        return _default_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
