"""Typed dependencies, as FastAPI's own template declares them: a route asks for
`SettingsDep`, `EngineDep`, `CacheDep`, `GeminiDep`, `CursorKeyDep`, `RegistryDep` or
`LimiterDep` and gets the app's instance. Each is an `async def` reading the app's state:
no thread-pool hop, no work per request beyond the lookup. Routes check a connection out
themselves, inside their own worker thread (docs/decisions.md, "No per-request connection
dependency")."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry
from slowapi import Limiter
from sqlalchemy import Engine

from api.responses import HotCache
from api.settings import ApiSettings
from api.state import state_of
from etl.extract.gemini_client import GeminiClient


async def _settings(request: Request) -> ApiSettings:
    return state_of(request).settings


async def _engine(request: Request) -> Engine:
    return state_of(request).engine


async def _cache(request: Request) -> HotCache:
    return state_of(request).hot_cache


async def _gemini(request: Request) -> GeminiClient:
    return state_of(request).gemini


async def _cursor_key(request: Request) -> bytes:
    return state_of(request).cursor_key


async def _registry(request: Request) -> CollectorRegistry:
    return state_of(request).registry


async def _limiter(request: Request) -> Limiter:
    return state_of(request).limiter


SettingsDep = Annotated[ApiSettings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
CacheDep = Annotated[HotCache, Depends(_cache)]
GeminiDep = Annotated[GeminiClient, Depends(_gemini)]
CursorKeyDep = Annotated[bytes, Depends(_cursor_key)]
RegistryDep = Annotated[CollectorRegistry, Depends(_registry)]
LimiterDep = Annotated[Limiter, Depends(_limiter)]
