"""Typed dependencies: settings and a database connection per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Connection

from api.settings import ApiSettings


def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _connection(request: Request) -> Iterator[Connection]:
    with request.app.state.engine.connect() as conn:
        yield conn


SettingsDep = Annotated[ApiSettings, Depends(_settings)]
ConnectionDep = Annotated[Connection, Depends(_connection)]
