"""Candles of one asset, any interval, paged with a signed cursor.

`start` (inclusive) and `end` (exclusive) are ISO-8601 or epoch milliseconds, UTC; the
default window is everything. `next_cursor` continues the same query; a cursor that was
altered (or belongs to another query) is a 400 problem. `/candles/{symbol}/export` streams
the same bars as a file (CSV, NDJSON or Parquet; `api/export.py`).
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine

from api.deps import StateDep
from api.errors import Problem
from api.export import (
    ENCODERS,
    GZIP_FORMATS,
    MEDIA_TYPES,
    ExportFormat,
    ExportSeries,
    accepts_gzip,
    bar_chunks,
    file_name,
    gzipped,
)
from api.hot_path import Hot, cached_answer
from api.params import SymbolPath
from api.rate_limit import RouteLimits
from api.schemas import CandlePage
from etl.core.clock import utc_now_ms
from etl.read.assets import resolve_asset
from etl.read.candles import candle_page, candle_span, choose_series

Interval = Literal["1m", "5m", "15m", "30m", "1h", "4h", "6h", "1d", "1w"]
TIME_PATTERN = r"^(\d{1,13}|\d{4}-\d{2}-\d{2}([T ][0-9:.]{2,15})?(Z|[+-]\d{2}:?\d{2})?)$"
MAX_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z


def parse_time(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    if text.isdigit():
        value = int(text)
    else:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise Problem(
                400, "invalid_time", f"{name}: not ISO-8601 or epoch ms: {text!r}"
            ) from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        value = int(parsed.timestamp() * 1000)
    if not 0 <= value <= MAX_MS:
        raise Problem(400, "invalid_time", f"{name} is out of range")
    return value


def sign(key: bytes, payload: dict[str, object]) -> str:
    data = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(key, data, hashlib.sha256).digest()[:16]
    return (data + b"." + base64.urlsafe_b64encode(mac)).decode().replace("=", "")


def unsign(key: bytes, token: str) -> dict[str, object]:
    try:
        data_text, mac_text = token.split(".")
        data = (data_text + "=" * (-len(data_text) % 4)).encode()
        mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
        if not hmac.compare_digest(mac, hmac.new(key, data, hashlib.sha256).digest()[:16]):
            raise ValueError("signature")
        payload = json.loads(base64.urlsafe_b64decode(data))
        if not isinstance(payload, dict):
            raise ValueError("shape")
        return payload
    except (ValueError, TypeError) as exc:
        raise Problem(400, "invalid_cursor", "the cursor is malformed or was altered") from exc


def bars_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows made `Bar` documents, in place (they are the page's own fresh dicts): built
    directly because rows come typed from our own query, and a page of 5,000 bars through
    pydantic objects cost more than the query (measured 11 ms/500). Times become ISO text
    in one vectorised NumPy call."""
    times = np.array(
        [r["open_time"] for r in rows] + [r["close_time"] for r in rows], dtype="datetime64[ms]"
    )
    text = np.char.add(np.datetime_as_string(times, unit="s"), "Z").tolist()
    now = utc_now_ms()
    for r, o, c in zip(rows, text[: len(rows)], text[len(rows) :], strict=True):
        r["complete"] = r["close_time"] <= now
        r["open_time"], r["close_time"] = o, c
    return rows


@dataclass(frozen=True)
class PageQuery:
    """One candle request as the route validated it."""

    symbol: str
    interval: str
    start: str | None
    end: str | None
    limit: int
    cursor: str | None
    source: str | None

    @property
    def cache_key(self) -> str:
        return (
            f"candles?{self.symbol}&{self.interval}&{self.start}&{self.end}&{self.limit}"
            f"&{self.cursor}&{self.source}"
        )


def render_page(engine: Engine, cursor_key: bytes, query: PageQuery) -> bytes:
    """One page as JSON (runs in the thread pool: it queries the database)."""
    symbol, interval, limit, cursor, source = (
        query.symbol,
        query.interval,
        query.limit,
        query.cursor,
        query.source,
    )
    start_ms = parse_time(query.start, "start", 0)
    end_ms = parse_time(query.end, "end", MAX_MS)
    with engine.connect() as conn:
        asset = resolve_asset(conn, symbol)
        if cursor is not None:
            state = unsign(cursor_key, cursor)
            if state.get("q") != [asset.symbol, interval, source, end_ms]:
                raise Problem(400, "invalid_cursor", "the cursor belongs to another query")
            start_ms = int(str(state["t"]))
        if start_ms >= end_ms:
            raise Problem(400, "invalid_range", "start must be before end")
        series = choose_series(conn, asset.id, interval, source)
        if series is None:
            raise Problem(
                404,
                "no_series",
                f"no {source or 'stored'} bars for {asset.symbol} that make {interval} bars",
            )
        rows = candle_page(
            conn,
            asset_id=asset.id,
            source=series[0],
            stored=series[1],
            interval=interval,
            start_ms=start_ms,
            end_ms=end_ms,
            limit=limit,
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        sign(
            cursor_key, {"q": [asset.symbol, interval, source, end_ms], "t": rows[-1]["close_time"]}
        )
        if more
        else None
    )
    body = {
        "symbol": asset.symbol,
        "source": series[0],
        "interval": interval,
        "resampled_from": series[1],
        "data": bars_json(rows),
        "next_cursor": next_cursor,
    }
    # orjson: 1.3 ms -> 0.1 ms for a 500-bar page (the stdlib encoder was the largest
    # cost of the route, measured with py-spy under load).
    return orjson.dumps(body)


def export_response(
    request: Request, engine: Engine, max_bars: int, chunk_bars: int, query: PageQuery, fmt: str
) -> StreamingResponse:
    """Checks the request against the database (unknown asset or series, empty or oversized
    range: problems, before any byte is sent), then streams the file chunk by chunk."""
    start_ms = parse_time(query.start, "start", 0)
    end_ms = parse_time(query.end, "end", MAX_MS)
    if start_ms >= end_ms:
        raise Problem(400, "invalid_range", "start must be before end")
    with engine.connect() as conn:
        asset = resolve_asset(conn, query.symbol)
        chosen = choose_series(conn, asset.id, query.interval, query.source)
        if chosen is None:
            raise Problem(
                404,
                "no_series",
                f"no {query.source or 'stored'} bars for {asset.symbol} that make "
                f"{query.interval} bars",
            )
        series = ExportSeries(
            asset.symbol, asset.id, chosen[0], chosen[1], query.interval, start_ms, end_ms
        )
        span = candle_span(
            conn,
            asset_id=asset.id,
            source=series.source,
            stored=series.stored,
            interval=series.interval,
            start_ms=start_ms,
            end_ms=end_ms,
            at_most=max_bars,  # counting stops past the cap: bounded whatever the range
        )
    if span is not None and span[0] > max_bars:
        raise Problem(
            400,
            "export_too_large",
            f"more than {max_bars} bars in that range; an export holds at most {max_bars}: "
            "narrow start/end or choose a coarser interval",
        )
    body = ENCODERS[fmt](asset.symbol, bar_chunks(engine, series, chunk_bars))
    headers = {
        "Content-Disposition": f'attachment; filename="{file_name(series, span, fmt)}"',
        "Cache-Control": "private, no-cache",
        "X-Export-Bars": str(span[0] if span else 0),
    }
    if fmt in GZIP_FORMATS:
        headers["Vary"] = "Accept-Encoding"
        if accepts_gzip(request.headers.get("accept-encoding", "")):
            body = gzipped(body)
            headers["Content-Encoding"] = "gzip"
    return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers)


def build(limits: RouteLimits) -> APIRouter:
    router = APIRouter(prefix="/api/crypto", tags=["candles"])

    @router.get("/candles/{symbol}", response_model=CandlePage)
    @limits.candles
    async def candles(
        request: Request,
        state: StateDep,
        symbol: SymbolPath,
        interval: Interval = "1d",
        start: Annotated[str | None, Query(pattern=TIME_PATTERN, max_length=40)] = None,
        end: Annotated[str | None, Query(pattern=TIME_PATTERN, max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
        cursor: Annotated[str | None, Query(max_length=512, pattern=r"^[A-Za-z0-9_.-]+$")] = None,
        source: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,32}$")] = None,
    ) -> Response:
        """Bars with `open_time` in [start, end), oldest first, resampled server-side from
        the finest stored bars of the source (default: the finest, then newest, source
        that divides the interval). Buckets align to UTC midnight; `1w` starts Monday
        00:00 UTC. `complete` is false for a bar whose close time has not passed.
        Pages are kept in the hot-read cache like `latest` (`CACHE_TTL_SECONDS`)."""
        query = PageQuery(symbol, interval, start, end, limit, cursor, source)
        engine, cursor_key = state.engine, state.cursor_key
        hot = Hot(
            "/api/crypto/candles/{symbol}",
            limits.candles,
            query.cache_key,
            lambda: render_page(engine, cursor_key, query),
            state.settings.cache_max_age_seconds,
        )
        return await cached_answer(request, state.hot_cache, state.hot_routes, hot)

    @router.get(
        "/candles/{symbol}/export",
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "the file, streamed",
                "content": {media.split(";")[0]: {} for media in MEDIA_TYPES.values()},
            }
        },
    )
    @limits.export
    def export(
        request: Request,
        state: StateDep,
        symbol: SymbolPath,
        format_: Annotated[ExportFormat, Query(alias="format")] = "csv",
        interval: Interval = "1d",
        start: Annotated[str | None, Query(pattern=TIME_PATTERN, max_length=40)] = None,
        end: Annotated[str | None, Query(pattern=TIME_PATTERN, max_length=40)] = None,
        source: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,32}$")] = None,
    ) -> Response:
        """The bars `/candles/{symbol}` would page through, as one file: `csv` (the
        canonical layout of docs/formats.md, loadable again as the same bars), `ndjson`
        (the same fields, one object a line) or `parquet` (typed: `timestamp` is
        timestamp[ms, UTC], prices and volumes float64). Streamed in chunks of
        `EXPORT_CHUNK_BARS` (memory does not grow with the range), gzip-compressed when the
        client accepts it (CSV, NDJSON). At most `EXPORT_MAX_BARS` bars per request: a
        larger range is a 400 problem (`export_too_large`). Its own rate-limit class,
        `RATE_LIMIT_EXPORT`. `Content-Disposition` names the asset, source, interval and
        the range covered."""
        settings = state.settings
        query = PageQuery(symbol, interval, start, end, 0, None, source)
        return export_response(
            request,
            state.engine,
            settings.export_max_bars,
            settings.export_chunk_bars,
            query,
            format_,
        )

    return router
