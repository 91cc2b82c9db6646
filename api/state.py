"""What an app holds while it runs, typed: built by `create_app`, the engine and the Gemini
client added by the lifespan. Routes reach it through `api.deps`; middleware and handlers
that are not routes call `state_of(request)`."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from starlette.requests import HTTPConnection

from api.hot_path import HotRoutes
from api.rate_limit import AuthFailureLimit, RateLimits
from api.responses import HotCache
from api.settings import ApiSettings
from etl.extract.gemini_client import GeminiClient


class NotStartedError(RuntimeError):
    """A resource the lifespan opens was asked for before the app started."""


@dataclass
class AppState:
    settings: ApiSettings
    key_digests: list[bytes]
    cursor_key: bytes
    hot_cache: HotCache
    registry: CollectorRegistry
    rate_limits: RateLimits
    auth_failures: AuthFailureLimit
    hot_routes: HotRoutes = field(default_factory=HotRoutes)
    _engine: Engine | None = field(default=None, repr=False)
    _gemini: GeminiClient | None = field(default=None, repr=False)

    def start(self, engine: Engine, gemini: GeminiClient) -> None:
        self._engine, self._gemini = engine, gemini

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise NotStartedError("the database engine exists only while the app runs")
        return self._engine

    @property
    def gemini(self) -> GeminiClient:
        if self._gemini is None:
            raise NotStartedError("the Gemini client exists only while the app runs")
        return self._gemini


def state_of(connection: HTTPConnection) -> AppState:
    state: AppState = connection.app.state.api
    return state
