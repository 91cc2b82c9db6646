"""Bitstamp's no-trade minutes (`NaN` rows) are quarantined as runs: one record per run of
consecutive minutes, with its first and last minute and how many rows it stands for."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from etl.core.settings import Settings
from tests.databases import REAL
from tests.helpers import file_detail, rows, run_csv, scalar

SLICE = "bitstampUSD_1-min_data_slice.csv"
NAN_ROW = "{t},NaN,NaN,NaN,NaN,NaN,NaN,NaN"


def test_the_real_early_release_has_no_nan_minutes_and_loads_whole(
    settings: Settings, engine: Engine
) -> None:
    summary = run_csv(settings, engine, [REAL / SLICE])
    detail = file_detail(summary, SLICE)
    assert (detail["read"], detail["inserted"], detail["rejected"], detail["quarantined"]) == (
        67824,
        67824,
        0,
        0,
    )
    assert (detail["source"], detail["interval"]) == ("bitstamp", "1m")


def with_nan_minutes(path: Path, nan_lines: set[int], bad_lines: set[int]) -> None:
    """The real slice with chosen lines (1-based, the header is line 1) rewritten as a
    later release writes a no-trade minute, or as an unreadable row."""
    lines = (REAL / SLICE).read_text().splitlines()
    for number in nan_lines | bad_lines:
        stamp = lines[number - 1].split(",")[0]
        lines[number - 1] = NAN_ROW.format(t=stamp)
        if number in bad_lines:
            lines[number - 1] = f"{stamp},abc,NaN,NaN,NaN,NaN,NaN,NaN"
    path.write_text("\n".join(lines) + "\n")


def test_nan_minutes_are_one_record_per_run(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "bitstampUSD_1-min_data_2012-01-01_to_2021-03-31.csv"
    # runs: 2-501 (the first data line on), 900-1100 (across the chunk boundary of 1000
    # rows), one lone minute at 3000, 5000-5999 split by an unreadable row at 5500, and
    # the last 25 lines of the file
    last = 67825
    nan = {*range(2, 502), *range(900, 1101), 3000, *range(5000, 6000), *range(last - 24, last + 1)}
    with_nan_minutes(path, nan - {5500}, {5500})
    summary = run_csv(settings, engine, [path])
    detail = file_detail(summary, path.name)
    nan_rows = len(nan) - 1
    assert detail["read"] == 67824
    assert detail["inserted"] == 67824 - nan_rows - 1
    assert detail["rejected"] == nan_rows + 1  # every row is accounted for
    assert detail["quarantined"] == 7  # six runs and the unreadable row
    stored = rows(engine, "SELECT line, reason, raw FROM rejected_row ORDER BY line")
    spans = [(line, reason.split(" (lines ")[-1].rstrip(")")) for line, reason, _ in stored]
    assert spans == [
        (2, "2-501"),
        (900, "900-1100"),
        (3000, "3000-3000"),
        (5000, "5000-5499"),
        (5500, "parse_error: non-numeric open: abc"),
        (5501, "5501-5999"),
        (last - 24, f"{last - 24}-{last}"),
    ]
    first_reason, first_raw = stored[0][1], stored[0][2]
    # the first minute of the file is 1325317920 (2011-12-31 07:52 UTC)
    assert first_reason == (
        "no_trade_run: 500 rows without trades, from 2011-12-31 07:52:00 to "
        "2011-12-31 16:11:00 UTC (lines 2-501)"
    )
    assert first_raw == "1325317920,NaN,NaN,NaN,NaN,NaN,NaN,NaN"
    assert stored[4][1] == "parse_error: non-numeric open: abc"
    # the quality report still counts every NaN minute as an incomplete row
    completeness = scalar(engine, "SELECT completeness FROM quality_report")
    assert 0.9 < completeness < 1.0


def test_a_nan_run_is_not_joined_across_a_traded_minute(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "bitstamp.csv"
    path.write_text(
        "Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price\n"
        "1514764800,13800,13800,13800,13800,1,13800,13800\n"
        + "".join(NAN_ROW.format(t=1514764800 + 60 * i) + "\n" for i in range(1, 4))
        + "1514765040,13810,13810,13810,13810,1,13810,13810\n"
        + "".join(NAN_ROW.format(t=1514765040 + 60 * i) + "\n" for i in range(1, 3))
        + "1514765220,13820,13820,13820,13820,1,13820,13820\n"
    )
    summary = run_csv(settings, engine, [path])
    detail = file_detail(summary, path.name)
    assert (detail["inserted"], detail["rejected"], detail["quarantined"]) == (3, 5, 2)
    reasons = [r for (r,) in rows(engine, "SELECT reason FROM rejected_row ORDER BY line")]
    assert reasons == [
        "no_trade_run: 3 rows without trades, from 2018-01-01 00:01:00 to 2018-01-01 "
        "00:03:00 UTC (lines 3-5)",
        "no_trade_run: 2 rows without trades, from 2018-01-01 00:05:00 to 2018-01-01 "
        "00:06:00 UTC (lines 7-8)",
    ]


def test_the_quarantine_grows_with_runs_not_with_quiet_minutes(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "bitstampUSD_1-min_data_2018.csv"
    lines = ["Timestamp,Open,High,Low,Close,Volume_(BTC),Volume_(Currency),Weighted_Price"]
    start = 1_514_764_800  # 2018-01-01
    for minute in range(30_000):
        if minute % 10 == 0:
            lines.append(f"{start + minute * 60},13000.5,13010,12990,13005,0.5,6502.5,13005")
        else:
            lines.append(NAN_ROW.format(t=start + minute * 60))
    path.write_text("\n".join(lines) + "\n")
    summary = run_csv(settings, engine, [path])
    counts = summary.sources["csv"]
    assert (counts["read"], counts["inserted"], counts["rejected"]) == (30_000, 3_000, 27_000)
    assert scalar(engine, "SELECT count(*) FROM rejected_row") == 3_000  # one per quiet spell
    last = rows(engine, "SELECT line, reason FROM rejected_row ORDER BY line DESC LIMIT 1")[0]
    assert last[0] == 29_993 and "9 rows without trades" in last[1]
