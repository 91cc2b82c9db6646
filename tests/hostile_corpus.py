"""A folder of hostile CSV "files" beside one valid file, and what each must end as.

Each entry of `EXPECTED` is the file name, then either `("failed", text in its error)` or
`("quarantined", text in a rejected row's reason)`. Everything is built in a temporary
folder: FIFOs, symlinks and a 10 MB line are not checked in.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.databases import REAL

KAGGLE_HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n"
VALID = "coin_Solana.csv"  # 452 rows of SOLUSD
VALID_ROWS = 452
SECRET = "DATABASE_PASSWORD=hunter2-very-secret"  # noqa: S105 - a fake to not echo


def kaggle_row(number: int, name: str, symbol: str, close: str = "1.8") -> str:
    return f"{number},{name},{symbol},2021-01-0{number} 23:59:59,2,1,1.5,{close},100,1000\n"


EXPECTED: dict[str, tuple[str, str]] = {
    "folder.csv": ("failed", "not a regular file (a directory)"),
    "fifo.csv": ("failed", "not a regular file (a FIFO)"),
    "zero.csv": ("failed", "symlink to a file outside the given folders"),
    "outside.csv": ("failed", "symlink to a file outside the given folders"),
    "broken.csv": ("failed", "broken symlink"),
    "loop.csv": ("failed", "cannot read: Too many levels of symbolic links"),
    "bad\\udcff.csv": ("failed", "file name is not valid UTF-8"),  # as the details show it
    "wide_field.csv": ("quarantined", "bad_name: longer than 64 characters"),
    "long_line.csv": ("quarantined", "malformed_line: line longer than CSV_MAX_LINE_BYTES"),
    "one_long_line.csv": ("failed", "unrecognised CSV format"),
    "garbage.csv": ("failed", "unrecognised CSV format"),
    "nul.csv": ("quarantined", "malformed_line: line contains NUL bytes"),
    "utf16.csv": ("failed", "unrecognised CSV format"),
    "empty.csv": ("failed", "unrecognised CSV format"),
    "formula.csv": ("quarantined", "bad_name: starts with '=' (a spreadsheet formula)"),
    "long_name.csv": ("quarantined", "bad_name: longer than 64 characters"),
}


def build(folder: Path, outside: Path) -> None:
    """The corpus in `folder`; `outside` is a sibling folder the symlinks point into."""
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    shutil.copy(REAL / VALID, folder / VALID)
    (folder / "folder.csv").mkdir()
    os.mkfifo(folder / "fifo.csv")
    os.symlink("/dev/zero", folder / "zero.csv")
    shutil.copy(REAL / "coin_Cardano.csv", outside / "coin_Cardano.csv")
    os.symlink(outside / "coin_Cardano.csv", folder / "outside.csv")
    os.symlink(folder / "gone.csv", folder / "broken.csv")
    os.symlink(folder / "loop.csv", folder / "loop.csv")  # an OSError even for root
    # PostgreSQL cannot store the lone surrogate Python decodes this name to
    (Path(os.fsdecode(os.fsencode(folder) + b"/bad\xff.csv"))).write_bytes(b"x")
    _write_rows(folder)
    (folder / "one_long_line.csv").write_text(f"{SECRET}," + "x" * (10 << 20))
    (folder / "garbage.csv").write_bytes(os.urandom(64 * 1024))
    (folder / "utf16.csv").write_text(KAGGLE_HEADER + kaggle_row(1, "Utf", "UTF"), "utf-16")
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header_only.csv").write_text(KAGGLE_HEADER)


def _write_rows(folder: Path) -> None:
    ok = kaggle_row(1, "Widecoin", "WIDE")
    (folder / "wide_field.csv").write_text(
        KAGGLE_HEADER + kaggle_row(2, "w" * 200_000, "WIDEX") + ok
    )
    (folder / "long_line.csv").write_text(
        KAGGLE_HEADER
        + kaggle_row(1, "Longcoin", "LONG")
        + "9,"
        + "y" * (10 << 20)
        + "\n"
        + kaggle_row(2, "Longcoin", "LONG")
    )
    (folder / "nul.csv").write_bytes(
        (KAGGLE_HEADER + kaggle_row(1, "Nulcoin", "NUL", close="1.\x008")).encode()
    )
    (folder / "formula.csv").write_text(
        KAGGLE_HEADER + kaggle_row(1, '=HYPERLINK("http://evil.example")', "FRM")
    )
    (folder / "long_name.csv").write_text(KAGGLE_HEADER + kaggle_row(1, "n" * 1000, "LNG"))
