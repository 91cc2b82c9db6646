"""Validation of price points (a price with no bar around it, such as CoinGecko's daily
snapshots): no open, high or low exists to check, so a row needs an asset, a readable
time in range and a positive price; market cap and volume may be absent, never negative.

Rules, first failing wins (`reason` is `code: detail`): `missing_symbol`, `parse_error`,
`missing_timestamp`, `missing_price`, `timestamp_out_of_range`, `non_positive_price`,
`negative_volume`; `duplicate_key` (the same asset and day earlier in the file) is
`SeenKeys`' as for candles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from etl.transform.validate import EARLIEST_MS, Validated


def validate_price_points(
    frame: pd.DataFrame, *, now_ms: int, future_tolerance_ms: int
) -> Validated:
    """Split rows (`open_time` is the day, `close` the price) into loadable and rejected."""
    time = frame["open_time"].to_numpy(np.float64)
    price = frame["close"].to_numpy(np.float64)
    observed = frame["observed_at"].to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        negative = (frame["volume_quote"] < 0) | (frame["market_cap"] < 0)
        rules = [
            ("missing_symbol", frame["asset_id"].isna().to_numpy(), "no recognisable symbol"),
            ("parse_error", frame["parse_error"].notna().to_numpy(), None),
            ("missing_timestamp", np.isnan(time), "no timestamp"),
            ("missing_price", np.isnan(price), "price"),
            ("timestamp_out_of_range", time < EARLIEST_MS, "before 2009-01-03"),
            ("timestamp_out_of_range", observed > now_ms + future_tolerance_ms, "in the future"),
            ("non_positive_price", price <= 0, "price <= 0"),
            ("negative_volume", negative.to_numpy(), "volume or market cap < 0"),
        ]
    reason = pd.Series(None, index=frame.index, dtype=object)
    code = pd.Series(None, index=frame.index, dtype=object)
    for name, mask, detail in rules:
        todo = pd.Series(mask, index=frame.index) & reason.isna()
        if todo.any():
            text = frame.loc[todo, "parse_error"].astype(str) if detail is None else detail
            reason[todo] = name + ": " + text
            code[todo] = name
    bad = reason.notna()
    rejected = frame.loc[bad, ["line", "asset_id"]].assign(reason=reason[bad], code=code[bad])
    valid = frame.loc[~bad].drop(columns=["parse_error"])
    valid["open_time"] = valid["open_time"].astype("int64")
    valid["asset_id"] = valid["asset_id"].astype("int64")
    return Validated(valid, rejected[["line", "reason", "code", "asset_id"]])
