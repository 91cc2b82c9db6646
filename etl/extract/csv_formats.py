"""The CSV layouts we ingest, recognised by their header (never by file name).

Each format turns a chunk of raw rows into canonical columns (see `CANONICAL_COLUMNS`):
`open_time` is the bar's **start** in epoch ms UTC, volumes are split into base
(`volume`) and quote (`volume_quote`) currency, and every unreadable value leaves a
`parse_error` for the validator. Conventions converted here:

- Kaggle/CoinMarketCap daily rows stamped `YYYY-MM-DD 23:59:59` are the close of that UTC
  day: the bar opens at 00:00 UTC of the same date.
- CryptoDataDownload and Gemini daily bars open at the time they carry (04:00 UTC).
- Dates without a time (Yahoo, investing.com, the old Kaggle release) open at 00:00 UTC.
- Times without an offset are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from typing_extensions import override

from etl.core.assets import AssetRef, AssetRegistry
from etl.core.intervals import DAY_MS
from etl.core.series import OHLC
from etl.extract.parse import (
    datetimes_to_ms,
    epoch_to_ms,
    first_error,
    parse_numbers,
    timestamps_to_ms,
)

CANONICAL_COLUMNS = (
    "symbol",
    "name",
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "volume_quote",
    "parse_error",
)


SOURCE_MAX_CHARS = 32  # the `source` columns are String(32)


def normalise_header(cells: list[str]) -> list[str]:
    return [cell.replace("\ufeff", "").strip().strip('"').lower() for cell in cells]


@dataclass(frozen=True)
class Layout:
    """Where the data starts and what its columns are called, as detected."""

    header_line: int  # 0-based index of the last header line; -1: no header
    columns: list[str]
    tickers: list[str] = field(default_factory=list)  # yfinance: one per column
    delimiter: str = ","


def _frame(
    chunk: pd.DataFrame,
    *,
    open_time: tuple[pd.Series, pd.Series],
    prices: dict[str, str],
    volume: str | None = None,
    volume_quote: str | None = None,
    symbol: pd.Series | None = None,
    name: pd.Series | None = None,
    volume_suffixes: bool = False,
) -> pd.DataFrame:
    """Assemble canonical columns; `prices` maps open/high/low/close to source columns."""
    out = pd.DataFrame(index=chunk.index)
    out["symbol"] = symbol if symbol is not None else None
    out["name"] = name if name is not None else None
    out["open_time"], errors = open_time
    error_columns = [errors]
    for target, column in prices.items():
        out[target], err = _finite(*parse_numbers(chunk[column], field=target), target)
        error_columns.append(err)
    for target, source_column in (("volume", volume), ("volume_quote", volume_quote)):
        if source_column is None:
            out[target] = np.nan
            continue
        parsed = parse_numbers(chunk[source_column], field=target, suffixes=volume_suffixes)
        out[target], err = _finite(*parsed, target)
        error_columns.append(err)
    out["parse_error"] = first_error(*error_columns)
    return out


def _finite(values: pd.Series, errors: pd.Series, field: str) -> tuple[pd.Series, pd.Series]:
    """`inf` parses as a float but is no price, and JSON cannot carry it to a client."""
    infinite = np.isinf(values.to_numpy(np.float64))
    if not infinite.any():
        return values, errors
    errors = errors.where(~infinite | errors.notna(), f"infinite {field}")
    return values.where(~infinite), errors


PLAIN_OHLC = {name: name for name in OHLC}


class CsvFormat:
    name: str = ""
    source: str = "csv"
    signature: str = ""  # the expected header, shown when nothing matches
    fixed_interval: str | None = None
    default_symbol: str | None = None
    string_columns: tuple[str, ...] = ("date",)
    delimiters: tuple[str, ...] = (",",)  # the separators the layout is tried with
    fallback_interval: str | None = None  # when neither the times nor the name tell
    no_trade_runs: bool = False  # all-empty rows are quarantined as runs (Bitstamp NaN)
    kind: str = "candle"  # or "price_point": a price with no bar around it (CoinGecko)

    def match(self, rows: list[list[str]]) -> Layout | None:  # noqa: ARG002
        raise NotImplementedError

    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:  # noqa: ARG002
        raise NotImplementedError

    def source_for(self, path: Path) -> str:  # noqa: ARG002 - overridden per format
        return self.source

    def asset_from_name(self, path: Path, registry: AssetRegistry) -> AssetRef | None:  # noqa: ARG002
        """The asset the layout's own file-naming convention names, if it has one."""
        return None

    def interval_from_name(self, path: Path) -> str | None:  # noqa: ARG002
        """The bar interval the layout's own file-naming convention states, if any."""
        return None


def _header_is(rows: list[list[str]], index: int, *required: str) -> Layout | None:
    if len(rows) <= index:
        return None
    columns = normalise_header(rows[index])
    return Layout(index, columns) if set(required) <= set(columns) else None


class KaggleCoin(CsvFormat):
    name = "kaggle_coin_2021"
    source = "coinmarketcap"
    signature = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap"
    fixed_interval = "1d"
    string_columns = ("date", "symbol", "name")

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        return _header_is(rows, 0, *normalise_header(self.signature.split(",")[1:]))

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        ms, err = datetimes_to_ms(chunk["date"], ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"))
        day_start = ms - ms % DAY_MS  # 23:59:59 is the day's close
        return _frame(
            chunk,
            open_time=(day_start, err),
            prices=PLAIN_OHLC,
            volume_quote="volume",
            symbol=chunk["symbol"],
            name=chunk["name"],
        )


class CryptoDataDownload(CsvFormat):
    """Every CryptoDataDownload vintage: the banner line, then `unix,date,symbol,...`,
    `Unix Timestamp,Date,Symbol,...` or `Date,Symbol,...`; volumes named by currency."""

    name = "cryptodatadownload"
    source = "cryptodatadownload"
    signature = "CryptoDataDownload banner, then unix,date,symbol,open,...,Volume <BASE>,..."
    string_columns = ("date", "symbol")
    DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %I-%p", "%Y-%m-%d %H:%M", "%Y-%m-%d")

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        if not rows or "cryptodatadownload" not in ",".join(rows[0]).lower():
            return None
        return _header_is(rows, 1, "date", "symbol", "open", "high", "low", "close")

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        unix = next((c for c in ("unix", "unix timestamp") if c in layout.columns), None)
        if unix:
            open_time = epoch_to_ms(chunk[unix])
        else:
            open_time = datetimes_to_ms(chunk["date"], self.DATE_FORMATS, iso_fallback=True)
        base_col, quote_col = self._volume_columns(chunk, layout)
        return _frame(
            chunk,
            open_time=open_time,
            prices=PLAIN_OHLC,
            volume=base_col,
            volume_quote=quote_col,
            symbol=chunk["symbol"],
        )

    @staticmethod
    def _volume_columns(chunk: pd.DataFrame, layout: Layout) -> tuple[str | None, str | None]:
        named = [c for c in layout.columns if c.startswith("volume")]
        if named == ["volume"]:
            return "volume", None  # the old hourly layout: base-currency volume
        symbols = chunk["symbol"].dropna()
        pair = re.sub(r"[^a-z0-9]", "", str(symbols.iloc[0]).lower()) if len(symbols) else ""
        base = quote = None
        for column in named:
            currency = column.removeprefix("volume").strip()
            if currency and pair.endswith(currency):
                quote = column
            elif currency and pair.startswith(currency):
                base = column
        return base, quote

    @override
    def source_for(self, path: Path) -> str:
        # `Gemini_BTCUSD_d.csv`: the exchange the export came from, not the website.
        prefix = path.stem.split("_")[0]
        named = prefix.isascii() and prefix.isalpha() and len(prefix) <= SOURCE_MAX_CHARS
        return prefix.lower() if named and len(path.stem.split("_")) > 1 else "cdd"


class Yahoo(CsvFormat):
    name = "yahoo"
    source = "yahoo"
    signature = "Date,Open,High,Low,Close,Adj Close,Volume"

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        return _header_is(rows, 0, *normalise_header(self.signature.split(",")))

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        open_time = datetimes_to_ms(chunk["date"], ("%Y-%m-%d",), iso_fallback=True)
        return _frame(chunk, open_time=open_time, prices=PLAIN_OHLC, volume_quote="volume")


class YFinance(CsvFormat):
    """yfinance >= 0.2.51 `to_csv`: `Price,...` / `Ticker,...` / `Date,,,` header rows,
    one column per (field, ticker); several tickers in one file are supported."""

    name = "yfinance"
    source = "yahoo"
    signature = "Price,Close,... / Ticker,BTC-USD,... / Date,,,"

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        if len(rows) < 3:
            return None
        fields, tickers, dates = (normalise_header(r) for r in rows[:3])
        if not (fields and tickers and dates):  # a blank line among the first three
            return None
        if (fields[0], tickers[0], dates[0]) != ("price", "ticker", "date"):
            return None
        columns = ["date"] + [f"{f}|{t}" for f, t in zip(fields[1:], tickers[1:], strict=False)]
        return Layout(2, columns, tickers=sorted(set(tickers[1:])))

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        open_time = datetimes_to_ms(chunk["date"], ("%Y-%m-%d",), iso_fallback=True)
        frames = []
        for ticker in layout.tickers:
            suffix = f"|{ticker}"
            part = chunk.rename(columns={c: c.removesuffix(suffix) for c in chunk.columns})
            frame = _frame(
                part,
                open_time=open_time,
                prices=PLAIN_OHLC,
                volume_quote="volume",
                symbol=pd.Series(ticker.upper(), index=chunk.index),
            )
            frames.append(frame)
        return pd.concat(frames)


class Bitstamp(CsvFormat):
    """Kaggle (mczielinski) Bitstamp minutes: the 8-column releases (`NaN` rows for
    no-trade minutes in 2018-2021) and the 6-column 2024+ release with float times."""

    name = "bitstamp"
    source = "bitstamp"
    signature = "Timestamp,Open,High,Low,Close,Volume[_(BTC),Volume_(Currency),...]"
    default_symbol = "BTCUSD"  # the dataset is Bitstamp's BTC/USD book
    string_columns = ()
    no_trade_runs = True

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        layout = _header_is(rows, 0, "timestamp", "open", "high", "low", "close")
        if layout is None or layout.columns[0] != "timestamp" or "symbol" in layout.columns:
            return None
        plain = layout.columns == ["timestamp", "open", "high", "low", "close", "volume"]
        return layout if plain or "volume_(btc)" in layout.columns else None

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        base = "volume_(btc)" if "volume_(btc)" in layout.columns else "volume"
        quote = "volume_(currency)" if "volume_(currency)" in layout.columns else None
        return _frame(
            chunk,
            open_time=epoch_to_ms(chunk["timestamp"]),
            prices=PLAIN_OHLC,
            volume=base,
            volume_quote=quote,
        )


class KaggleOld(CsvFormat):
    name = "kaggle_price_2018"
    source = "coinmarketcap"
    signature = "Date,Open,High,Low,Close,Volume,Market Cap"
    fixed_interval = "1d"
    string_columns = ("date", "volume", "market cap")

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        layout = _header_is(rows, 0, *normalise_header(self.signature.split(",")))
        return layout if layout and "adj close" not in layout.columns else None

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        open_time = datetimes_to_ms(chunk["date"], ("%b %d, %Y", "%Y-%m-%d"))
        return _frame(chunk, open_time=open_time, prices=PLAIN_OHLC, volume_quote="volume")


class Investing(CsvFormat):
    name = "investing"
    source = "investing"
    signature = '"Date","Price","Open","High","Low","Vol.","Change %"'
    string_columns = ("date", "price", "open", "high", "low", "vol.", "change %")

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        layout = _header_is(rows, 0, "date", "price", "open", "high", "low", "vol.")
        return layout if layout and layout.columns[:2] == ["date", "price"] else None

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        open_time = datetimes_to_ms(chunk["date"], ("%b %d, %Y", "%m/%d/%Y", "%Y-%m-%d"))
        prices = {"open": "open", "high": "high", "low": "low", "close": "price"}
        return _frame(
            chunk, open_time=open_time, prices=prices, volume="vol.", volume_suffixes=True
        )


class Canonical(CsvFormat):
    """Our own layout for users' files (see docs/formats.md): `symbol,timestamp,open,high,low,close`
    plus optional `volume` (base) and `volume_quote`; ISO-8601 or epoch s/ms times."""

    name = "canonical"
    source = "csv"
    signature = "symbol,timestamp,open,high,low,close,volume[,volume_quote]"
    string_columns = ("symbol",)

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        return _header_is(rows, 0, "symbol", "timestamp", "open", "high", "low", "close")

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        return _frame(
            chunk,
            open_time=timestamps_to_ms(chunk["timestamp"]),
            prices=PLAIN_OHLC,
            volume="volume" if "volume" in layout.columns else None,
            volume_quote="volume_quote" if "volume_quote" in layout.columns else None,
            symbol=chunk["symbol"],
        )
