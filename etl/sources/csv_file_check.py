"""One file's first step: is its content new? An unchanged file costs one hashing pass and
one query, and nothing of the loading machinery (pandas, the parsers, the writers:
`etl.sources.csv_file_load`) is imported for it (docs/decisions.md, "Start-up")."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from etl.extract.csv_guard import check_regular
from etl.extract.csv_scan import file_sha256
from etl.extract.zip_members import CsvInput, input_path
from etl.read.batches import batch_already_loaded
from etl.sources.base import RunContext, SourceResult

log = logging.getLogger(__name__)


def new_content(
    ctx: RunContext, source: CsvInput, result: SourceResult, roots: Sequence[Path]
) -> str | None:
    """The file's SHA-256 when it must be loaded; None, with the skip recorded, when that
    content was already loaded."""
    path = input_path(source)
    if isinstance(source, Path):
        check_regular(source, roots)
    sha256 = file_sha256(source)  # an unchanged file costs this one fast pass, nothing more
    with ctx.engine.connect() as conn:
        if batch_already_loaded(conn, sha256):
            record_skipped(result, path, sha256)
            log.info("csv file unchanged, skipped", extra={"file": str(path)})
            return None
    return sha256


def record_skipped(result: SourceResult, path: Path, sha256: str) -> None:
    result.details.append({"file": str(path), "status": "skipped", "sha256": sha256})
