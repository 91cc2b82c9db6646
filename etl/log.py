"""JSON log lines carrying the run's (or request's) correlation id.

`configure_logging(settings)` is called by entry points; `correlation(run_id)` binds the
id for everything logged inside it (a contextvar, so threads and tasks keep their own).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from etl.settings import Settings

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _correlation_id.get()
        return True


@contextmanager
def correlation(run_id: str) -> Iterator[None]:
    token = _correlation_id.set(run_id)
    try:
        yield
    finally:
        _correlation_id.reset(token)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(run_id)s",
                rename_fields={"asctime": "timestamp", "levelname": "level", "message": "event"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(run_id)s] %(message)s")
        )
    handler.addFilter(CorrelationFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
