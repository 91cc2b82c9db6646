"""The first streaming pass over a CSV file: its content hash, and the lines that must not
reach the parser. A line longer than `CSV_MAX_LINE_BYTES` would be held in memory whole;
a line with a NUL byte is cut short by pandas' C parser (`1.\\x008` reads as 1.0) and
PostgreSQL cannot store it. Both are quarantined as `malformed_line` instead.

Lines end at `\\r`, `\\n` or `\\r\\n`, as pandas' parser counts them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from etl.core.errors import FileExtractError
from etl.extract.zip_members import CsvInput, input_path, open_input

DEFAULT_MAX_LINE_BYTES = 1 << 20  # CSV_MAX_LINE_BYTES
MAX_UNREADABLE_LINES = 100_000  # beyond this it is not a text file with a few bad lines
LONG_LINE = "line longer than CSV_MAX_LINE_BYTES"
NUL_LINE = "line contains NUL bytes"
_ENDS_OR_NUL = re.compile(rb"\r\n|\r|\n|\x00")


@dataclass(frozen=True)
class FileScan:
    sha256: str
    unreadable: tuple[tuple[int, str], ...]  # (1-based line, reason), never parsed


def file_sha256(path: CsvInput) -> str:
    """The content hash alone (of a zip member: of its inflated bytes, so a zipped and an
    unzipped copy are the same content): all an unchanged file costs on the next run."""
    with open_input(path) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def scan_file(
    path: CsvInput, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, *, sha256: str | None = None
) -> FileScan:
    """Hash (unless `sha256` is already known) and find the lines the parser must skip."""
    digest = hashlib.sha256()
    counter = _LineCounter(max_line_bytes)
    with open_input(path) as handle:
        for block in iter(lambda: handle.read(min(1 << 20, max_line_bytes)), b""):
            if sha256 is None:
                digest.update(block)
            counter.feed(block)
            if len(counter.bad) > MAX_UNREADABLE_LINES:
                raise FileExtractError(
                    input_path(path),
                    f"more than {MAX_UNREADABLE_LINES} lines with NUL bytes or over "
                    "CSV_MAX_LINE_BYTES: not a CSV text file",
                )
    return FileScan(digest.hexdigest() if sha256 is None else sha256, counter.finish())


class _LineCounter:
    """Counts lines block by block. A block is never longer than the limit, so only the
    line a block starts in can be too long."""

    def __init__(self, limit: int) -> None:
        self.limit, self.lines, self.current, self.after_cr = limit, 0, 0, False
        self.bad: dict[int, str] = {}

    def feed(self, block: bytes) -> None:
        if b"\x00" in block:
            self._note_nul_lines(block)
        ends = [i for i in (block.find(b"\n"), block.find(b"\r")) if i >= 0]
        if not ends:
            self.current += len(block)
            self.after_cr = False
            return
        if self.current + min(ends) > self.limit:
            self.bad.setdefault(self.lines + 1, LONG_LINE)
        self.lines += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
        if self.after_cr and block.startswith(b"\n"):
            self.lines -= 1  # the second half of a \r\n split between two blocks
        self.current = len(block) - 1 - max(block.rfind(b"\n"), block.rfind(b"\r"))
        self.after_cr = block.endswith(b"\r")

    def _note_nul_lines(self, block: bytes) -> None:
        line = self.lines + 1
        for match in _ENDS_OR_NUL.finditer(block):
            if match.group() == b"\x00":
                self.bad.setdefault(line, NUL_LINE)
            elif not (match.start() == 0 and self.after_cr and match.group() == b"\n"):
                line += 1

    def finish(self) -> tuple[tuple[int, str], ...]:
        if self.current > self.limit:
            self.bad.setdefault(self.lines + 1, LONG_LINE)
        return tuple(sorted(self.bad.items()))
