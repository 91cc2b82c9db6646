"""Typed dependencies, as FastAPI's own template declares them: a route asks for
`StateDep` (everything, one dependency), `SettingsDep`, `EngineDep`, `GeminiDep`,
`RegistryDep` or `RateLimitsDep` and gets the app's instance. Each is an `async def`
reading the app's state: no thread-pool hop, no work per request beyond the lookup.
Routes check a connection out themselves, inside their own worker thread
(docs/decisions.md, "No per-request connection dependency")."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from api.rate_limit import RateLimits
from api.settings import ApiSettings
from api.state import AppState, state_of
from etl.extract.gemini_client import GeminiClient


async def _state(request: Request) -> AppState:
    return state_of(request)


async def _settings(request: Request) -> ApiSettings:
    return state_of(request).settings


async def _engine(request: Request) -> Engine:
    return state_of(request).engine


async def _gemini(request: Request) -> GeminiClient:
    return state_of(request).gemini


async def _registry(request: Request) -> CollectorRegistry:
    return state_of(request).registry


async def _rate_limits(request: Request) -> RateLimits:
    return state_of(request).rate_limits


# A hot route asks for the whole state in one dependency: FastAPI's resolution costs per
# dependency, and four of them cost a cached candle page 20% of its throughput (measured,
# docs/decisions.md). Other routes ask for exactly what they touch.
StateDep = Annotated[AppState, Depends(_state)]
SettingsDep = Annotated[ApiSettings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
GeminiDep = Annotated[GeminiClient, Depends(_gemini)]
RegistryDep = Annotated[CollectorRegistry, Depends(_registry)]
RateLimitsDep = Annotated[RateLimits, Depends(_rate_limits)]
