"""The historical source: CSV files (a file or a folder, `*.csv`), one atomic batch each.

Per file: hash the content and skip it when that hash was already loaded; otherwise, in
one write transaction (locked, see `etl.db.engine.write_transaction`), stream its chunks through
validation and the upsert, quarantine the rejected rows with their raw text, and record
the batch. A file that cannot be recognised or read fails alone (the source is then
`partial`); a database failure rolls the file back and fails the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, insert, update
from tqdm import tqdm

from etl.core.assets import AssetRef, AssetRegistry
from etl.core.errors import EtlError, FileExtractError, LoadError
from etl.core.intervals import infer_interval, interval_from_name
from etl.core.series import OHLC, SeriesStats
from etl.db.engine import is_sqlite
from etl.db.models import SourceBatch
from etl.extract.csv_formats import CsvFormat, Layout
from etl.extract.csv_reader import Chunk, RawLines, file_sha256, iter_chunks, sniff
from etl.load.writer import (
    CandleWriter,
    batch_already_loaded,
    ensure_asset,
    insert_rejected,
    load_transaction,
    open_candle_writer,
)
from etl.sources.base import RunContext, SourceResult
from etl.transform.validate import ASSET_SHIFT, SeenKeys, validate_candles

log = logging.getLogger(__name__)
REQUIRED_FIELDS = ("open_time", *OHLC)

ChunkHook = Callable[[int], None]
REJECTED_FLUSH_ROWS = 20_000


def discover(paths: Sequence[Path]) -> list[Path]:
    """Every `.csv` under the given files and folders, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() == ".csv"))
        elif path.exists():
            found.append(path)
        else:
            raise FileExtractError(path, "no such file or folder")
    return list(dict.fromkeys(found))


def file_symbol(
    path: Path, fmt: CsvFormat, registry: AssetRegistry, fallback: str | None
) -> str | None:
    """The asset a symbol-less file is about: its name, else the option, else the format's."""
    stem = path.stem
    candidates = [stem, stem.removesuffix(" Historical Data"), *stem.replace("-", "_").split("_")]
    candidates += [" ".join(stem.split()[:1])]
    for candidate in candidates:
        ref = registry.resolve(candidate, strict=False)
        if ref is not None:
            return ref.symbol
    return fallback or fmt.default_symbol


class CsvSource:
    name = "csv"

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        default_symbol: str | None = None,
        on_chunk: ChunkHook | None = None,
    ) -> None:
        self.paths = list(paths)
        self.default_symbol = default_symbol
        self.on_chunk = on_chunk  # test seam: called before each chunk is written

    def run(self, ctx: RunContext) -> SourceResult:
        result = SourceResult(self.name)
        try:
            files = discover(self.paths)
        except FileExtractError as exc:
            result.status, result.errors = "failed", [str(exc)]
            return result
        for path in files:
            try:
                self._load_file(ctx, path, result)
            except (EtlError, UnicodeDecodeError, pd.errors.ParserError, ValueError) as exc:
                if isinstance(exc, LoadError):
                    raise
                log.warning("csv file failed", extra={"file": str(path), "error": str(exc)})
                result.errors.append(str(exc))
                result.details.append({"file": str(path), "status": "failed", "error": str(exc)})
        failed = sum(d["status"] == "failed" for d in result.details)
        if failed:
            result.status = "failed" if failed == len(files) else "partial"
        return result

    def _load_file(self, ctx: RunContext, path: Path, result: SourceResult) -> None:
        started = time.perf_counter()
        sha = file_sha256(path)
        with ctx.engine.connect() as conn:
            if batch_already_loaded(conn, sha):
                result.details.append({"file": str(path), "status": "skipped", "sha256": sha})
                log.info("csv file unchanged, skipped", extra={"file": str(path)})
                return
        fmt, layout = sniff(path)
        with load_transaction(ctx.engine, str(path)) as conn:
            if batch_already_loaded(conn, sha):  # another run loaded it while we waited
                result.details.append({"file": str(path), "status": "skipped", "sha256": sha})
                return
            detail = _FileLoad(ctx, conn, path, fmt, layout, sha, self).run(result)
        detail["duration_s"] = round(time.perf_counter() - started, 3)
        result.details.append(detail)
        log.info("csv file loaded", extra=detail)


class _FileLoad:
    """The state of one file's load inside its transaction."""

    def __init__(
        self,
        ctx: RunContext,
        conn: Connection,
        path: Path,
        fmt: CsvFormat,
        layout: Layout,
        sha: str,
        source: CsvSource,
    ) -> None:
        self.ctx, self.conn, self.path, self.fmt, self.layout = ctx, conn, path, fmt, layout
        self.sha, self.options = sha, source
        self.source = fmt.source_for(path)
        self.asset_ids: dict[str, int] = {}
        self.file_asset: int | None = None
        self.writer: CandleWriter | None = None
        self.interval: str | None = None
        self.rejected: list[dict[str, Any]] = []  # not yet written; flushed in bulk
        self.rejected_count = 0
        self.raw = RawLines(path)
        self.stats: dict[int, SeriesStats] = {}
        self.side: Connection | None = None  # PostgreSQL only, see _ensure_asset

    def run(self, result: SourceResult) -> dict[str, Any]:
        ctx = self.ctx
        batch_id = self.conn.execute(
            insert(SourceBatch)
            .values(run_id=ctx.run_id, kind="csv", ref=str(self.path), content_sha256=self.sha,
                    format=self.fmt.name, rows_read=0, rows_rejected=0, created_at=ctx.now_ms)
            .returning(SourceBatch.id)
        ).scalar_one()  # fmt: skip
        seen = SeenKeys()
        read = blank = 0
        if not is_sqlite(self.conn):
            self.side = self.ctx.engine.connect()
        chunks = iter_chunks(self.path, self.fmt, self.layout, ctx.settings.csv_chunk_rows)
        progress = tqdm(chunks, desc=self.path.name, unit="chunk", disable=not ctx.show_progress)
        try:
            for number, chunk in enumerate(progress):
                if self.options.on_chunk is not None:
                    self.options.on_chunk(number)
                read += len(chunk.frame) + len(chunk.malformed)
                blank += chunk.blank_lines
                self._take(chunk, seen, batch_id)
                if len(self.rejected) >= REJECTED_FLUSH_ROWS:
                    self._quarantine()
            if self.writer is None:  # no valid row at all: nothing to upsert
                self.writer = self._writer(batch_id)
            counts = self.writer.finish()
            self._quarantine()
        finally:
            if self.writer is not None:
                self.writer.close()
            if self.side is not None:
                self.side.close()
            self.raw.close()
        self.conn.execute(
            update(SourceBatch)
            .where(SourceBatch.id == batch_id)
            .values(rows_read=read, rows_rejected=self.rejected_count)
        )
        for asset_id, stats in self.stats.items():
            key = (asset_id, self.source, self.interval or "1d")
            result.series.setdefault(key, SeriesStats()).merge(stats)
        result.read += read
        result.inserted += counts.inserted
        result.updated += counts.updated
        result.unchanged += counts.unchanged
        result.rejected += self.rejected_count
        return {
            "file": str(self.path), "status": "loaded", "format": self.fmt.name,
            "source": self.source, "interval": self.interval, "read": read,
            "inserted": counts.inserted, "updated": counts.updated,
            "unchanged": counts.unchanged, "rejected": self.rejected_count,
            "blank_lines": blank, "sha256": self.sha,
        }  # fmt: skip

    def _writer(self, batch_id: int) -> CandleWriter:
        interval = self.interval or self.fmt.fixed_interval or "1d"
        return open_candle_writer(
            self.conn, source=self.source, interval=interval, batch_id=batch_id,
            now_ms=self.ctx.now_ms, reader=self.side,
        )  # fmt: skip

    def _take(self, chunk: Chunk, seen: SeenKeys, batch_id: int) -> None:
        frame = chunk.frame
        frame["asset_id"] = self._asset_ids(frame)
        self._count_rows(frame)
        checked = validate_candles(
            frame, now_ms=self.ctx.now_ms,
            future_tolerance_ms=self.ctx.settings.future_tolerance_seconds * 1000,
        )  # fmt: skip
        valid, dupes = seen.split(checked.valid)
        if self.writer is None and not valid.empty:
            self.interval = self._decide_interval(valid)
            self.writer = self._writer(batch_id)
        if self.writer is not None:
            self.writer.add(valid)
        for rejected in (checked.rejected, dupes):
            self._reject(rejected)
        for line, reason in chunk.malformed:
            self.rejected.append({"line": line, "reason": f"malformed_line: {reason}"})

    def _asset_ids(self, frame: pd.DataFrame) -> pd.Series:
        symbols = frame["symbol"]
        names_asset = "symbol" in self.layout.columns or bool(self.layout.tickers)
        if not names_asset:
            return pd.Series(self._file_asset_id(), index=frame.index, dtype="float64")
        mapping: dict[object, float] = {}
        pairs = frame.loc[symbols.notna(), ["symbol", "name"]].drop_duplicates()
        for symbol, name in pairs.itertuples(index=False):
            asset_id = self._asset_id_for(str(symbol), None if pd.isna(name) else str(name))
            if asset_id is not None:
                mapping[symbol] = float(asset_id)
        return symbols.map(mapping).astype("float64")

    def _asset_id_for(self, symbol: str, name: str | None) -> int | None:
        if symbol not in self.asset_ids:
            try:
                ref = self.ctx.registry.from_content(symbol, name)
            except EtlError:
                return None
            self.asset_ids[symbol] = self._ensure_asset(ref)
        return self.asset_ids[symbol]

    def _file_asset_id(self) -> int:
        if self.file_asset is None:
            symbol = file_symbol(
                self.path, self.fmt, self.ctx.registry, self.options.default_symbol
            )
            if symbol is None:
                raise FileExtractError(
                    self.path,
                    "the file names no asset in its content or its name; "
                    "pass --csv-symbol (e.g. --csv-symbol BTCUSD)",
                )
            ref = self.ctx.registry.resolve(symbol)
            if ref is None:
                raise FileExtractError(self.path, f"unknown asset {symbol!r}")
            self.file_asset = self._ensure_asset(ref)
        return self.file_asset

    def _ensure_asset(self, ref: AssetRef) -> int:
        if self.side is None:
            return ensure_asset(self.conn, ref)
        # PostgreSQL: the load connection may be busy with a COPY; asset rows are reference
        # data, committed on their own (an asset whose load later fails stays, harmless).
        with self.side.begin():
            return ensure_asset(self.side, ref)

    def _decide_interval(self, valid: pd.DataFrame) -> str:
        if self.fmt.fixed_interval:
            return self.fmt.fixed_interval
        keys = valid["asset_id"].to_numpy(np.int64) * ASSET_SHIFT + valid["open_time"].to_numpy(
            np.int64
        )
        inferred = infer_interval(keys) if len(valid) > 1 else None
        interval = inferred or interval_from_name(self.path.stem)
        if interval is None:
            raise FileExtractError(
                self.path, "cannot tell the bar interval from the timestamps or the file name"
            )
        return interval

    def _count_rows(self, frame: pd.DataFrame) -> None:
        volume_missing = frame["volume"].isna() & frame["volume_quote"].isna()
        nulls = frame[list(REQUIRED_FIELDS)].isna().sum(axis=1) + volume_missing
        grouped = pd.DataFrame({"asset_id": frame["asset_id"], "nulls": nulls}).groupby("asset_id")
        for asset_id, group in grouped:
            stats = self.stats.setdefault(int(float(str(asset_id))), SeriesStats())
            stats.rows += len(group)
            stats.null_cells += int(group["nulls"].sum())
            stats.required_cells += len(group) * (len(REQUIRED_FIELDS) + 1)

    def _reject(self, rejected: pd.DataFrame) -> None:
        for line, reason, code, asset_id in rejected[
            ["line", "reason", "code", "asset_id"]
        ].itertuples(index=False):
            self.rejected.append({"line": int(line), "reason": str(reason)})
            if not pd.isna(asset_id):
                self.stats.setdefault(int(asset_id), SeriesStats()).rejected[str(code)] += 1

    def _quarantine(self) -> None:
        """Write the pending rejected rows with their raw text (memory stays bounded)."""
        if not self.rejected:
            return
        text = self.raw.take(r["line"] for r in self.rejected)
        rows = [
            {"run_id": self.ctx.run_id, "source": self.source, "file": str(self.path),
             "line": r["line"], "raw": text.get(r["line"], ""), "reason": r["reason"][:255],
             "created_at": self.ctx.now_ms}
            for r in self.rejected
        ]  # fmt: skip
        if self.writer is not None:
            self.writer.wait()  # the connection is the writer's while a COPY runs
        insert_rejected(self.conn, rows)
        self.rejected_count += len(rows)
        self.rejected = []
