"""Chunked reading of one CSV file into canonical frames, keeping physical line numbers.

Memory stays flat in file size: pandas reads `chunk_rows` rows at a time. Every row keeps
the 1-based line number it has in the file, so a rejected row can be quarantined with its
exact raw text (fetched by `raw_lines` in a second streaming pass). Lines with the wrong
number of fields are reported, not skipped silently.
"""

from __future__ import annotations

import csv
import hashlib
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from etl.core.errors import UnrecognisedFormatError
from etl.extract.csv_formats import FORMATS, CsvFormat, Layout, detect

SNIFF_LINES = 5
# Symbols and names repeat on every row: categories parse and map to assets per distinct value.
_TEXT_DTYPE: dict[str, str | type] = {"symbol": "category", "name": "category"}
Lines = npt.NDArray[np.int64]
_SKIPPED_LINE = re.compile(r"Skipping line (\d+): (expected \d+ fields, saw \d+)")


@dataclass(frozen=True)
class Chunk:
    frame: pd.DataFrame  # canonical columns plus `line`
    malformed: list[tuple[int, str]]  # (line, reason) of lines pandas could not split
    blank_lines: int


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff(path: Path) -> tuple[CsvFormat, Layout]:
    """Recognise the layout from the first lines (the header, banners included)."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        rows = list(csv.reader(islice(handle, SNIFF_LINES)))
    found = detect(rows)
    if found is None:
        first = rows[0] if rows else []
        raise UnrecognisedFormatError(path, first, [f.signature for f in FORMATS])
    return found


def iter_chunks(path: Path, fmt: CsvFormat, layout: Layout, chunk_rows: int) -> Iterator[Chunk]:
    first_line = layout.header_line + 2
    reader = pd.read_csv(
        path,
        header=None,
        names=layout.columns,
        skiprows=layout.header_line + 1,
        dtype={c: _TEXT_DTYPE.get(c, str) for c in fmt.string_columns if c in layout.columns},
        chunksize=chunk_rows,
        skip_blank_lines=False,
        encoding="utf-8-sig",
        index_col=False,
        on_bad_lines="warn",
    )
    skipped: list[int] = []
    position = 0
    with reader:
        while True:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    chunk = next(reader)
                except StopIteration:
                    return
            malformed = [
                (int(line), reason)
                for w in caught
                for line, reason in _SKIPPED_LINE.findall(str(w.message))
            ]
            skipped.extend(line for line, _ in malformed)
            rows = np.arange(position, position + len(chunk))
            position += len(chunk)
            chunk.index = pd.Index(
                first_line + rows + _lines_skipped_before(skipped, rows + first_line)
            )
            blank = chunk.isna().all(axis=1)
            frame = fmt.normalise(chunk[~blank], layout)
            frame["line"] = frame.index.to_numpy()
            yield Chunk(frame.reset_index(drop=True), malformed, int(blank.sum()))


def _lines_skipped_before(skipped: list[int], naive_lines: Lines) -> Lines:
    """How many unsplittable lines precede each row (pandas drops them from its count).

    The j-th skipped line s_j (sorted) shifts every row whose naive line is >= s_j - j.
    """
    if not skipped:
        return np.zeros(len(naive_lines), dtype=np.int64)
    ordered = np.sort(np.asarray(skipped, dtype=np.int64))
    return np.searchsorted(ordered - np.arange(len(ordered)), naive_lines, side="right")


class RawLines:
    """The exact text of chosen 1-based lines, read forward only: ask in increasing line
    order (chunks arrive in file order) and the whole file is read at most once."""

    def __init__(self, path: Path) -> None:
        self._handle = path.open(encoding="utf-8-sig", errors="replace", newline="")
        self._line = 0

    def take(self, wanted: Iterable[int]) -> dict[int, str]:
        targets = sorted(set(wanted))
        found: dict[int, str] = {}
        for target in targets:
            if target <= self._line:
                raise ValueError(f"line {target} was already passed (at {self._line})")
            text = ""
            while self._line < target:
                text = self._handle.readline()
                self._line += 1
                if not text:
                    break
            found[target] = text.rstrip("\r\n")
        return found

    def close(self) -> None:
        self._handle.close()


def raw_lines(path: Path, wanted: Iterable[int]) -> dict[int, str]:
    """The exact text of the given 1-based lines, in one streaming pass."""
    reader = RawLines(path)
    try:
        return reader.take(wanted)
    finally:
        reader.close()
