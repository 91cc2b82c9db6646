"""CSV files inside a `.zip`, read as downloaded (Binance and Kraken ship zips): each member
is streamed out of the archive on every pass, never unpacked to disk.

A zip is checked whole before any member is read, and any problem fails that zip alone
with its reason: not a zip, more than `CSV_ZIP_MAX_MEMBERS` files, a member that is not a
`.csv` (a `readme.txt` too: we do not guess what else an archive holds), a member path that
is absolute or climbs with `..`, an encrypted member, a member whose declared size is over
`CSV_ZIP_MAX_MEMBER_BYTES`, or one that inflates more than `MAX_RATIO` times (a zip bomb).
The declared size also bounds the stream: `zipfile` stops there and checks the CRC, so a
member that lies about its size fails with a CRC error instead of inflating on.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from etl.core.errors import FileExtractError
from etl.extract.csv_guard import open_regular

MAX_RATIO = 200  # real CSVs deflate 5-20x; deflate itself cannot go past ~1030x
RATIO_FLOOR_BYTES = 1 << 20  # tiny members may compress oddly: the ratio applies above this
DEFAULT_MAX_MEMBERS = 10_000  # Kraken's complete OHLCVT zip holds a few thousand CSVs
DEFAULT_MAX_MEMBER_BYTES = 8 << 30
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class ZipLimits:
    max_members: int = DEFAULT_MAX_MEMBERS
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES


@dataclass(frozen=True)
class ZipMember:
    """One CSV inside an archive; `path` (`archive.zip/member.csv`) names it, never opened."""

    archive: Path
    member: str

    @property
    def path(self) -> Path:
        return self.archive / self.member


CsvInput = Path | ZipMember


def input_path(source: CsvInput) -> Path:
    """What a file or member is called (in details, the quarantine, name conventions)."""
    return source.path if isinstance(source, ZipMember) else source


def is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


def open_input(source: CsvInput) -> io.BufferedReader | _MemberStream:
    """A binary stream of a regular file, or of a member inflated as it is read."""
    if isinstance(source, Path):
        return open_regular(source)
    handle = open_regular(source.archive)
    try:
        archive = zipfile.ZipFile(handle)
        stream = archive.open(source.member)
    except BaseException:
        handle.close()
        raise
    return _MemberStream(handle, archive, stream, str(source.path))


class _MemberStream(io.BufferedIOBase):
    """A member's stream that closes its archive and file with it."""

    def __init__(
        self, handle: io.BufferedReader, archive: zipfile.ZipFile, stream: IO[bytes], name: str
    ) -> None:
        super().__init__()
        self._handle, self._archive, self._stream = handle, archive, stream
        self.name = name

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._stream.read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
            self._archive.close()
            self._handle.close()
        super().close()


def zip_members(archive: Path, limits: ZipLimits) -> list[ZipMember]:
    """The archive's CSV members, in stored order, after checking the whole archive."""
    with open_regular(archive) as handle:
        try:
            infos = zipfile.ZipFile(handle).infolist()
        except zipfile.BadZipFile as exc:
            raise FileExtractError(archive, f"not a readable zip archive: {exc}") from None
    files = [info for info in infos if not info.is_dir()]
    if not files:
        raise FileExtractError(archive, "zip archive holds no file")
    if len(files) > limits.max_members:
        raise FileExtractError(
            archive, f"zip archive holds {len(files)} files, more than CSV_ZIP_MAX_MEMBERS"
        )
    for info in files:
        _check_member(archive, info, limits)
    return [ZipMember(archive, info.filename) for info in files]


def _check_member(archive: Path, info: zipfile.ZipInfo, limits: ZipLimits) -> None:
    name = info.filename
    shown = "".join(ch if ch.isprintable() else "?" for ch in name[:200])
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise FileExtractError(archive, f"zip member path {shown!r} leaves the archive")
    if not name.lower().endswith(".csv"):
        raise FileExtractError(archive, f"zip member {shown!r} is not a .csv file")
    if info.flag_bits & 0x1:
        raise FileExtractError(archive, f"zip member {shown!r} is encrypted")
    if info.compress_type not in _METHODS:
        raise FileExtractError(archive, f"zip member {shown!r}: unsupported compression")
    if info.file_size > limits.max_member_bytes:
        raise FileExtractError(
            archive,
            f"zip member {shown!r} inflates to {info.file_size} bytes, "
            "more than CSV_ZIP_MAX_MEMBER_BYTES",
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_FLOOR_BYTES and ratio > MAX_RATIO:
        raise FileExtractError(
            archive,
            f"zip member {shown!r} inflates {ratio:.0f} times (over {MAX_RATIO}): a zip bomb?",
        )
