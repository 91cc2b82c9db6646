"""Candle exports, streamed: CSV, NDJSON or Parquet, optionally gzip-compressed.

Every format carries the canonical layout of docs/formats.md (`symbol,timestamp,open,high,
low,close,volume,volume_quote`; `timestamp` is the bar's open, UTC), so an exported CSV
loads back through `CsvSource` as the same bars. Floats are written in their shortest
round-trip form (Python's `repr`, orjson's), which is exact.

Memory is constant in the range's length: bars are read `EXPORT_CHUNK_BARS` at a time
through `candle_page` (the API's own paging) and each chunk is encoded and sent before the
next is read. Each chunk checks a connection out of the pool and returns it at once: a
download runs as fast as the client reads, and a connection held for all of it would take
one of the fixed pool's few connections (8 on SQLite) away from every other request for
that long, and keep an SQLite read transaction open, which stops WAL checkpoints and lets
the WAL file grow. The price: chunks are separate reads, so a bar rewritten mid-download
may appear with its old values in one chunk and its neighbours' new values in the next;
paging by open time never repeats or skips a bar.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine

from etl.core.intervals import INTERVAL_MS
from etl.read.candles import candle_page

ExportFormat = Literal["csv", "ndjson", "parquet"]
COLUMNS = ("symbol", "timestamp", "open", "high", "low", "close", "volume", "volume_quote")
MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
# Parquet is compressed inside (zstd per column chunk); gzip on top would gain little.
GZIP_FORMATS = frozenset({"csv", "ndjson"})
PARQUET_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64()),
        pa.field("volume_quote", pa.float64()),
    ]
)


@dataclass(frozen=True)
class ExportSeries:
    """One export as the route validated it: the series and the range to read."""

    symbol: str
    asset_id: int
    source: str
    stored: str
    interval: str
    start_ms: int
    end_ms: int


def bar_chunks(engine: Engine, series: ExportSeries, chunk_bars: int) -> Iterator[list[Any]]:
    """The range's bars, oldest first, `chunk_bars` at a time; a connection per chunk."""
    start = series.start_ms
    while start < series.end_ms:
        with engine.connect() as conn:
            rows = candle_page(
                conn,
                asset_id=series.asset_id,
                source=series.source,
                stored=series.stored,
                interval=series.interval,
                start_ms=start,
                end_ms=series.end_ms,
                limit=chunk_bars,
            )
        if rows[:chunk_bars]:
            yield rows[:chunk_bars]
        if len(rows) <= chunk_bars:
            return
        start = rows[chunk_bars - 1]["close_time"]


def iso_times(ms: list[int]) -> list[str]:
    """ISO-8601 UTC text (`2024-03-01T00:00:00Z`), milliseconds only when a time has them."""
    times = np.array(ms, dtype="datetime64[ms]")
    unit: Literal["s", "ms"] = "s" if all(t % 1000 == 0 for t in ms) else "ms"
    text: list[str] = np.char.add(np.datetime_as_string(times, unit=unit), "Z").tolist()
    return text


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def csv_bytes(symbol: str, chunks: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
    yield (",".join(COLUMNS) + "\n").encode()
    for rows in chunks:
        times = iso_times([r["open_time"] for r in rows])
        yield "".join(
            f"{symbol},{t},{_number(r['open'])},{_number(r['high'])},{_number(r['low'])},"
            f"{_number(r['close'])},{_number(r['volume'])},{_number(r['volume_quote'])}\n"
            for r, t in zip(rows, times, strict=True)
        ).encode()


def ndjson_bytes(symbol: str, chunks: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
    for rows in chunks:
        times = iso_times([r["open_time"] for r in rows])
        yield b"".join(
            orjson.dumps(
                {
                    "symbol": symbol,
                    "timestamp": t,
                    "open": r["open"],
                    "high": r["high"],
                    "low": r["low"],
                    "close": r["close"],
                    "volume": r["volume"],
                    "volume_quote": r["volume_quote"],
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for r, t in zip(rows, times, strict=True)
        )


class _Drain:
    """A write-only file for pyarrow that keeps what was written until it is taken."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def parquet_bytes(symbol: str, chunks: Iterable[list[dict[str, Any]]]) -> Iterator[bytes]:
    """One row group per chunk, sent as soon as it is written; the footer comes last."""
    sink = _Drain()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), PARQUET_SCHEMA, compression="zstd")
    try:
        for rows in chunks:
            table = pa.table(
                {
                    "symbol": [symbol] * len(rows),
                    "timestamp": [r["open_time"] for r in rows],
                    **{c: [r[c] for r in rows] for c in COLUMNS[2:]},
                },
                schema=PARQUET_SCHEMA,
            )
            writer.write_table(table)
            yield sink.take()
    finally:
        writer.close()
    yield sink.take()


ENCODERS = {"csv": csv_bytes, "ndjson": ndjson_bytes, "parquet": parquet_bytes}


def gzipped(parts: Iterable[bytes]) -> Iterator[bytes]:
    """A gzip member over `parts`, streamed: each part's compressed output as it comes."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip header and trailer
    for part in parts:
        if out := compressor.compress(part):
            yield out
    yield compressor.flush()


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether `Accept-Encoding` allows gzip (named, or `*`, with a non-zero q)."""
    allowed: dict[str, bool] = {}
    for item in accept_encoding.split(","):
        name, *params = (p.strip() for p in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name:
            allowed[name.lower()] = quality > 0
    return allowed.get("gzip", allowed.get("*", False))


def file_name(series: ExportSeries, span: tuple[int, int, int] | None, fmt: str) -> str:
    """`BTCUSD_coinmarketcap_1d_20210101T0000Z-20210201T0000Z.csv`: asset, source, interval
    and the range the bars cover (first open to last close), or `empty`."""
    if span is None:
        covered = "empty"
    else:
        last_close = span[2] + INTERVAL_MS[series.interval]
        covered = f"{_stamp(span[1])}-{_stamp(last_close)}"
    return f"{series.symbol}_{series.source}_{series.interval}_{covered}.{fmt}"


def _stamp(ms: int) -> str:
    text: str = np.datetime_as_string(np.datetime64(ms, "ms"), unit="m").item()
    return text.replace("-", "").replace(":", "") + "Z"
