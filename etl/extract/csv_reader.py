"""Chunked reading of one CSV file into canonical frames, keeping physical line numbers.

Memory stays flat in file size: pandas reads `chunk_rows` rows at a time. Every row keeps
the 1-based line number it has in the file, so a rejected row can be quarantined with its
exact raw text (fetched by `raw_lines` in a second streaming pass). Lines with the wrong
number of fields are reported, not skipped silently.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.io.parsers import TextFileReader

from etl.core.errors import UnrecognisedFormatError
from etl.extract.csv_detect import FORMATS, detect
from etl.extract.csv_formats import CANONICAL_COLUMNS, CsvFormat, Layout
from etl.extract.csv_scan import DEFAULT_MAX_LINE_BYTES
from etl.extract.zip_members import CsvInput, input_path, open_input

SNIFF_LINES = 5
RAW_MAX_CHARS = 4096  # the quarantined text of one line
# Symbols and names repeat on every row: categories parse and map to assets per distinct value.
_TEXT_DTYPE: dict[str, str | type] = {"symbol": "category", "name": "category"}
Lines = npt.NDArray[np.int64]
_SKIPPED_LINE = re.compile(r"Skipping line (\d+): (expected \d+ fields, saw \d+)")


@dataclass(frozen=True)
class Chunk:
    frame: pd.DataFrame  # canonical columns plus `line`
    malformed: list[tuple[int, str]]  # (line, reason) of lines pandas could not split
    blank_lines: int


def text_handle(path: CsvInput) -> io.TextIOWrapper:
    """The file as text the way every reader here sees it (BOM dropped, bad bytes replaced,
    `\r`, `\n` and `\r\n` all end a line, as pandas' parser counts them)."""
    return io.TextIOWrapper(open_input(path), encoding="utf-8-sig", errors="replace", newline="")


def sniff(path: CsvInput, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> tuple[CsvFormat, Layout]:
    """Recognise the layout from the first lines (the header, banners included); a line
    longer than the limit ends the sniffed text there."""
    if csv.field_size_limit() <= max_line_bytes + 1:
        # a 200 KB field is a bad value, not a crash; no field is longer than its line
        csv.field_size_limit(max_line_bytes + 2)
    lines: list[str] = []
    with text_handle(path) as handle:
        while len(lines) < SNIFF_LINES:
            line = handle.readline(max_line_bytes + 1)
            if not line:
                break
            lines.append(line)
            if len(line) > max_line_bytes:
                break
    found = detect(lines)
    if found is None:
        first = next(csv.reader(lines), [])
        raise UnrecognisedFormatError(input_path(path), first, [f.signature for f in FORMATS])
    return found


def iter_chunks(
    path: CsvInput,
    fmt: CsvFormat,
    layout: Layout,
    chunk_rows: int,
    unreadable: Sequence[tuple[int, str]] = (),
) -> Iterator[Chunk]:
    """Canonical frames, `chunk_rows` rows each; `unreadable` lines (line, reason; from
    `scan_file`) are skipped unparsed and reported as malformed in the chunk they fall in."""
    first_line = layout.header_line + 2
    pending = sorted((line, reason) for line, reason in unreadable if line >= first_line)
    skipped: list[int] = [line for line, _ in pending]
    skiprows: int | list[int] = layout.header_line + 1
    if skipped:
        skiprows = [*range(layout.header_line + 1), *(line - 1 for line in skipped)]
    position = 0
    with (
        open_input(path) as handle,
        _reader(cast(BinaryIO, handle), fmt, layout, chunk_rows, skiprows) as reader,
    ):
        for chunk, bad in _chunks_with_warnings(reader):
            skipped.extend(line for line, _ in bad)
            rows = np.arange(position, position + len(chunk))
            position += len(chunk)
            chunk.index = pd.Index(
                first_line + rows + _lines_skipped_before(skipped, rows + first_line)
            )
            last = int(chunk.index.max()) if len(chunk) else first_line
            mine = [p for p in pending if p[0] <= last]
            pending = pending[len(mine) :]
            blank = chunk.isna().all(axis=1)
            frame = fmt.normalise(chunk[~blank], layout)
            frame["line"] = frame.index.to_numpy()
            malformed = sorted(bad + mine)
            yield Chunk(frame.reset_index(drop=True), malformed, int(blank.sum()))
    if pending:
        yield Chunk(pd.DataFrame(columns=[*CANONICAL_COLUMNS, "line"]), pending, 0)


def _reader(
    handle: BinaryIO,
    fmt: CsvFormat,
    layout: Layout,
    chunk_rows: int,
    skiprows: int | list[int],
) -> TextFileReader:
    return pd.read_csv(
        handle,
        header=None,
        names=layout.columns,
        skiprows=skiprows,
        dtype={c: _TEXT_DTYPE.get(c, str) for c in fmt.string_columns if c in layout.columns},
        chunksize=chunk_rows,
        skip_blank_lines=False,
        sep=layout.delimiter,
        encoding="utf-8-sig",
        index_col=False,
        on_bad_lines="warn",
        # The exact double of each decimal text: pandas' default converter is off by one
        # unit in the last place for some 17-digit values (Kaggle's float32-born prices),
        # so a value exported with repr would not load back as itself. Costs ~2x parse time
        # on float columns.
        float_precision="round_trip",
    )


def _chunks_with_warnings(
    reader: TextFileReader,
) -> Iterator[tuple[pd.DataFrame, list[tuple[int, str]]]]:
    """Each chunk with the lines pandas could not split (it only warns about them)."""
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                chunk = next(reader)
            except (StopIteration, pd.errors.EmptyDataError):
                return
        bad = [
            (int(line), reason)
            for w in caught
            for line, reason in _SKIPPED_LINE.findall(str(w.message))
        ]
        yield chunk, bad


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
    order (chunks arrive in file order) and the whole file is read at most once. A line is
    kept up to `RAW_MAX_CHARS` (a 10 MB line is never held in memory whole)."""

    def __init__(self, path: CsvInput, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._handle = text_handle(path)
        self._line = 0
        self._limit = max(max_line_bytes, RAW_MAX_CHARS)

    def _readline(self) -> str:
        text = self._handle.readline(self._limit)
        rest = text
        while len(rest) == self._limit and not rest.endswith(("\n", "\r")):
            rest = self._handle.readline(self._limit)  # drop the rest of an overlong line
        if len(text) > RAW_MAX_CHARS:
            return text[:RAW_MAX_CHARS] + "..."
        return text

    def take(self, wanted: Iterable[int]) -> dict[int, str]:
        targets = sorted(set(wanted))
        found: dict[int, str] = {}
        for target in targets:
            if target <= self._line:
                raise ValueError(f"line {target} was already passed (at {self._line})")
            text = ""
            while self._line < target:
                text = self._readline()
                self._line += 1
                if not text:
                    break
            found[target] = text.rstrip("\r\n")
        return found

    def close(self) -> None:
        self._handle.close()


def raw_lines(path: CsvInput, wanted: Iterable[int]) -> dict[int, str]:
    """The exact text of the given 1-based lines, in one streaming pass."""
    reader = RawLines(path)
    try:
        return reader.take(wanted)
    finally:
        reader.close()
