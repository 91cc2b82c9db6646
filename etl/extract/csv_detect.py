"""Which layout a file is, from its first lines: the formats in the order they are tried."""

from __future__ import annotations

import csv
import dataclasses

from etl.extract.csv_formats import (
    Bitstamp,
    Canonical,
    CryptoDataDownload,
    CsvFormat,
    Investing,
    KaggleCoin,
    KaggleOld,
    Layout,
    Yahoo,
    YFinance,
)
from etl.extract.exchange_formats import (
    BinanceKlines,
    CoinGeckoExport,
    CoinMarketCapExport,
    KrakenOhlcvt,
)

FORMATS: tuple[CsvFormat, ...] = (
    KaggleCoin(),
    CryptoDataDownload(),
    YFinance(),
    Yahoo(),
    KaggleOld(),
    Investing(),
    Bitstamp(),
    Canonical(),
    CoinMarketCapExport(),
    CoinGeckoExport(),
    BinanceKlines(),
    KrakenOhlcvt(),
)


def detect(lines: list[str]) -> tuple[CsvFormat, Layout] | None:
    """The first format that recognises the lines, split by its own delimiters (commas
    first: a `;` layout is only tried with `;` when no comma layout matched)."""
    split: dict[str, list[list[str]]] = {}
    for delimiter in (",", ";"):
        for fmt in FORMATS:
            if delimiter not in fmt.delimiters:
                continue
            if delimiter not in split:
                split[delimiter] = list(csv.reader(lines, delimiter=delimiter))
            layout = fmt.match(split[delimiter])
            if layout is not None:
                return fmt, dataclasses.replace(layout, delimiter=delimiter)
    return None
