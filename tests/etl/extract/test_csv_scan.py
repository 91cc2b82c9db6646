"""The scan pass finds overlong and NUL lines with the line numbers pandas counts."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from etl.extract.csv_scan import LONG_LINE, NUL_LINE, scan_file

LIMIT = 4096  # the smallest CSV_MAX_LINE_BYTES: blocks are this long, boundaries are many


def naive(data: bytes, limit: int) -> list[tuple[int, str]]:
    segments = re.split(rb"\r\n|\r|\n", data)
    if segments and segments[-1] == b"":
        segments.pop()
    found = []
    for number, segment in enumerate(segments, start=1):
        if b"\x00" in segment:
            found.append((number, NUL_LINE))
        elif len(segment) > limit:
            found.append((number, LONG_LINE))
    return found


@pytest.mark.parametrize("seed", range(30))
def test_scan_matches_a_line_by_line_reading(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    parts = []
    for _ in range(rng.randint(1, 60)):
        length = rng.choice([0, 1, 10, LIMIT - 1, LIMIT, LIMIT + 1, 3 * LIMIT, 9000])
        body = bytearray(b"a" * length)
        if length and rng.random() < 0.1:
            body[rng.randrange(length)] = 0
        parts.append(bytes(body) + rng.choice([b"\n", b"\r\n", b"\r"]))
    data = b"".join(parts)
    if rng.random() < 0.5:
        data += b"b" * rng.choice([5, LIMIT + 7])  # an unterminated last line
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    expected = naive(data, LIMIT)
    assert list(scan_file(path, LIMIT).unreadable) == expected


def test_a_crlf_split_between_two_blocks_is_one_line_end(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a" * (LIMIT - 1) + b"\r\n" + b"x\x00\n")
    assert scan_file(path, LIMIT).unreadable == ((2, NUL_LINE),)
