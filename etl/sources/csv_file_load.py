"""One CSV file's load, as named steps: check the file -> hash it (and find overlong lines)
-> skip it when already loaded -> sniff the layout -> in one transaction, open the batch,
stream chunks (assets, validation, upsert), quarantine rejected rows, record the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, insert, update
from tqdm import tqdm

from etl.core.assets import AssetRef, AssetRegistry
from etl.core.errors import AssetTextError, EtlError, FileExtractError
from etl.core.intervals import INTERVAL_MS, interval_from_name
from etl.core.series import OHLC, SeriesStats
from etl.db.engine import is_sqlite
from etl.db.models import SourceBatch
from etl.extract.csv_formats import CsvFormat, Layout
from etl.extract.csv_reader import Chunk, iter_chunks, sniff
from etl.extract.csv_scan import FileScan, scan_file
from etl.extract.zip_members import CsvInput, input_path
from etl.load.price_points import PricePointWriter
from etl.load.writer import (
    CandleWriter,
    ensure_asset,
    load_transaction,
    open_candle_writer,
)
from etl.read.batches import batch_already_loaded
from etl.sources.base import RunContext, SourceResult
from etl.sources.csv_file_check import record_skipped
from etl.sources.csv_quarantine import Quarantine
from etl.transform.bar_interval import infer_interval
from etl.transform.no_trade import NoTradeRuns, Run, no_trade_mask
from etl.transform.price_points import validate_price_points
from etl.transform.validate import ASSET_SHIFT, SeenKeys, validate_candles

log = logging.getLogger(__name__)
REQUIRED_FIELDS = ("open_time", *OHLC)
REJECTED_FLUSH_ROWS = 20_000


@dataclass(frozen=True)
class LoadOptions:
    default_symbol: str | None
    on_chunk: Callable[[int], None] | None
    roots: list[Path]  # a symlink is followed only to a regular file below one of these


@dataclass(frozen=True)
class FileInput:
    source: CsvInput  # what is opened: a file, or a member of a zip
    path: Path  # what it is called: the file, or `archive.zip/member.csv`
    fmt: CsvFormat
    layout: Layout
    scan: FileScan


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


def load_file(
    ctx: RunContext,
    source: CsvInput,
    result: SourceResult,
    options: LoadOptions,
    *,
    sha256: str,
    started: float,
) -> None:
    """Load one file, or one member of a zip, whose content `sha256` was found new
    (`etl.sources.csv_file_check.new_content`, timed from `started`)."""
    path = input_path(source)
    scan = scan_file(source, ctx.settings.csv_max_line_bytes, sha256=sha256)
    fmt, layout = sniff(source, ctx.settings.csv_max_line_bytes)
    with load_transaction(ctx.engine, str(path)) as conn:
        if batch_already_loaded(conn, scan.sha256):  # another run loaded it while we waited
            record_skipped(result, path, scan.sha256)
            return
        file = FileInput(source, path, fmt, layout, scan)
        detail = FileLoad(ctx, conn, file, options).run(result)
    detail["duration_s"] = round(time.perf_counter() - started, 3)
    result.details.append(detail)
    log.info("csv file loaded", extra=detail)


class AssetMapper:
    """Symbols (or the file's name) to asset ids; a refused symbol/name keeps its reason."""

    def __init__(
        self, ctx: RunContext, conn: Connection, file: FileInput, options: LoadOptions
    ) -> None:
        self.ctx, self.conn, self.file, self.options = ctx, conn, file, options
        self.ids: dict[str, int] = {}
        self.refused: dict[object, str] = {}  # symbol -> reason (bad name, another coin's)
        self.file_asset: int | None = None
        # PostgreSQL: the load connection may be busy with a COPY; asset rows are reference
        # data, committed on their own (an asset whose load later fails stays, harmless).
        self.side = None if is_sqlite(conn) else ctx.engine.connect()

    def asset_ids(self, frame: pd.DataFrame) -> pd.Series:
        layout = self.file.layout
        if not ("symbol" in layout.columns or layout.tickers):
            return pd.Series(self._file_asset_id(), index=frame.index, dtype="float64")
        mapping: dict[object, float] = {}
        pairs = frame.loc[frame["symbol"].notna(), ["symbol", "name"]].drop_duplicates()
        for symbol, name in pairs.itertuples(index=False):
            asset_id = self._asset_id_for(symbol, None if pd.isna(name) else str(name))
            if asset_id is not None:
                mapping[symbol] = float(asset_id)
        return frame["symbol"].map(mapping).astype("float64")

    def _asset_id_for(self, symbol: object, name: str | None) -> int | None:
        key = str(symbol)
        if key not in self.ids:
            try:
                ref = self.ctx.registry.from_content(key, name)
            except AssetTextError as exc:
                self.refused[symbol] = exc.reason
                return None
            except EtlError:
                return None
            self.ids[key] = self._ensure(ref)
        return self.ids[key]

    def _file_asset_id(self) -> int:
        if self.file_asset is None:
            path, fmt = self.file.path, self.file.fmt
            named = fmt.asset_from_name(path, self.ctx.registry)
            if named is not None:  # the layout's own naming convention (BTCUSDT-1h-...)
                self.file_asset = self._ensure(named)
                return self.file_asset
            symbol = file_symbol(path, fmt, self.ctx.registry, self.options.default_symbol)
            if symbol is None:
                raise FileExtractError(
                    path,
                    "the file names no asset in its content or its name; "
                    "pass --csv-symbol (e.g. --csv-symbol BTCUSD)",
                )
            ref = self.ctx.registry.resolve(symbol, strict=False)
            if ref is None:
                raise FileExtractError(path, f"unknown asset {symbol[:40]!r}")
            self.file_asset = self._ensure(ref)
        return self.file_asset

    def _ensure(self, ref: AssetRef) -> int:
        if self.side is None:
            return ensure_asset(self.conn, ref)
        with self.side.begin():
            return ensure_asset(self.side, ref)

    def close(self) -> None:
        if self.side is not None:
            self.side.close()


class FileLoad:
    """One file's load inside its transaction: batch row, chunks, quarantine, counts."""

    def __init__(
        self, ctx: RunContext, conn: Connection, file: FileInput, options: LoadOptions
    ) -> None:
        self.ctx, self.conn, self.file, self.options = ctx, conn, file, options
        self.source = file.fmt.source_for(file.path)
        self.writer: CandleWriter | None = None
        self.interval: str | None = None
        self.stats: dict[int, SeriesStats] = {}
        self.seen = SeenKeys()
        self.no_trade = NoTradeRuns() if file.fmt.no_trade_runs else None
        self.prices = file.fmt.kind == "price_point"  # loads into `price_point`, not `candle`
        self.read = self.blank = 0
        self.batch_id = 0

    def run(self, result: SourceResult) -> dict[str, Any]:
        self.batch_id = self._open_batch()
        self.assets = assets = AssetMapper(self.ctx, self.conn, self.file, self.options)
        quarantine = Quarantine(self.ctx, self.conn, self.file.source, self.source)
        try:
            for number, chunk in enumerate(self._chunks()):
                if self.options.on_chunk is not None:
                    self.options.on_chunk(number)
                self._take(chunk, assets, quarantine)
                if len(quarantine.pending) >= REJECTED_FLUSH_ROWS:
                    self._end_no_trade_run(quarantine)  # lines reach the quarantine in order
                    quarantine.flush(self.writer)
            self.writer = self.writer or self._writer()  # no valid row: nothing to upsert
            counts = self.writer.finish()
            self._end_no_trade_run(quarantine)
            quarantine.flush(self.writer)
        finally:
            if self.writer is not None:
                self.writer.close()
            assets.close()
            quarantine.raw.close()
        self._close_batch(quarantine.count)
        detail = {
            "inserted": counts.inserted,
            "updated": counts.updated,
            "unchanged": counts.unchanged,
            "rejected": quarantine.count,
        }
        self._add_to(result, detail)
        return self._detail(detail) | {"quarantined": quarantine.records}

    def _chunks(self) -> Iterable[Chunk]:
        file, settings = self.file, self.ctx.settings
        chunks = iter_chunks(
            file.source, file.fmt, file.layout, settings.csv_chunk_rows, file.scan.unreadable
        )
        show = self.ctx.show_progress
        return tqdm(chunks, desc=file.path.name, unit="chunk", disable=not show)

    def _open_batch(self) -> int:
        file, ctx = self.file, self.ctx
        return int(
            self.conn.execute(
                insert(SourceBatch)
                .values(
                    run_id=ctx.run_id,
                    kind="csv",
                    ref=str(file.path),
                    content_sha256=file.scan.sha256,
                    format=file.fmt.name,
                    rows_read=0,
                    rows_rejected=0,
                    created_at=ctx.now_ms,
                )
                .returning(SourceBatch.id)
            ).scalar_one()
        )

    def _close_batch(self, rejected: int) -> None:
        self.conn.execute(
            update(SourceBatch)
            .where(SourceBatch.id == self.batch_id)
            .values(rows_read=self.read, rows_rejected=rejected)
        )

    def _add_to(self, result: SourceResult, counts: dict[str, int]) -> None:
        # price points are no bar series: no metrics, no quality report (both read candles)
        for asset_id, stats in ({} if self.prices else self.stats).items():
            key = (asset_id, self.source, self.interval or "1d")
            result.series.setdefault(key, SeriesStats()).merge(stats)
        result.read += self.read
        result.inserted += counts["inserted"]
        result.updated += counts["updated"]
        result.unchanged += counts["unchanged"]
        result.rejected += counts["rejected"]

    def _detail(self, counts: dict[str, int]) -> dict[str, Any]:
        return {
            "file": str(self.file.path),
            "status": "loaded",
            "format": self.file.fmt.name,
            "source": self.source,
            "interval": self.interval,
            "table": "price_point" if self.prices else "candle",
            "read": self.read,
            **counts,
            "blank_lines": self.blank,
            "sha256": self.file.scan.sha256,
        }

    def _writer(self) -> CandleWriter:
        if self.prices:
            return PricePointWriter(
                self.conn, source=self.source, batch_id=self.batch_id, now_ms=self.ctx.now_ms
            )
        interval = self.interval or self.file.fmt.fixed_interval or "1d"
        return open_candle_writer(
            self.conn,
            source=self.source,
            interval=interval,
            batch_id=self.batch_id,
            now_ms=self.ctx.now_ms,
            reader=self.assets.side,
        )

    def _take(self, chunk: Chunk, assets: AssetMapper, quarantine: Quarantine) -> None:
        self.read += len(chunk.frame) + len(chunk.malformed)
        self.blank += chunk.blank_lines
        frame = chunk.frame
        if not frame.empty:
            frame["asset_id"] = assets.asset_ids(frame)
            frame = self._refuse_bad_assets(frame, assets, quarantine)
            self._count_rows(frame)
            if self.no_trade is not None:
                frame = self._take_no_trade_rows(self.no_trade, frame, quarantine)
            validate = validate_price_points if self.prices else validate_candles
            checked = validate(
                frame,
                now_ms=self.ctx.now_ms,
                future_tolerance_ms=self.ctx.settings.future_tolerance_seconds * 1000,
            )
            valid, dupes = self.seen.split(checked.valid)
            if self.writer is None and not valid.empty:
                self.interval = None if self.prices else self._decide_interval(valid)
                self.writer = self._writer()
            if self.writer is not None:
                self.writer.add(valid)
            for rejected in (checked.rejected, dupes):
                self._reject(rejected, quarantine)
        for line, reason in chunk.malformed:
            quarantine.add(line, f"malformed_line: {reason}")

    @staticmethod
    def _refuse_bad_assets(
        frame: pd.DataFrame, assets: AssetMapper, quarantine: Quarantine
    ) -> pd.DataFrame:
        """Rows whose symbol or name was refused are quarantined with that reason."""
        if not assets.refused:
            return frame
        reasons = frame["symbol"].astype(object).map(assets.refused)
        bad = reasons.notna()
        for line, reason in zip(frame.loc[bad, "line"], reasons[bad], strict=True):
            quarantine.add(int(line), str(reason))
        return frame.loc[~bad].reset_index(drop=True)

    def _take_no_trade_rows(
        self, no_trade: NoTradeRuns, frame: pd.DataFrame, quarantine: Quarantine
    ) -> pd.DataFrame:
        """Rows with a time and no value leave the frame and join runs (one record each)."""
        empty = no_trade_mask(frame)
        if not empty.any():
            return frame
        runs = no_trade.feed(frame.loc[empty, ["line", "open_time", "asset_id"]])
        self._quarantine_runs(runs, quarantine)
        return frame.loc[~empty].reset_index(drop=True)

    def _end_no_trade_run(self, quarantine: Quarantine) -> None:
        if self.no_trade is not None:
            self._quarantine_runs(self.no_trade.close(), quarantine)

    def _quarantine_runs(self, runs: list[Run], quarantine: Quarantine) -> None:
        for run in runs:
            quarantine.add(run.first_line, run.reason, rows=run.rows)
            self.stats.setdefault(run.asset_id, SeriesStats()).rejected["missing_ohlc"] += run.rows

    def _decide_interval(self, valid: pd.DataFrame) -> str:
        fmt, path = self.file.fmt, self.file.path
        if fmt.fixed_interval:
            return fmt.fixed_interval
        named = fmt.interval_from_name(path)  # Binance `-1h-`, Kraken `_1440`: authoritative
        if named is not None:
            if named not in INTERVAL_MS:
                raise FileExtractError(path, f"bar interval {named!r} is not supported")
            return named
        asset = valid["asset_id"].to_numpy(np.int64)
        keys = asset * ASSET_SHIFT + valid["open_time"].to_numpy(np.int64)
        inferred = infer_interval(keys) if len(valid) > 1 else None
        interval = inferred or interval_from_name(path.stem) or fmt.fallback_interval
        if interval is None:
            raise FileExtractError(
                self.file.path, "cannot tell the bar interval from the timestamps or the file name"
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

    def _reject(self, rejected: pd.DataFrame, quarantine: Quarantine) -> None:
        for line, reason, code, asset_id in rejected[
            ["line", "reason", "code", "asset_id"]
        ].itertuples(index=False):
            quarantine.add(int(line), str(reason))
            if not pd.isna(asset_id):
                self.stats.setdefault(int(asset_id), SeriesStats()).rejected[str(code)] += 1
