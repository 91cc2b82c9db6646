"""Row validation: every rule gives a stable reason code; the first failing rule wins.

Rules, in order (`reason` is `code: detail`):
- `missing_symbol`: the row names no asset we can read;
- `parse_error`: a value is present but unreadable (non-numeric price, bad date text);
- `missing_timestamp`, `missing_ohlc`: a required value is absent;
- `timestamp_out_of_range`: before 2009-01-03 (the first Bitcoin block) or in the future
  (more than `future_tolerance_ms` past now);
- `non_positive_price`: open, high, low or close <= 0;
- `high_below_open_close`: high < max(open, close);
- `low_above_open_close`: low > min(open, close);
- `negative_volume`: a base or quote volume < 0;
- `duplicate_key` (see `SeenKeys`): the same asset and open time appeared earlier in the
  file; the first occurrence is kept.
Zero-volume bars are valid (they are real no-trade periods); quality counts them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from etl.core.series import OHLC

EARLIEST_MS = 1_230_940_800_000  # 2009-01-03T00:00:00Z
ASSET_SHIFT = 1 << 42  # open_time ms < 2^42 until the year 2109

Keys = npt.NDArray[np.int64]
Rule = tuple[str, npt.NDArray[np.bool_], Callable[[pd.DataFrame], "pd.Series | str"]]


@dataclass(frozen=True)
class Validated:
    valid: pd.DataFrame
    rejected: pd.DataFrame  # columns: line, reason, code, asset_id


def _flagged_names(flags: pd.DataFrame) -> pd.Series:
    """Per row, the comma-joined names of the flagged columns (vectorised)."""
    text = pd.Series("", index=flags.index, dtype=object)
    for column in flags.columns:
        text = text + np.where(flags[column].to_numpy(), column + ",", "")
    return text.str.rstrip(",")


def _rules(frame: pd.DataFrame, now_ms: int, future_tolerance_ms: int) -> list[Rule]:
    """(code, mask, detail) per rule, in precedence order; detail is computed lazily."""
    prices = frame[list(OHLC)]
    o, h, lo, c = (frame[name].to_numpy(np.float64) for name in OHLC)
    time = frame["open_time"].to_numpy(np.float64)
    names = list(OHLC)
    with np.errstate(invalid="ignore"):
        return [
            (
                "missing_symbol",
                frame["asset_id"].isna().to_numpy(),
                lambda _: "no recognisable symbol",
            ),
            (
                "parse_error",
                frame["parse_error"].notna().to_numpy(),
                lambda f: f["parse_error"].astype(str),
            ),
            ("missing_timestamp", np.isnan(time), lambda _: "no timestamp"),
            (
                "missing_ohlc",
                prices.isna().any(axis=1).to_numpy(),
                lambda f: _flagged_names(f[names].isna()),
            ),
            ("timestamp_out_of_range", time < EARLIEST_MS, lambda _: "before 2009-01-03"),
            (
                "timestamp_out_of_range",
                time > now_ms + future_tolerance_ms,
                lambda _: "in the future",
            ),
            (
                "non_positive_price",
                (prices <= 0).any(axis=1).to_numpy(),
                lambda f: _flagged_names(f[names] <= 0).astype(str) + " <= 0",
            ),
            ("high_below_open_close", h < np.maximum(o, c), lambda _: "high < max(open, close)"),
            ("low_above_open_close", lo > np.minimum(o, c), lambda _: "low > min(open, close)"),
            (
                "negative_volume",
                ((frame["volume"] < 0) | (frame["volume_quote"] < 0)).to_numpy(),
                lambda _: "volume < 0",
            ),
        ]


def validate_candles(frame: pd.DataFrame, *, now_ms: int, future_tolerance_ms: int) -> Validated:
    """Split canonical rows into loadable rows and rejected rows with reasons.

    Rules are evaluated as NumPy masks over the whole chunk; reasons are written only for
    the rows that failed (clean chunks pay for the masks alone).
    """
    rules = _rules(frame, now_ms, future_tolerance_ms)
    bad = np.logical_or.reduce([mask for _, mask, _ in rules])
    if bad.any():
        failed = frame.loc[bad, ["line", "asset_id", *OHLC, "parse_error"]].copy()
        failed["reason"] = pd.Series(None, index=failed.index, dtype=object)
        failed["code"] = pd.Series(None, index=failed.index, dtype=object)
        for code, mask, detail in rules:
            todo = pd.Series(mask[bad], index=failed.index) & failed["reason"].isna()
            if todo.any():
                text = detail(failed.loc[todo])
                failed.loc[todo, "reason"] = code + ": " + text
                failed.loc[todo, "code"] = code
        rejected = failed[["line", "reason", "code", "asset_id"]]
    else:
        rejected = pd.DataFrame(columns=["line", "reason", "code", "asset_id"])
    valid = frame.loc[~bad].drop(columns=["parse_error"])
    valid["open_time"] = valid["open_time"].astype("int64")
    valid["asset_id"] = valid["asset_id"].astype("int64")
    return Validated(valid, rejected)


class SeenKeys:
    """Keys (asset, open_time) already accepted from this file, across chunks.

    Holds 8 bytes per accepted row (a sorted int64 array), so a file's duplicate check
    costs ~8 MB per million rows rather than a Python set's ~60 MB.
    """

    def __init__(self) -> None:
        self._seen: Keys = np.empty(0, dtype=np.int64)

    def split(self, valid: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Drop rows seen before (earlier chunk or earlier in this chunk)."""
        asset = valid["asset_id"].to_numpy(np.int64)
        keys = asset * ASSET_SHIFT + valid["open_time"].to_numpy(np.int64)
        repeat = pd.Series(keys).duplicated(keep="first").to_numpy()
        if self._seen.size:
            at = np.minimum(np.searchsorted(self._seen, keys), self._seen.size - 1)
            repeat |= self._seen[at] == keys
        dupes = valid.loc[repeat, ["line", "asset_id"]].assign(
            code="duplicate_key",
            reason="duplicate_key: same asset and open time as an earlier row in this file",
        )
        kept = valid.loc[~repeat]
        # Two sorted runs (files are mostly ordered): the stable sort merges them in ~O(n).
        self._seen = np.concatenate((self._seen, np.sort(keys[~repeat], kind="stable")))
        self._seen.sort(kind="stable")
        return kept, dupes


def ticker_problem(bid: float | None, ask: float | None, last: float | None) -> str | None:
    """Why a snapshot must not be stored (quarantined instead), or None."""
    prices = {"bid": bid, "ask": ask, "last": last}
    bad = [name for name, value in prices.items() if value is not None and value <= 0]
    if bad:
        return f"non_positive_price: {','.join(bad)} <= 0"
    if bid is not None and ask is not None and bid > ask:
        return f"inverted_bid_ask: bid {bid} > ask {ask}"
    return None
