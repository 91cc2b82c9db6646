"""Metrics against hand computations, and cross-checked against an independent NumPy
computation on the real coin_Bitcoin.csv after a full pipeline run."""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from etl.core.intervals import DAY_MS, HOUR_MS
from etl.core.settings import Settings
from etl.transform.metrics import series_metrics
from tests.databases import REAL
from tests.helpers import rows, run_csv

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z


def series(closes: list[float], step: int, volumes: list[float] | None = None) -> pd.DataFrame:
    n = len(closes)
    return pd.DataFrame(
        {
            "open_time": [T0 + i * step for i in range(n)],
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": volumes if volumes is not None else [1.0] * n,
            "volume_quote": [np.nan] * n,
        }
    )


def test_hourly_series_by_hand() -> None:
    m = series_metrics(series([100, 110, 99, 120, 108], HOUR_MS, [1, 2, 3, 4, 5]), "1h")
    assert m["last_price"] == 108
    assert m["change_1h"] == -12 and m["change_pct_1h"] == pytest.approx(-10.0)
    assert m["change_24h"] is None and m["change_7d"] is None  # no bar that far back
    returns = [math.log(110 / 100), math.log(99 / 110), math.log(120 / 99), math.log(108 / 120)]
    mean = sum(returns) / 4
    sample_sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / 3)
    assert m["volatility_7d"] == pytest.approx(sample_sd * math.sqrt(365 * 24))
    assert m["vwap_24h"] == pytest.approx((100 + 220 + 297 + 480 + 540) / 15)
    assert m["max_drawdown_30d"] == pytest.approx(-0.1)
    assert m["high_24h"] == 120 and m["low_24h"] == 99 and m["volume_24h"] == 15
    assert m["sma_7"] is None and m["ema_7"] is None


def test_daily_moving_averages_by_hand() -> None:
    m = series_metrics(series([1, 2, 3, 4, 5, 6, 7, 8], DAY_MS), "1d")
    assert m["sma_7"] == 5
    assert m["ema_7"] == 5.40045166015625  # e_n = 0.25 x_n + 0.75 e_n-1, e_1 = 1
    assert m["change_24h"] == 1 and m["change_pct_24h"] == pytest.approx(100 / 7)
    assert m["change_7d"] == 7 and m["change_1h"] is None  # 1h is shorter than a bar
    assert m["high_24h"] == 8 and m["volume_24h"] == 1  # the 24h window is the last bar
    assert m["sma_30"] is None and m["volatility_30d"] == m["volatility_7d"] is not None


def test_vwap_from_quote_volume_only() -> None:
    frame = series([10, 20], HOUR_MS)
    frame["volume"] = np.nan
    frame["volume_quote"] = [100.0, 100.0]  # 10 and 5 base units
    assert series_metrics(frame, "1h")["vwap_24h"] == pytest.approx(200 / 15)


def test_metrics_match_numpy_on_real_bitcoin(settings: Settings, engine: Engine) -> None:
    run_csv(settings, engine, [REAL / "coin_Bitcoin.csv"])
    with (REAL / "coin_Bitcoin.csv").open() as handle:
        data = list(csv.DictReader(handle))
    c = np.array([float(r["Close"]) for r in data])
    h = np.array([float(r["High"]) for r in data])
    lo = np.array([float(r["Low"]) for r in data])
    q = np.array([float(r["Volume"]) for r in data])
    columns = (
        "last_price, change_24h, change_pct_24h, change_7d, change_30d, change_pct_30d, "
        "volatility_7d, volatility_30d, sma_7, sma_30, ema_7, ema_30, vwap_24h, vwap_30d, "
        "max_drawdown_30d, high_24h, low_24h, volume_quote_24h, volume_24h, change_1h, as_of"
    )
    stored = rows(engine, f"SELECT {columns} FROM metric")  # noqa: S608
    assert len(stored) == 1
    got = dict(zip([c.strip() for c in columns.split(",")], stored[0], strict=True))
    r = np.diff(np.log(c))
    ema = {7: c[0], 30: c[0]}
    for value in c[1:]:
        for n in ema:
            ema[n] += 2 / (n + 1) * (value - ema[n])
    tp = (h + lo + c) / 3
    last30 = c[-30:]
    expected = {
        "last_price": c[-1],
        "change_24h": c[-1] - c[-2],
        "change_pct_24h": (c[-1] / c[-2] - 1) * 100,
        "change_7d": c[-1] - c[-8],
        "change_30d": c[-1] - c[-31],
        "change_pct_30d": (c[-1] / c[-31] - 1) * 100,
        "volatility_7d": np.std(r[-7:], ddof=1) * np.sqrt(365),
        "volatility_30d": np.std(r[-30:], ddof=1) * np.sqrt(365),
        "sma_7": c[-7:].mean(),
        "sma_30": c[-30:].mean(),
        "ema_7": ema[7],
        "ema_30": ema[30],
        "vwap_24h": tp[-1],
        "vwap_30d": q[-30:].sum() / (q[-30:] / tp[-30:]).sum(),
        "max_drawdown_30d": (last30 / np.maximum.accumulate(last30) - 1).min(),
        "high_24h": h[-1],
        "low_24h": lo[-1],
        "volume_quote_24h": q[-1],
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name
    assert got["volume_24h"] is None and got["change_1h"] is None
    assert got["as_of"] == 1625529600000  # 2021-07-06T00:00Z, the newest bar's open
