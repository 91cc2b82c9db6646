"""The historical source: CSV files (a file or a folder, `*.csv`, and the CSVs inside
`*.zip` archives, read without unpacking), one atomic batch each.

Per file: check it is a regular file we may read, hash it and skip it when that hash was
already loaded (`etl.sources.csv_file_check`); otherwise (`etl.sources.csv_file_load`), in
one write transaction (locked, see `etl.db.engine.write_transaction`), stream its chunks
through validation and the upsert, quarantine the rejected rows with their raw text, and
record the batch.

Any failure of one file (unreadable, not a regular file, unrecognised, no asset, a bug in
a parser) fails that file alone with a one-line reason, and the source is `partial`. Only
a database failure (`LoadError`, `SQLAlchemyError`) rolls the file back and fails the run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from etl.core.errors import LoadError
from etl.extract.csv_guard import check_regular, is_below, one_line, resolved, shown
from etl.extract.zip_members import CsvInput, ZipLimits, input_path, is_zip, zip_members
from etl.sources.base import RunContext, SourceResult
from etl.sources.csv_file_check import new_content

__all__ = ["OUTSIDE_ROOTS", "ChunkHook", "CsvSource", "csv_inputs", "discover"]

log = logging.getLogger(__name__)

ChunkHook = Callable[[int], None]
SUFFIXES = (".csv", ".zip")
OUTSIDE_ROOTS = "outside the allowed folders (CSV_ALLOWED_ROOTS, default KAGGLE_DATA_PATH)"


def csv_inputs(
    path: Path, roots: Sequence[Path], limits: ZipLimits | None = None
) -> list[CsvInput]:
    """A CSV file as itself; a `.zip` (checked whole first) as its CSV members."""
    if not is_zip(path):
        return [path]
    check_regular(path, roots)
    return list(zip_members(path, limits or ZipLimits()))


def discover(paths: Sequence[Path]) -> list[Path]:
    """Every `*.csv` and `*.zip` name under the given folders, and the given files, in a
    stable order.

    Nothing is opened or judged here: a directory named `x.csv`, a FIFO or a missing path
    is listed, and then fails alone when it is loaded.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():  # a folder given by symlink is followed; links inside it are not
            with os.scandir(path):  # rglob would skip an unreadable folder silently
                pass
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES))
        else:
            found.append(path)
    return list(dict.fromkeys(found))


class CsvSource:
    name = "csv"

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        default_symbol: str | None = None,
        on_chunk: ChunkHook | None = None,
        allowed_roots: Sequence[Path] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.default_symbol = default_symbol
        self.on_chunk = on_chunk  # test seam: called before each chunk is written
        # Paths from outside (a flow parameter) must lie below these; None: any path.
        self.allowed_roots = list(allowed_roots) if allowed_roots is not None else None
        # A symlink found in a folder is followed only to a file inside the given paths.
        self.roots = [resolved(p) for p in self.paths]

    def run(self, ctx: RunContext) -> SourceResult:
        result = SourceResult(self.name)
        refused = self._refused()
        for path in refused:
            self._fail(result, path, f"{shown(path)}: {OUTSIDE_ROOTS}")
        seen: set[Path] = set()
        for given in (p for p in self.paths if p not in refused):
            try:
                files = discover([given])
            except OSError as exc:  # an unreadable folder fails alone too
                self._fail(result, given, one_line(exc))
                continue
            for path in (f for f in files if f not in seen):
                seen.add(path)
                self._run_file(ctx, path, result)
        failed = sum(d["status"] == "failed" for d in result.details)
        if failed:
            result.status = "failed" if failed == len(result.details) else "partial"
        return result

    def _refused(self) -> list[Path]:
        if self.allowed_roots is None:
            return []
        return [p for p in self.paths if not is_below(p, self.allowed_roots)]

    def _run_file(self, ctx: RunContext, path: Path, result: SourceResult) -> None:
        try:
            settings = ctx.settings
            limits = ZipLimits(settings.csv_zip_max_members, settings.csv_zip_max_member_bytes)
            inputs = csv_inputs(path, self.roots, limits)
        except Exception as exc:  # noqa: BLE001 - a bad zip fails alone
            self._fail(result, path, one_line(exc))
            return
        for source in inputs:  # each member of a zip is its own batch, and fails alone
            try:
                self._run_input(ctx, source, result)
            except (LoadError, SQLAlchemyError):
                raise  # the database: the file was rolled back and the run fails
            except Exception as exc:  # noqa: BLE001 - one bad file must never stop a run
                self._fail(result, input_path(source), one_line(exc))

    def _run_input(self, ctx: RunContext, source: CsvInput, result: SourceResult) -> None:
        started = time.perf_counter()
        sha256 = new_content(ctx, source, result, self.roots)
        if sha256 is None:
            return
        # The loading machinery (pandas, parsers, writers) is imported by the first file
        # that has something to load: a run with nothing new never pays for it.
        from etl.sources.csv_file_load import LoadOptions, load_file

        options = LoadOptions(self.default_symbol, self.on_chunk, self.roots)
        load_file(ctx, source, result, options, sha256=sha256, started=started)

    @staticmethod
    def _fail(result: SourceResult, path: Path, error: str) -> None:
        log.warning("csv file failed", extra={"file": shown(path), "error": error})
        result.errors.append(error)
        result.details.append({"file": shown(path), "status": "failed", "error": error})
