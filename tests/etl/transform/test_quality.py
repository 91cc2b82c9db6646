"""Quality reports on real files: gaps, completeness, zero-volume bars, the score."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine

from etl.core.intervals import HOUR_MS
from etl.core.settings import Settings
from etl.transform.quality import find_gaps
from tests.databases import REAL
from tests.helpers import rows, run_csv


def _report(engine: Engine, source: str) -> dict[str, object]:
    columns = (
        "score",
        "completeness",
        "consistency",
        "coverage",
        "freshness_seconds",
        "bar_count",
        "missing_bars",
        "zero_volume_bars",
        "gaps",
        "breakdown",
        "computed_at",
        "last_open",
    )
    found = rows(
        engine, f"SELECT {', '.join(columns)} FROM quality_report WHERE source = :s", s=source
    )  # noqa: S608
    assert len(found) == 1
    report = dict(zip(columns, found[0], strict=True))
    for key in ("gaps", "breakdown"):
        if isinstance(report[key], str):  # SQLite JSON comes back as text via raw SQL
            report[key] = json.loads(str(report[key]))
    return report


def test_yahoo_null_days_are_gaps_and_incomplete_rows(settings: Settings, engine: Engine) -> None:
    run_csv(settings, engine, [REAL / "BTC-USD.csv"])
    report = _report(engine, "yahoo")
    assert report["gaps"] == [
        {
            "start": "2020-04-17T00:00:00+00:00",
            "end": "2020-04-18T00:00:00+00:00",
            "missing_bars": 1,
        },
        {
            "start": "2020-10-09T00:00:00+00:00",
            "end": "2020-10-10T00:00:00+00:00",
            "missing_bars": 1,
        },
        {
            "start": "2020-10-12T00:00:00+00:00",
            "end": "2020-10-14T00:00:00+00:00",
            "missing_bars": 2,
        },
    ]
    assert (report["bar_count"], report["missing_bars"]) == (2422, 4)
    # 4 rows with 6 null required cells each (time is present: 5 of 6 cells missing)
    assert report["completeness"] == pytest.approx(1 - 4 * 5 / (2426 * 6))
    assert report["consistency"] == 1.0
    assert report["coverage"] == pytest.approx(2422 / 2426)
    age = (report["computed_at"] - (report["last_open"] + 86_400_000)) / 1000  # type: ignore[operator]
    assert report["freshness_seconds"] == pytest.approx(age)
    freshness = min(1.0, 2 * 86_400 / age)
    expected = 30 * (1 - 20 / 14556) + 30 + 20 * 2422 / 2426 + 10 * freshness + 10
    assert report["score"] == pytest.approx(expected, abs=0.01)


def test_gemini_flat_zero_volume_days_are_counted(settings: Settings, engine: Engine) -> None:
    run_csv(settings, engine, [REAL / "Gemini_BTCUSD_d.csv"])
    report = _report(engine, "gemini")
    assert report["zero_volume_bars"] == 23  # SOURCES.md: 23 flat zero-volume days
    assert report["consistency"] == pytest.approx(1 - 1 / 2394)  # the 0.0-priced first row
    assert report["breakdown"]["rejected"] == {"non_positive_price": 1}  # type: ignore[index]


def test_gap_lengths_round_up_for_misaligned_bars() -> None:
    edges = [(0, HOUR_MS), (HOUR_MS, 3 * HOUR_MS), (3 * HOUR_MS, int(4.5 * HOUR_MS))]
    assert [g["missing_bars"] for g in find_gaps(edges, HOUR_MS)] == [1, 1]
