"""JSON log lines carrying the run's (or request's) correlation id.

`configure_logging(settings)` is called by entry points; `correlation(run_id)` binds the
id for everything logged inside it (a contextvar, so threads and tasks keep their own).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from etl.core.settings import Settings, secret_values

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = _correlation_id.get()
        if getattr(record, "request_id", None) is None:  # a handler may name it explicitly
            record.request_id = _request_id.get()
        return True


class SecretMask(logging.Filter):
    """Replaces every configured secret in a record (message, arguments, extra fields)."""

    MASK = "***"

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, self.MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        record.msg = self.clean(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.clean(value))
        return True


_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})))


class MaskingFormatter(logging.Formatter):
    """Masks secrets in the finished line too (tracebacks are rendered by the formatter)."""

    def __init__(self, inner: logging.Formatter, mask: SecretMask) -> None:
        super().__init__()
        self.inner, self.mask = inner, mask

    def format(self, record: logging.LogRecord) -> str:
        return self.mask.clean(self.inner.format(record))


@contextmanager
def _bound(variable: ContextVar[str | None], value: str) -> Iterator[None]:
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


def request_context(request_id: str) -> AbstractContextManager[None]:
    """Bind an HTTP request's id to every log line written while handling it."""
    return _bound(_request_id, request_id)


def correlation(run_id: str) -> AbstractContextManager[None]:
    """Bind an ETL run's id to every log line written while it runs."""
    return _bound(_correlation_id, run_id)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if settings.log_json:
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(run_id)s %(request_id)s",
            rename_fields={"asctime": "timestamp", "levelname": "level", "message": "event"},
            timestamp=False,
        )
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s [%(run_id)s] %(message)s")
    mask = SecretMask(secret_values(settings))
    handler.setFormatter(MaskingFormatter(formatter, mask))
    handler.addFilter(CorrelationFilter())
    handler.addFilter(mask)
    handler._crypto_etl = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    # Replace our own earlier handler only; others (a test's log capture) stay.
    root.handlers = [h for h in root.handlers if not getattr(h, "_crypto_etl", False)]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
