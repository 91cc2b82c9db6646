"""Which paths may be read at all, and how they are opened.

Only regular files are read: a directory named `x.csv`, a FIFO (whose open or read blocks
forever) or a device (`/dev/zero` never ends) fails that file with a reason instead of
raising out of the run or hanging it. A symlink is followed only when its target is a
regular file inside one of the given roots. Files are opened with `O_NONBLOCK` and checked
again on the open descriptor, so a path swapped for a FIFO after the check cannot block.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from etl.core.errors import EtlError, FileExtractError

MAX_PATH_CHARS = 1024  # `source_batch.ref` and `rejected_row.file` are String(1024)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def resolved(path: Path) -> Path:
    """`path` with symlinks and `..` resolved; a symlink loop resolves to itself (it then
    fails alone when it is checked, instead of raising here)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return path.absolute()


def is_below(path: Path, roots: Sequence[Path]) -> bool:
    """Whether `path` (resolved, symlinks followed) is one of `roots` or inside one."""
    target = resolved(path)
    return any(target == root or target.is_relative_to(root) for root in roots)


def shown(path: Path | str) -> str:
    """A path as text any database and JSON can hold: a name that is not UTF-8 decodes to
    lone surrogates, which PostgreSQL refuses (in `text` and in `json`)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def check_regular(path: Path, roots: Sequence[Path]) -> None:
    """Raise `FileExtractError` unless `path` is a regular file we may read.

    `roots` are resolved folders (or files) the caller named; a symlink must point inside.
    """
    if shown(path) != str(path):
        raise FileExtractError(Path(shown(path)), "file name is not valid UTF-8")
    if len(str(path)) > MAX_PATH_CHARS:
        raise FileExtractError(path, f"path longer than {MAX_PATH_CHARS} characters")
    try:
        link = os.lstat(path)
    except FileNotFoundError:
        raise FileExtractError(path, "no such file or folder") from None
    if stat.S_ISLNK(link.st_mode):
        try:
            target = os.stat(path)
        except FileNotFoundError:
            raise FileExtractError(path, "broken symlink") from None
        if not is_below(path, roots):
            raise FileExtractError(path, "symlink to a file outside the given folders")
        mode = target.st_mode
    else:
        mode = link.st_mode
    if not stat.S_ISREG(mode):
        raise FileExtractError(path, f"not a regular file ({kind_of(mode)})")


def open_regular(path: Path) -> io.BufferedReader:
    """Open for reading without ever blocking on a FIFO; refuse anything not regular."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileExtractError(path, f"not a regular file ({kind_of(mode)})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def one_line(exc: BaseException) -> str:
    """A per-file failure as one line for the run details (OSError without its errno)."""
    if isinstance(exc, OSError) and exc.strerror:
        name = exc.filename if exc.filename is not None else ""
        text = f"{name}: cannot read: {exc.strerror}" if name else exc.strerror
    elif isinstance(exc, EtlError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    printable = "".join(ch if ch.isprintable() else " " for ch in shown(text))
    return " ".join(printable.split())[:2000]
