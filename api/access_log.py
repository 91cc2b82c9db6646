"""The access log line of every request, at a cost the hot path can carry.

Through the `logging` module a line costs ~25 us of Python per request (the record, its
filters, python-json-logger), a quarter of a whole cached answer, and the access log is on
by default. So when the line would only reach our own JSON handler (`configure_logging`'s,
the usual case), it is written here directly: the same JSON fields in the same order
(`timestamp` as logging's `asctime`, `level`, `name`, `event`, `run_id`, `request_id`, then
the request's fields), one `orjson.dumps` (~2 us), and the lines of the last 50 ms (at
most 256) in one write to the handler's stream (one system call for many requests).
The finished lines go through the same secret mask as every other line (the path and
the request id are the client's words). Whenever anything else would see the record
(LOG_JSON=false, a handler on `api.access` or on the root besides ours, a test's log
capture), the line goes through `logging` as before.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import time
import weakref
from typing import Any

import orjson

from etl.core.log import SecretMask, current_request_id, our_handler

access_log = logging.getLogger("api.access")
_NO_LOCK = contextlib.nullcontext()
_LIVE: weakref.WeakSet[AccessLog] = weakref.WeakSet()


class AccessLog:
    FLUSH_SECONDS = 0.05  # a line waits at most this long for its write
    MAX_PENDING = 256  # or until this many lines wait

    def __init__(self, mask: SecretMask) -> None:
        self.mask = mask
        self._second = -1
        self._stamp = ""
        self._pending: list[bytes] = []  # lines of this turn of the event loop
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # where a flush waits
        _LIVE.add(self)  # flushed at exit: the last lines of a stopping server

    def _timestamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:  # logging's asctime: local time, comma, milliseconds
            self._second, self._stamp = (
                second,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
            )
        return f"{self._stamp},{int((now - second) * 1000):03d}"

    def write(self, fields: dict[str, Any]) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        stamp = self._timestamp(time.time())
        handler = our_handler(access_log)
        if handler is None or not getattr(handler, "json_lines", False):
            access_log.info("request", extra=fields)
            return
        line = {
            "timestamp": stamp,
            "level": "INFO",
            "name": "api.access",
            "event": "request",
            "run_id": None,
            "request_id": current_request_id(),
            **fields,
        }
        self._pending.append(orjson.dumps(line))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): write it now
            self._flush(handler)
            return
        if len(self._pending) >= self.MAX_PENDING:
            self._flush(handler)
        elif self._flush_loop is not loop:  # the first line since the last write
            self._flush_loop = loop
            loop.call_later(self.FLUSH_SECONDS, self._flush, handler)

    def flush(self) -> None:
        handler = our_handler(access_log)
        if handler is not None:
            self._flush(handler)

    def _flush(self, handler: logging.StreamHandler[Any]) -> None:
        """The waiting lines in one write (one system call: the stream is line-buffered),
        through the secret mask the logging handler applies to every finished line (one
        pass for all of them: the path and the request id are the client's words)."""
        lines, self._pending, self._flush_loop = self._pending, [], None
        if lines:
            text = self.mask.clean(b"\n".join(lines).decode()) + "\n"
            with handler.lock or _NO_LOCK:
                handler.stream.write(text)


@atexit.register
def _flush_all() -> None:
    for log in list(_LIVE):
        log.flush()
