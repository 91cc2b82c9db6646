"""Hand-written broken files, one bad row per validation rule: each is quarantined with
its line, raw text and reason, and nothing else is lost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from etl.core.settings import Settings
from etl.transform.validate import SeenKeys, validate_candles
from tests.helpers import rows, run_csv

HEADER = "symbol,timestamp,open,high,low,close,volume"
GOOD = "BTC,2024-01-01T{h:02d}:00:00Z,100,110,90,105,1.5"
BROKEN = {
    # line text: expected reason
    "BTC,2024-01-01T05:00:00Z,abc,110,90,105,1": "parse_error: non-numeric open: abc",
    "BTC,2024-01-01T06:00:00Z,100,110,90,,1": "missing_ohlc: close",
    "BTC,2024-01-01T07:00:00Z,0,110,90,105,1": "non_positive_price: open <= 0",
    "BTC,2024-01-01T08:00:00Z,100,110,-90,105,1": "non_positive_price: low <= 0",
    "BTC,2024-01-01T09:00:00Z,100,104,90,105,1": "high_below_open_close: high < max(open, close)",
    "BTC,2024-01-01T10:00:00Z,100,110,101,105,1": "low_above_open_close: low > min(open, close)",
    "BTC,2024-01-01T11:00:00Z,100,110,90,105,-3": "negative_volume: volume < 0",
    "BTC,not a date,100,110,90,105,1": "parse_error: unparseable timestamp: not a date",
    "BTC,2099-01-01T00:00:00Z,100,110,90,105,1": "timestamp_out_of_range: in the future",
    "BTC,2001-01-01T00:00:00Z,100,110,90,105,1": "timestamp_out_of_range: before 2009-01-03",
    ",2024-01-01T12:00:00Z,100,110,90,105,1": "missing_symbol: no recognisable symbol",
    "BTC,2024-01-01T01:00:00Z,100,110,90,106,1": (
        "duplicate_key: same asset and open time as an earlier row in this file"
    ),
    "BTC,2024-01-01T13:00:00Z,100,110,90,105,1,9": "malformed_line: expected 7 fields, saw 8",
}


def write_broken(path: Path) -> dict[int, tuple[str, str]]:
    good = [GOOD.format(h=h) for h in range(5)]
    lines = [HEADER, *good, *BROKEN]
    path.write_text("\n".join(lines) + "\n")
    return {i + 1: (text, BROKEN[text]) for i, text in enumerate(lines) if text in BROKEN}


def test_every_rule_quarantines_its_row_with_reason_and_raw_text(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    expected = write_broken(path)
    summary = run_csv(settings, engine, [path])
    counts = summary.sources["csv"]
    assert summary.status == "success"
    assert (counts["read"], counts["inserted"], counts["rejected"]) == (
        5 + len(BROKEN),
        5,
        len(BROKEN),
    )
    stored = rows(engine, "SELECT line, raw, reason, file FROM rejected_row ORDER BY line")
    assert {line: (raw, reason) for line, raw, reason, _ in stored} == expected
    assert {file for *_, file in stored} == {str(path)}
    # the duplicate kept the first occurrence (close 105, not 106)
    assert rows(engine, "SELECT close FROM candle WHERE open_time = 1704070800000") == [(105.0,)]


def test_zero_volume_flat_bars_are_valid() -> None:
    frame = pd.DataFrame(
        {
            "line": [2],
            "asset_id": [1.0],
            "symbol": ["BTC"],
            "name": [None],
            "open_time": [1.7e12],
            "open": [5.0],
            "high": [5.0],
            "low": [5.0],
            "close": [5.0],
            "volume": [0.0],
            "volume_quote": [0.0],
            "parse_error": [None],
        }
    )
    checked = validate_candles(frame, now_ms=1_800_000_000_000, future_tolerance_ms=0)
    assert len(checked.valid) == 1 and checked.rejected.empty


def test_duplicates_are_caught_across_chunks() -> None:
    seen = SeenKeys()
    first = pd.DataFrame({"line": [2, 3], "asset_id": [1, 2], "open_time": [10, 10]})
    second = pd.DataFrame({"line": [4, 5, 6], "asset_id": [1, 1, 2], "open_time": [10, 20, 20]})
    kept, dupes = seen.split(first)
    assert kept["line"].tolist() == [2, 3] and dupes.empty
    kept, dupes = seen.split(second)
    assert kept["line"].tolist() == [5, 6]
    assert dupes["line"].tolist() == [4]
