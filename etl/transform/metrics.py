"""Metrics of one candle series, as pure functions (frame in, numbers out, no I/O).

The input is one series (one asset, source and interval) sorted by `open_time` (epoch ms),
with `open, high, low, close, volume, volume_quote`. Windows end at the newest bar's close
time T = last open + interval; a window of length D holds the bars with open_time >= T - D
(for daily bars the 24h window is the last bar, the 7d window the last 7 bars).

Formulas:
- change over D (1h, 24h, 7d, 30d): last close - close of the bar that opened exactly D
  before the last bar; percent = change / that close * 100. None when D is shorter than
  the interval or that bar is missing.
- high/low/volume 24h: max high, min low, sum of base (and quote) volume in the 24h window.
- volatility D (7d, 30d): sample standard deviation (ddof=1) of log returns
  ln(close_t / close_t-1) whose end bar lies in the window, annualised by
  sqrt(bars per year) with a 365-day year (crypto trades every day): sqrt(365) for daily
  bars, sqrt(8760) for hourly. Needs at least 2 returns.
- SMA N (7, 30 bars): mean of the last N closes. EMA N: exponential average with
  alpha = 2 / (N + 1), seeded with the first close given (pandas `ewm(adjust=False)`);
  callers pass at least `HISTORY_BARS` (300) bars, after which the seed's weight is
  (1 - alpha)^300 < 1e-8 for N <= 30, so the value does not depend on where history starts.
- VWAP D (24h, 30d): sum(typical * base volume) / sum(base volume), typical = (H+L+C)/3.
  When only the quote volume is known (CoinMarketCap, Yahoo), base volume = quote / typical.
  None when the window traded nothing.
- max drawdown 30d: min over the window of close / running max close - 1 (0 or negative).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from etl.core.intervals import DAY_MS, HOUR_MS, interval_ms

HISTORY_BARS = 300  # bars loaded before the 30d window so the EMAs have converged
CHANGE_WINDOWS = {"1h": HOUR_MS, "24h": DAY_MS, "7d": 7 * DAY_MS, "30d": 30 * DAY_MS}
YEAR_MS = 365 * DAY_MS


def _window(series: pd.DataFrame, length_ms: int, step_ms: int) -> pd.DataFrame:
    end = int(series["open_time"].iloc[-1]) + step_ms
    return series[series["open_time"] >= end - length_ms]


def price_change(series: pd.DataFrame, length_ms: int, step_ms: int) -> tuple[float, float] | None:
    if length_ms < step_ms or series.empty:
        return None
    last = series.iloc[-1]
    reference = series[series["open_time"] == int(last["open_time"]) - length_ms]
    if reference.empty:
        return None
    before = float(reference["close"].iloc[0])
    change = float(last["close"]) - before
    return change, change / before * 100.0


def log_returns(closes: pd.Series) -> pd.Series:
    values = closes.to_numpy(dtype="float64")
    return pd.Series(np.log(values[1:] / values[:-1]), index=closes.index[1:])


def annualised_volatility(series: pd.DataFrame, length_ms: int, step_ms: int) -> float | None:
    returns = log_returns(series["close"])
    in_window = _window(series, length_ms, step_ms).index
    returns = returns[returns.index.isin(in_window)]
    if len(returns) < 2:
        return None
    return float(returns.std(ddof=1) * math.sqrt(YEAR_MS / step_ms))


def simple_moving_average(closes: pd.Series, periods: int) -> float | None:
    return float(closes.iloc[-periods:].mean()) if len(closes) >= periods else None


def exponential_moving_average(closes: pd.Series, periods: int) -> float | None:
    if len(closes) < periods:
        return None
    return float(closes.ewm(span=periods, adjust=False).mean().iloc[-1])


def vwap(window: pd.DataFrame) -> float | None:
    typical = (window["high"] + window["low"] + window["close"]) / 3.0
    base = window["volume"].where(window["volume"].notna(), window["volume_quote"] / typical)
    total = float(base.sum(min_count=1)) if base.notna().any() else 0.0
    if not total or math.isnan(total):
        return None
    return float((typical * base).sum() / total)


def max_drawdown(closes: pd.Series) -> float | None:
    if closes.empty:
        return None
    return float((closes / closes.cummax() - 1.0).min())


def _sum_or_none(values: pd.Series) -> float | None:
    return float(values.sum()) if values.notna().any() else None


def series_metrics(series: pd.DataFrame, interval: str) -> dict[str, Any]:
    """Every metric of the series as of its newest bar (keys match `etl.db.models.Metric`)."""
    step = interval_ms(interval)
    closes = series["close"]
    day = _window(series, DAY_MS, step)
    month = _window(series, 30 * DAY_MS, step)
    result: dict[str, Any] = {
        "as_of": int(series["open_time"].iloc[-1]),
        "last_price": float(closes.iloc[-1]),
        "high_24h": float(day["high"].max()),
        "low_24h": float(day["low"].min()),
        "volume_24h": _sum_or_none(day["volume"]),
        "volume_quote_24h": _sum_or_none(day["volume_quote"]),
        "volatility_7d": annualised_volatility(series, 7 * DAY_MS, step),
        "volatility_30d": annualised_volatility(series, 30 * DAY_MS, step),
        "sma_7": simple_moving_average(closes, 7),
        "sma_30": simple_moving_average(closes, 30),
        "ema_7": exponential_moving_average(closes, 7),
        "ema_30": exponential_moving_average(closes, 30),
        "vwap_24h": vwap(day),
        "vwap_30d": vwap(month),
        "max_drawdown_30d": max_drawdown(month["close"]),
    }
    for label, length in CHANGE_WINDOWS.items():
        change = price_change(series, length, step)
        result[f"change_{label}"] = change[0] if change else None
        result[f"change_pct_{label}"] = change[1] if change else None
    return result
