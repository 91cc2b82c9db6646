"""JSON log lines carrying the run's (or request's) correlation id.

`configure_logging(settings)` is called by entry points; `correlation(run_id)` binds the
id for everything logged inside it (a contextvar, so threads and tasks keep their own).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr
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


# `scheme://user:password@host`: a password in any URL, configured or not.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)")
_URL_MASKED = r"\g<head>***"


def secret_forms(secret: str) -> set[str]:
    """The spellings a secret takes on its way into a log line or a stored error: as is,
    inside a repr (tracebacks: `KeyError('...')`, `b'...'`), percent-encoded in a URL, each
    of these JSON-escaped (`"` and `\\` escaped, non-ASCII as `\\u00e9` or kept)."""
    bases = {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], quote(secret, safe="")}
    forms = set(bases)
    for base in bases:
        for ascii_only in (True, False):
            forms.add(json.dumps(base, ensure_ascii=ascii_only)[1:-1])
    return {form for form in forms if form}


class SecretMask(logging.Filter):
    """Replaces every configured secret in a record (message, arguments, extra fields), in
    every spelling of `secret_forms`, and the password of any URL."""

    MASK = "***"

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]
        forms = {form for secret in self.secrets for form in secret_forms(secret)}
        # One pass per text (every access-log field goes through here), longest form first.
        alternatives = [re.escape(f) for f in sorted(forms, key=len, reverse=True)]
        self._forms = re.compile("|".join(alternatives)) if alternatives else None

    def clean(self, text: str) -> str:
        if self._forms is not None:
            text = self._forms.sub(self.MASK, text)
        if "://" in text:  # the URL rule costs a regex scan: only where a URL may be
            text = _URL_PASSWORD.sub(_URL_MASKED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.clean(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.clean(value))
        return True


def secrets_of(settings: Settings) -> list[str]:
    """Every secret of the settings: the data side's (`secret_values`) and any other
    `SecretStr` field a subclass adds (the API's `CURSOR_SECRET`)."""
    values = set(secret_values(settings))
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, SecretStr) and len(item.get_secret_value()) >= 4:
                values.add(item.get_secret_value())
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, secrets: Sequence[str]) -> str:
    """`text` as a log line would show it: secrets and URL passwords masked."""
    return SecretMask(secrets).clean(text)


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


def current_request_id() -> str | None:
    return _request_id.get()


def our_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """`configure_logging`'s handler when it is the only one a record of `logger` would
    reach (none on the logger or its parents, none on the root besides it), else None."""
    current: logging.Logger | None = logger
    while current is not None and current is not logging.root:
        if current.handlers or not current.propagate:
            return None
        current = current.parent
    handlers = logging.root.handlers
    if len(handlers) == 1 and getattr(handlers[0], "_crypto_etl", False):
        handler: logging.StreamHandler[Any] = handlers[0]  # type: ignore[assignment]
        return handler
    return None


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
    mask = SecretMask(secrets_of(settings))
    handler.setFormatter(MaskingFormatter(formatter, mask))
    handler.addFilter(CorrelationFilter())
    handler.addFilter(mask)
    handler._crypto_etl = True  # type: ignore[attr-defined]
    handler.json_lines = settings.log_json  # type: ignore[attr-defined]
    root = logging.getLogger()
    # Replace our own earlier handler only; others (a test's log capture) stay.
    root.handlers = [h for h in root.handlers if not getattr(h, "_crypto_etl", False)]
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
