"""The public archives as downloaded (Binance, Kraken, CoinMarketCap) load on SQLite and
PostgreSQL with exact counts; files of other years, assets and intervals follow the same
documented conventions (synthetic files written here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine

from etl.core.settings import Settings
from tests.databases import REAL
from tests.helpers import file_detail, rows, run_csv, scalar

BINANCE = "BTCUSDT-1h-2024-12.csv"
KRAKEN = "XBTUSD_1440.csv"
CMC = "Bitcoin_7_30_2020-8_29_2025_historical_data_coinmarketcap.csv"

ARCHIVE_EXPECTED = {
    # file: (read, inserted, rejected, source, interval, asset)
    BINANCE: (744, 744, 0, "binance", "1h", "BTCUSDT"),
    KRAKEN: (2722, 2722, 0, "kraken", "1d", "BTCUSD"),
    CMC: (1856, 1856, 0, "coinmarketcap", "1d", "BTCUSD"),
}
SERIES = (
    "SELECT a.symbol, a.base, a.quote, c.source, c.interval, count(*), min(c.open_time), "
    "max(c.open_time) FROM candle c JOIN asset a ON a.id = c.asset_id "
    "GROUP BY a.symbol, a.base, a.quote, c.source, c.interval ORDER BY a.symbol, c.source"
)


def bar(engine: Engine, symbol: str, source: str, open_time: int) -> tuple[float | None, ...]:
    found = rows(
        engine,
        "SELECT c.open, c.high, c.low, c.close, c.volume, c.volume_quote, c.close_time "
        "FROM candle c JOIN asset a ON a.id = c.asset_id "
        "WHERE a.symbol = :s AND c.source = :src AND c.open_time = :t",
        s=symbol,
        src=source,
        t=open_time,
    )
    assert len(found) == 1, found
    return tuple(found[0])


def test_real_archives_load_with_exact_counts(settings: Settings, engine: Engine) -> None:
    summary = run_csv(settings, engine, [REAL / name for name in ARCHIVE_EXPECTED])
    assert summary.status == "success", summary.error
    for name, (read, inserted, rejected, source, interval, _) in ARCHIVE_EXPECTED.items():
        detail = file_detail(summary, name)
        assert (detail["read"], detail["inserted"], detail["rejected"]) == (
            read,
            inserted,
            rejected,
        )
        assert (detail["source"], detail["interval"]) == (source, interval)
    assert rows(engine, SERIES) == [
        # Kraken's XBT is bitcoin; BTCUSDT is its own pair, never the BTC/USD series
        ("BTCUSD", "BTC", "USD", "coinmarketcap", "1d", 1856, 1596153600000, 1756425600000),
        ("BTCUSD", "BTC", "USD", "kraken", "1d", 2722, 1381017600000, 1617148800000),
        ("BTCUSDT", "BTC", "USDT", "binance", "1h", 744, 1733011200000, 1735686000000),
    ]
    # Binance: open time is the hour's start; volume in BTC, quote volume in USDT
    assert bar(engine, "BTCUSDT", "binance", 1733011200000) == (
        96407.99,
        96672.49,
        96260.0,
        96340.6,
        532.95388,
        51410648.796134,
        1733014800000,
    )
    # Kraken: seconds at the day's start, base volume only
    assert bar(engine, "BTCUSD", "kraken", 1381190400000) == (
        123.91,
        124.19,
        123.9,
        124.18,
        3.9916,
        None,
        1381276800000,
    )
    # CoinMarketCap: newest first in the file; timeOpen is the day's start, volume in USD
    assert bar(engine, "BTCUSD", "coinmarketcap", 1756425600000) == (
        112550.5200780888,
        112619.0530334579,
        107559.6243034287,
        108410.8381422406,
        None,
        77843379643.52,
        1756512000000,
    )
    assert scalar(engine, "SELECT count(*) FROM rejected_row") == 0


def test_a_rerun_of_the_archives_changes_nothing(settings: Settings, engine: Engine) -> None:
    paths = [REAL / name for name in ARCHIVE_EXPECTED]
    run_csv(settings, engine, paths)
    again = run_csv(settings, engine, paths)
    assert {d["status"] for d in again.sources["csv"]["details"]} == {"skipped"}
    assert scalar(engine, "SELECT count(*) FROM candle") == 744 + 2722 + 1856


BINANCE_ROW = "{t},{o},{h},{lo},{c},12.5,{close},{q},100,6.0,{hq},0\n"


def binance_rows(start: int, step: int, count: int, *, scale: int) -> str:
    """`scale` 1 writes ms (to 2024), 1000 writes µs (2025 on)."""
    out = []
    for i in range(count):
        t = start + i * step
        price = 100 + i
        out.append(
            BINANCE_ROW.format(
                t=t * scale,
                o=f"{price:.8f}",
                h=f"{price + 2:.8f}",
                lo=f"{price - 1:.8f}",
                c=f"{price + 1:.8f}",
                close=(t + step) * scale - 1,
                q=f"{12.5 * price:.8f}",
                hq=f"{6.0 * price:.8f}",
            )
        )
    return "".join(out)


DAY = 86_400_000
JAN_2025 = 1735689600000


def test_binance_microsecond_rows_from_2025_and_other_pairs_and_intervals(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # A daily ETHUSDT file of January 2025 in microseconds, a 4h SOLBTC file in ms, and a
    # file that straddles the switch (ms rows, then µs rows), as concatenated downloads do.
    (tmp_path / "ETHUSDT-1d-2025-01.csv").write_text(binance_rows(JAN_2025, DAY, 31, scale=1000))
    (tmp_path / "SOLBTC-4h-2023-03.csv").write_text(
        binance_rows(1677628800000, 4 * 3_600_000, 6, scale=1)
    )
    mixed = binance_rows(JAN_2025 - 3 * 60_000, 60_000, 3, scale=1) + binance_rows(
        JAN_2025, 60_000, 3, scale=1000
    )
    (tmp_path / "BTCFDUSD-1m-2024-12.csv").write_text(mixed)
    summary = run_csv(settings, engine, [tmp_path])
    assert summary.status == "success", summary.error
    assert rows(engine, SERIES) == [
        ("BTCFDUSD", "BTC", "FDUSD", "binance", "1m", 6, JAN_2025 - 180_000, JAN_2025 + 120_000),
        ("ETHUSDT", "ETH", "USDT", "binance", "1d", 31, JAN_2025, JAN_2025 + 30 * DAY),
        (
            "SOLBTC",
            "SOL",
            "BTC",
            "binance",
            "4h",
            6,
            1677628800000,
            1677628800000 + 5 * 4 * 3_600_000,
        ),
    ]
    assert bar(engine, "ETHUSDT", "binance", JAN_2025 + DAY)[:6] == (
        101.0,
        103.0,
        100.0,
        102.0,
        12.5,
        1262.5,
    )


def test_kraken_other_pairs_and_intervals_name_their_series(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    hour = 3600
    start = 1609459200  # 2021-01-01
    lines = [
        f"{start + i * hour},{730 + i},{735 + i},{725 + i},{731 + i},{4 + i},{9 + i}\n"
        for i in range(5)
    ]
    lines[2] = f"{start + 2 * hour},732,737,727,733,4E+2,11\n"  # scientific volume
    (tmp_path / "ETHUSD_60.csv").write_text("".join(lines))
    (tmp_path / "XDGEUR_15.csv").write_text(
        "".join(f"{start + i * 900},0.0047,0.0048,0.0046,0.0047,1200,3\n" for i in range(4))
    )
    (tmp_path / "XTZUSD_1440.csv").write_text(f"{start},2.1,2.2,2.0,2.15,100,4\n")  # Tezos
    (tmp_path / "XXBTZEUR_5.csv").write_text(f"{start},25000,25010,24990,25005,1.5,20\n")
    (tmp_path / "ETHXBT_720.csv").write_text(
        "".join(f"{start + i * 43200},0.025,0.026,0.024,0.025,10,2\n" for i in range(3))
    )
    summary = run_csv(settings, engine, [tmp_path])
    assert summary.status == "success", summary.error
    assert rows(engine, SERIES) == [
        ("BTCEUR", "BTC", "EUR", "kraken", "5m", 1, start * 1000, start * 1000),
        ("DOGEEUR", "DOGE", "EUR", "kraken", "15m", 4, start * 1000, (start + 2700) * 1000),
        ("ETHBTC", "ETH", "BTC", "kraken", "12h", 3, start * 1000, (start + 86400) * 1000),
        ("ETHUSD", "ETH", "USD", "kraken", "1h", 5, start * 1000, (start + 4 * hour) * 1000),
        ("XTZUSD", "XTZ", "USD", "kraken", "1d", 1, start * 1000, start * 1000),
    ]
    assert bar(engine, "ETHUSD", "kraken", (start + 2 * hour) * 1000)[4] == 400.0


CMC_HEADER = (
    "timeOpen;timeClose;timeHigh;timeLow;name;open;high;low;close;volume;marketCap;timestamp"
)


def test_coinmarketcap_columns_are_matched_by_name_not_position(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # An Ethereum download of a later vintage: an added column, columns reordered
    header = (
        "timeOpen;name;close;open;low;high;timeClose;circulatingSupply;marketCap;volume;timestamp"
    )
    body = [
        '"2025-10-02T00:00:00.000Z";"2781";4500.5;4400.25;4390;4510;"2025-10-02T23:59:59.999Z";'
        '120000000;540000000000;30000000000;"2025-10-02T23:59:59.999Z"',
        '"2025-10-01T00:00:00.000Z";"2781";4400.25;4300;4290.5;4420;"2025-10-01T23:59:59.999Z";'
        '120000000;530000000000;25000000000;"2025-10-01T23:59:59.999Z"',
        '"2025-09-30T00:00:00.000Z";"2790";4300;4200;4190;4310;"2025-09-30T23:59:59.999Z";'
        '120000000;520000000000;20000000000;"2025-09-30T23:59:59.999Z"',
    ]
    name = "Ethereum_9_30_2025-10_2_2025_historical_data_coinmarketcap.csv"
    (tmp_path / name).write_bytes(("\ufeff" + "\r\n".join([header, *body]) + "\r\n").encode())
    summary = run_csv(settings, engine, [tmp_path / name])
    assert summary.status == "success", summary.error
    detail = file_detail(summary, name)
    assert (detail["read"], detail["inserted"], detail["rejected"]) == (3, 2, 1)
    oct_1 = 1759276800000
    assert bar(engine, "ETHUSD", "coinmarketcap", oct_1) == (
        4300.0,
        4420.0,
        4290.5,
        4400.25,
        None,
        25000000000.0,
        oct_1 + DAY,
    )
    # prices in another currency (CMC id 2790 is EUR) are never filed as USD
    (reason,) = rows(engine, "SELECT reason FROM rejected_row")[0]
    assert reason.startswith("parse_error: prices in CoinMarketCap currency id 2790")


def test_a_renamed_archive_still_loads_with_a_symbol_given(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    shutil.copy(REAL / KRAKEN, tmp_path / "daily.csv")
    summary = run_csv(settings, engine, [tmp_path / "daily.csv"], default_symbol="BTCUSD")
    detail = file_detail(summary, "daily.csv")
    assert (detail["format"], detail["interval"], detail["inserted"]) == (
        "kraken_ohlcvt",
        "1d",
        2722,
    )


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("BTCUSDT-1s-2024-12.csv", "bar interval '1s' is not supported"),
        ("bars.csv", "the file names no asset"),
    ],
)
def test_an_archive_whose_name_says_too_little_fails_alone(
    settings: Settings, engine: Engine, tmp_path: Path, name: str, error: str
) -> None:
    (tmp_path / name).write_text(binance_rows(1733011200000, 1000, 3, scale=1))
    summary = run_csv(settings, engine, [tmp_path / name])
    detail = file_detail(summary, name)
    assert detail["status"] == "failed"
    assert error in detail["error"]
