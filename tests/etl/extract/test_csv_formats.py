"""Every supported layout, read from real files where we have them and from faithful
fixtures otherwise, with exact expected values (no database needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from etl.core.errors import UnrecognisedFormatError
from etl.extract.csv_reader import iter_chunks, raw_lines, sniff
from tests.databases import FORMATS, REAL


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def read_all(path: Path, chunk_rows: int = 1000) -> tuple[str, pd.DataFrame]:
    fmt, layout = sniff(path)
    frames = [chunk.frame for chunk in iter_chunks(path, fmt, layout, chunk_rows)]
    return fmt.name, pd.concat(frames, ignore_index=True)


def test_kaggle_coin_daily_rows_open_at_midnight_of_their_date() -> None:
    name, frame = read_all(REAL / "coin_Bitcoin.csv", chunk_rows=700)
    assert name == "kaggle_coin_2021"
    assert len(frame) == 2991
    assert frame["open_time"].iloc[0] == ms("2013-04-29T00:00:00")
    assert frame["open_time"].iloc[-1] == ms("2021-07-06T00:00:00")
    first = frame.iloc[0]
    # H/L/O/C column order in the file, mapped by name
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        134.44400024414062,
        147.48800659179688,
        134.0,
        144.5399932861328,
    )
    assert frame["volume"].isna().all()
    assert frame["volume_quote"].iloc[-1] == 26501259869.76
    assert set(frame["symbol"]) == {"BTC"} and set(frame["name"]) == {"Bitcoin"}
    assert frame["line"].tolist() == list(range(2, 2993))


def test_cryptodatadownload_mixed_second_and_millisecond_unix_times() -> None:
    name, frame = read_all(REAL / "Gemini_BTCUSD_d.csv")
    assert name == "cryptodatadownload"
    assert len(frame) == 2394
    times = pd.to_datetime(frame["open_time"], unit="ms", utc=True)
    assert (times.dt.hour == 4).all() and (times.dt.minute == 0).all()
    assert frame["open_time"].iloc[0] == ms("2022-04-27T04:00:00")
    assert frame["open_time"].iloc[-1] == ms("2015-10-08T04:00:00")
    assert frame["open_time"].is_monotonic_decreasing
    assert frame["volume"].iloc[0] == 646.58759877  # Volume BTC is the base volume
    assert frame["volume_quote"].iloc[0] == 25332661.99808582
    assert frame["line"].iloc[0] == 3  # banner and header come first


def test_yahoo_null_rows_are_missing_values_not_errors() -> None:
    name, frame = read_all(REAL / "BTC-USD.csv")
    assert name == "yahoo"
    assert len(frame) == 2426  # no final newline: the last row is still read
    nulls = frame[frame["close"].isna()]
    assert nulls["line"].tolist() == [2041, 2216, 2219, 2220]
    assert nulls["parse_error"].isna().all()
    assert frame["volume_quote"].iloc[-1] == 63812743168


def test_bitstamp_early_release_is_one_minute_bars() -> None:
    name, frame = read_all(REAL / "bitstampUSD_1-min_data_slice.csv", chunk_rows=10_000)
    assert name == "bitstamp"
    assert len(frame) == 67824
    assert frame["open_time"].iloc[0] == 1325317920 * 1000
    assert frame["volume"].iloc[0] == 0.45558087
    assert frame["volume_quote"].iloc[0] == 2.000000019


@pytest.mark.parametrize(
    ("file", "fmt", "count", "first_open", "symbol"),
    [
        ("Gemini_BTCUSD_d_2019.csv", "cryptodatadownload", 4, "2019-05-19T00:00:00", "BTCUSD"),
        ("Gemini_ETHUSD_1h_2018.csv", "cryptodatadownload", 3, "2018-12-03T01:00:00", "ETHUSD"),
        ("Gemini_BTCUSD_1h_2019.csv", "cryptodatadownload", 4, "2019-05-21T01:00:00", "BTCUSD"),
        ("bitcoin_price.csv", "kaggle_price_2018", 5, "2018-02-20T00:00:00", None),
        ("BTC-USD_yfinance.csv", "yfinance", 3, "2024-01-01T00:00:00", "BTC-USD"),
        ("Bitcoin Historical Data.csv", "investing", 4, "2020-01-14T00:00:00", None),
        (
            "bitstampUSD_1-min_data_2012-01-01_to_2021-03-31.csv",
            "bitstamp",
            5,
            "2011-12-31T07:52:00",
            None,
        ),
        ("btcusd_1-min_data.csv", "bitstamp", 4, "2012-01-01T10:01:00", None),
        ("my_candles.csv", "canonical", 4, "2024-03-01T00:00:00", "BTC-USD"),
    ],
)
def test_fixture_layouts_are_recognised_and_normalised(
    file: str, fmt: str, count: int, first_open: str, symbol: str | None
) -> None:
    name, frame = read_all(FORMATS / file)
    assert name == fmt
    assert len(frame) == count
    assert frame["open_time"].iloc[0] == ms(first_open)
    assert frame["parse_error"].isna().all()
    assert (frame["symbol"].iloc[0] if symbol else None) == symbol


def test_old_cryptodatadownload_hourly_clock_and_volumes() -> None:
    _, frame = read_all(FORMATS / "Gemini_ETHUSD_1h_2018.csv")
    assert frame["open_time"].tolist() == [
        ms("2018-12-03T01:00:00"),
        ms("2018-12-03T00:00:00"),
        ms("2018-12-02T23:00:00"),
    ]
    assert frame["volume"].tolist() == [520.1, 610.3, 430.0]
    assert frame["volume_quote"].tolist() == [58511.25, 69045.2, 49020.0]
    _, unix = read_all(FORMATS / "Gemini_BTCUSD_1h_2019.csv")
    assert unix["open_time"].diff().dropna().eq(-3_600_000).all()  # s and ms agree
    assert unix["volume"].tolist() == [120.55, 98.1, 150.0, 88.25]
    assert unix["volume_quote"].isna().all()


def test_kaggle_old_release_thousands_separators_and_dash() -> None:
    _, frame = read_all(FORMATS / "bitcoin_price.csv")
    assert frame["volume_quote"].iloc[0] == 9_926_540_000
    assert frame["volume_quote"].isna().tolist() == [False, False, False, True, True]
    assert frame["open_time"].iloc[-1] == ms("2013-04-28T00:00:00")


def test_investing_prices_and_suffixed_volumes() -> None:
    _, frame = read_all(FORMATS / "Bitcoin Historical Data.csv")
    assert frame["close"].tolist() == [8746.6, 8105.2, 8184.2, 8032.6]
    assert frame["open"].iloc[0] == 8105.2
    volumes = frame["volume"].tolist()
    assert volumes[0] == pytest.approx(1.38e6)
    assert volumes[1] == pytest.approx(648_300)
    assert pd.isna(volumes[2])
    assert volumes[3] == pytest.approx(0.95e9)


def test_yfinance_columns_follow_their_labels_and_tickers() -> None:
    _, frame = read_all(FORMATS / "BTC-USD_yfinance.csv")
    first = frame.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        42280.234375,
        44175.4375,
        42214.9765625,
        44167.33203125,
    )
    _, multi = read_all(FORMATS / "crypto_yfinance_multi.csv")
    eth = multi[multi["symbol"] == "ETH-USD"]
    assert eth["close"].tolist() == [2352.04, 2355.76]
    assert eth["line"].tolist() == [4, 5]


def test_bitstamp_nan_minutes_are_missing_values() -> None:
    _, frame = read_all(FORMATS / "bitstampUSD_1-min_data_2012-01-01_to_2021-03-31.csv")
    assert frame["close"].isna().tolist() == [False, True, True, False, False]


def test_unrecognised_header_names_the_file_and_the_expected_layouts() -> None:
    with pytest.raises(UnrecognisedFormatError) as error:
        sniff(FORMATS / "unknown_layout.csv")
    message = str(error.value)
    assert "unknown_layout.csv" in message
    assert "['time', 'price', 'qty']" in message
    assert "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap" in message
    assert "symbol,timestamp,open,high,low,close" in message


def test_unsplittable_lines_keep_later_line_numbers_exact(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "symbol,timestamp,open,high,low,close,volume\n"
        "BTC,2024-01-01T00:00:00Z,1,2,1,2,5\n"
        "BTC,2024-01-01T01:00:00Z,1,2,1,2,5,extra,fields\n"
        "\n"
        "BTC,2024-01-01T02:00:00Z,1,2,1,2,5\n"
    )
    fmt, layout = sniff(path)
    chunks = list(iter_chunks(path, fmt, layout, 2))
    lines = [int(x) for c in chunks for x in c.frame["line"]]
    assert lines == [2, 5]
    assert [m for c in chunks for m in c.malformed] == [(3, "expected 7 fields, saw 9")]
    assert sum(c.blank_lines for c in chunks) == 1
    assert raw_lines(path, [3, 5]) == {
        3: "BTC,2024-01-01T01:00:00Z,1,2,1,2,5,extra,fields",
        5: "BTC,2024-01-01T02:00:00Z,1,2,1,2,5",
    }


def test_blank_lines_at_the_top_are_an_unrecognised_format_not_a_crash(tmp_path: Path) -> None:
    """Seen with random bytes: a blank row among the first three made the yfinance check
    index an empty header."""
    path = tmp_path / "blank_top.csv"
    path.write_bytes(b"\n\n\nx,y\n1,2\n")
    with pytest.raises(UnrecognisedFormatError):
        sniff(path)


def test_binance_klines_have_no_header_and_open_on_the_hour() -> None:
    name, frame = read_all(REAL / "BTCUSDT-1h-2024-12.csv", chunk_rows=300)
    assert name == "binance_klines"
    assert len(frame) == 744
    assert frame["line"].tolist() == list(range(1, 745))  # no header line
    assert frame["open_time"].iloc[0] == ms("2024-12-01T00:00:00")
    assert frame["open_time"].iloc[-1] == ms("2024-12-31T23:00:00")
    assert frame["open_time"].diff().dropna().eq(3_600_000).all()
    assert (frame["volume"].iloc[0], frame["volume_quote"].iloc[0]) == (532.95388, 51410648.796134)
    assert frame["parse_error"].isna().all()


def test_binance_times_are_milliseconds_or_microseconds_per_row(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-1m-2025-01.csv"
    rest = "1,2,0.5,1.5,10,{close},15,7,5,7.5,0\n"
    path.write_text(
        "1735689540000,"
        + rest.format(close=1735689599999)
        + "1735689600000000,"
        + rest.format(close=1735689659999999)
        + "1735689660000000,"
        + rest.format(close=1735689719999999)
    )
    name, frame = read_all(path)
    assert name == "binance_klines"
    assert frame["open_time"].tolist() == [
        ms("2024-12-31T23:59:00"),
        ms("2025-01-01T00:00:00"),
        ms("2025-01-01T00:01:00"),
    ]


def test_kraken_ohlcvt_is_unix_seconds_without_a_header() -> None:
    name, frame = read_all(REAL / "XBTUSD_1440.csv")
    assert name == "kraken_ohlcvt"
    assert len(frame) == 2722
    assert frame["line"].iloc[0] == 1
    assert frame["open_time"].iloc[0] == ms("2013-10-06T00:00:00")
    assert frame["open_time"].iloc[-1] == ms("2021-03-31T00:00:00")
    assert frame["volume"].iloc[2] == 3.9916
    assert frame["volume_quote"].isna().all()


def test_coinmarketcap_export_is_semicolons_newest_first_with_iso_times() -> None:
    name, frame = read_all(REAL / "Bitcoin_7_30_2020-8_29_2025_historical_data_coinmarketcap.csv")
    assert name == "coinmarketcap_export"
    assert len(frame) == 1856
    assert frame["open_time"].iloc[0] == ms("2025-08-29T00:00:00")
    assert frame["open_time"].iloc[-1] == ms("2020-07-31T00:00:00")
    assert frame["open_time"].is_monotonic_decreasing
    assert frame["close"].iloc[0] == 108410.8381422406
    assert frame["volume_quote"].iloc[0] == 77843379643.52 and frame["volume"].isna().all()
    assert frame["parse_error"].isna().all()


@pytest.mark.parametrize(
    ("first_line", "expected"),
    [
        # Kaggle-style headers and our own still win; a header is never taken for data
        ("Timestamp,Open,High,Low,Close,Volume", "bitstamp"),
        ("symbol,timestamp,open,high,low,close", "canonical"),
        # one field too many or too few, or a date instead of epoch digits: not an archive
        ("1381017600,122.0,122.0,122.0,122.0,0.1,1,0", None),
        ("2013-10-06,122.0,122.0,122.0,122.0,0.1,1", None),
        ("1733011200000,1,2,0.5,1.5,10,1733011199999,15,7,5,7.5,0", None),  # closes first
        ("1733011200,1,2,0.5,1.5,10,1733014799,15,7,5,7.5,0", None),  # seconds: not Binance
        ("1381017600,122.0,abc,122.0,122.0,0.1,1", None),
    ],
)
def test_archive_layouts_are_told_apart_by_their_first_row(
    tmp_path: Path, first_line: str, expected: str | None
) -> None:
    path = tmp_path / "probe.csv"
    path.write_text(first_line + "\n")
    if expected is None:
        with pytest.raises(UnrecognisedFormatError):
            sniff(path)
    else:
        assert sniff(path)[0].name == expected


def test_coingecko_export_is_a_price_per_day_with_no_ohlc() -> None:
    name, frame = read_all(REAL / "btc-usd-max.csv")
    assert name == "coingecko_export"
    assert len(frame) == 3160
    assert frame[["open", "high", "low"]].isna().all().all()  # nothing invented
    assert frame["close"].iloc[0] == 135.3
    assert frame["open_time"].iloc[0] == ms("2013-04-28T00:00:00")
    late = frame[frame["observed_at"] == ms("2017-06-06T23:29:55")]
    assert late["open_time"].tolist() == [ms("2017-06-06T00:00:00")]  # floored, not rounded
    assert frame["open_time"].is_unique
    assert frame["parse_error"].isna().all()


@pytest.mark.parametrize(
    "header",
    [
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore",
        "Opentime,Open,High,Low,Close,Volume,Closetime,Quote asset volume,Number of trades,"
        "Taker buy base asset volume,Taker buy quote asset volume,Ignore",
    ],
)
def test_binance_klines_with_an_added_header_read_the_same(tmp_path: Path, header: str) -> None:
    path = tmp_path / "BTCUSDT-1h-2024-12.csv"
    data = (REAL / "BTCUSDT-1h-2024-12.csv").read_text()
    path.write_text(header + "\n" + data)
    name, frame = read_all(path)
    assert name == "binance_klines"
    assert len(frame) == 744 and frame["line"].iloc[0] == 2
    assert frame["open_time"].iloc[0] == ms("2024-12-01T00:00:00")
