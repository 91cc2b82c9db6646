"""The public archives people download: Binance's and Kraken's headerless klines,
CoinMarketCap's historical-data export and CoinGecko's price export (see docs/formats.md
for each one's conventions).

Binance and Kraken files carry no header and name neither the asset nor the interval in
their rows: both come from the file name, which follows each exchange's own convention
(`BTCUSDT-1h-2024-12.csv`, `XBTUSD_1440.csv`). Such a file is recognised by the shape of
its first row (field count, epoch digits, numbers), never by its name; a renamed file is
still read, and then needs `--csv-symbol`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from typing_extensions import override

from etl.core.assets import AssetRef, AssetRegistry, split_pair
from etl.core.errors import AssetTextError
from etl.core.intervals import DAY_MS
from etl.extract.csv_formats import PLAIN_OHLC, CsvFormat, Layout, _frame, normalise_header
from etl.extract.parse import datetimes_to_ms, epoch_ms_or_us_to_ms, epoch_to_ms, parse_numbers

_DECIMAL = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DIGITS = re.compile(r"^\d+$")


def _numbers(cells: list[str]) -> bool:
    return all(_DECIMAL.match(cell.strip()) for cell in cells)


def _pair(registry: AssetRegistry, symbol: str) -> AssetRef | None:
    """The pair a file name spells, only when its quote is one we know: `BTCBIDR` must not
    become BTCBIDR/USD (an unknown quote leaves the file to `--csv-symbol`)."""
    pair = split_pair(symbol)
    if pair is None:
        return None
    try:
        return registry.from_content(f"{pair[0]}/{pair[1]}")
    except AssetTextError:
        return None


class BinanceKlines(CsvFormat):
    """data.binance.vision spot klines: 12 fields, no header, open time in ms (µs from
    2025-01-01 on, decided per row by magnitude)."""

    name = "binance_klines"
    source = "binance"
    signature = "Binance klines (no header, 12 fields)"
    string_columns = ()
    COLUMNS = (
        "open_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "close_time",
        "quote_volume",
        "trades",
        "taker_buy_base",
        "taker_buy_quote",
        "ignore",
    )
    # `BTCUSDT-1h-2024-12` (monthly) or `BTCUSDT-1h-2024-12-31` (daily)
    FILE_NAME = re.compile(r"^([A-Z0-9]{2,20})-(\d+[smhdw])-\d{4}-\d{2}(-\d{2})?$")

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        """Binance's spot files have no header; copies sometimes carry one an uploader added
        (`open_time,open,...` or `Opentime,Open,...`): its 12 columns are the same."""
        if not rows or len(rows[0]) != len(self.COLUMNS):
            return None
        header = [re.sub(r"[\s_]", "", cell) for cell in normalise_header(rows[0])]
        if header[0] == "opentime" and header[6] == "closetime":
            found = self._data_row(rows[1]) if len(rows) > 1 else False
            return Layout(0, list(self.COLUMNS)) if found else None
        return Layout(-1, list(self.COLUMNS)) if self._data_row(rows[0]) else None

    def _data_row(self, row: list[str]) -> bool:
        if len(row) != len(self.COLUMNS):
            return False
        first = [cell.strip() for cell in row]
        open_time, close_time = first[0], first[6]
        if not (_DIGITS.match(open_time) and len(open_time) in (13, 16)):
            return False
        if not (_DIGITS.match(close_time) and len(close_time) == len(open_time)):
            return False
        return int(close_time) > int(open_time) and _numbers(first[1:6] + first[7:11])

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        return _frame(
            chunk,
            open_time=epoch_ms_or_us_to_ms(chunk["open_time"]),
            prices=PLAIN_OHLC,
            volume="volume",
            volume_quote="quote_volume",
        )

    @override
    def asset_from_name(self, path: Path, registry: AssetRegistry) -> AssetRef | None:
        found = self.FILE_NAME.match(path.stem)
        return _pair(registry, found.group(1)) if found else None

    @override
    def interval_from_name(self, path: Path) -> str | None:
        found = self.FILE_NAME.match(path.stem)
        return found.group(2) if found else None


class KrakenOhlcvt(CsvFormat):
    """Kraken's downloadable OHLCVT: 7 fields, no header, unix seconds at the bar's start;
    the pair and the interval in minutes come from the name (`XBTUSD_1440.csv`)."""

    name = "kraken_ohlcvt"
    source = "kraken"
    signature = "Kraken OHLCVT (no header, 7 fields)"
    string_columns = ()
    COLUMNS = ("timestamp", "open", "high", "low", "close", "volume", "trades")
    FILE_NAME = re.compile(r"^([A-Z0-9]{4,20})_(\d{1,5})$")
    MINUTES = {
        1: "1m",
        3: "3m",
        5: "5m",
        15: "15m",
        30: "30m",
        60: "1h",
        120: "2h",
        240: "4h",
        360: "6h",
        480: "8h",
        720: "12h",
        1440: "1d",
        4320: "3d",
        10080: "1w",
    }
    # Kraken's own asset codes; its legacy 8-letter pairs prefix crypto with X and fiat
    # with Z (`XXBTZUSD`, `XETHXXBT`).
    RENAMED = {"XBT": "BTC", "XDG": "DOGE"}
    QUOTES = (
        *("USDT", "USDC", "USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD", "DAI"),
        *("XBT", "ETH"),
    )
    LEGACY = re.compile(r"^X([A-Z0-9]{3})([XZ])([A-Z]{3})$")

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        if not rows or len(rows[0]) != len(self.COLUMNS):
            return None
        first = [cell.strip() for cell in rows[0]]
        if not (_DIGITS.match(first[0]) and len(first[0]) in (9, 10)):
            return None
        return Layout(-1, list(self.COLUMNS)) if _numbers(first[1:]) else None

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        return _frame(
            chunk, open_time=epoch_to_ms(chunk["timestamp"]), prices=PLAIN_OHLC, volume="volume"
        )

    @override
    def asset_from_name(self, path: Path, registry: AssetRegistry) -> AssetRef | None:
        found = self.FILE_NAME.match(path.stem)
        if not found:
            return None
        pair = found.group(1)
        legacy = self.LEGACY.match(pair)
        if legacy:
            base, quote = legacy.group(1), legacy.group(3)
        else:
            quote = next((q for q in self.QUOTES if pair.endswith(q) and len(pair) > len(q)), "")
            base = pair.removesuffix(quote)
        if not quote:
            return None
        base, quote = (self.RENAMED.get(code, code) for code in (base, quote))
        return _pair(registry, f"{base}/{quote}")

    @override
    def interval_from_name(self, path: Path) -> str | None:
        found = self.FILE_NAME.match(path.stem)
        return self.MINUTES.get(int(found.group(2))) if found else None


class CoinMarketCapExport(CsvFormat):
    """The "Historical Data" download of coinmarketcap.com: BOM, `;`, newest first, quoted
    ISO times; columns matched by name (downloads gain columns over time)."""

    name = "coinmarketcap_export"
    source = "coinmarketcap"
    signature = "timeOpen;timeClose;...;close;volume;..."
    string_columns = ("timeopen", "name")
    delimiters = (";", ",")
    fallback_interval = "1d"
    REQUIRED = ("timeopen", "timeclose", "open", "high", "low", "close")
    # `name` is CMC's id of the currency the prices are in, not the coin.
    QUOTE_IDS = {"2781": "USD"}
    FILE_NAME = re.compile(
        r"^(.+?)(_\d{1,2}_\d{1,2}_\d{4}-\d{1,2}_\d{1,2}_\d{4})?_historical_data_coinmarketcap$"
    )

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        if not rows:
            return None
        columns = normalise_header(rows[0])
        return Layout(0, columns) if set(self.REQUIRED) <= set(columns) else None

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        open_time = datetimes_to_ms(
            chunk["timeopen"], ("%Y-%m-%dT%H:%M:%S.%fZ",), iso_fallback=True
        )
        volume = "volume" if "volume" in layout.columns else None
        frame = _frame(chunk, open_time=open_time, prices=PLAIN_OHLC, volume_quote=volume)
        if "name" in layout.columns:
            ids = chunk["name"].astype("string").str.strip()
            other = ids.notna() & ~ids.isin(self.QUOTE_IDS.keys()).fillna(False).astype(bool)
            if other.any():
                shown = ids[other].str.slice(0, 20)
                reason = "prices in CoinMarketCap currency id " + shown + ", not 2781 (USD)"
                frame["parse_error"] = frame["parse_error"].where(~other, reason)
        return frame

    @override
    def asset_from_name(self, path: Path, registry: AssetRegistry) -> AssetRef | None:
        found = self.FILE_NAME.match(path.stem)
        return registry.resolve(found.group(1), strict=False) if found else None


class CoinGeckoExport(CsvFormat):
    """coingecko.com's historical-data CSV: one price snapshot per day, **no open, high or
    low**. Loaded as price points (`price_point`), never as candles."""

    name = "coingecko_export"
    source = "coingecko"
    signature = "snapped_at,price,market_cap,total_volume"
    string_columns = ("snapped_at",)
    kind = "price_point"
    # `btc-usd-max` (CoinGecko's own name: coin symbol, vs currency, range)
    FILE_NAME = re.compile(r"^([a-z0-9]{1,16})-([a-z]{3,5})-[a-z0-9]+$")

    @override
    def match(self, rows: list[list[str]]) -> Layout | None:
        if not rows:
            return None
        columns = normalise_header(rows[0])
        return Layout(0, columns) if {"snapped_at", "price"} <= set(columns) else None

    @override
    def normalise(self, chunk: pd.DataFrame, layout: Layout) -> pd.DataFrame:
        observed, err = datetimes_to_ms(
            chunk["snapped_at"], ("%Y-%m-%d %H:%M:%S UTC",), iso_fallback=True
        )
        # A few snapshots are late (`2017-06-06 23:29:55 UTC`) on days with no 00:00 row:
        # the day is the snapshot's date (floored, never rounded into the next day).
        day = observed - observed % DAY_MS
        volume = "total_volume" if "total_volume" in layout.columns else None
        frame = _frame(chunk, open_time=(day, err), prices={"close": "price"}, volume_quote=volume)
        for missing in ("open", "high", "low"):
            frame[missing] = float("nan")
        frame["observed_at"] = observed
        frame["market_cap"] = float("nan")
        if "market_cap" in layout.columns:
            cap, cap_err = parse_numbers(chunk["market_cap"], field="market_cap")
            frame["market_cap"] = cap
            frame["parse_error"] = frame["parse_error"].where(frame["parse_error"].notna(), cap_err)
        return frame

    @override
    def asset_from_name(self, path: Path, registry: AssetRegistry) -> AssetRef | None:
        found = self.FILE_NAME.match(path.stem.lower())
        return _pair(registry, f"{found.group(1)}/{found.group(2)}") if found else None
