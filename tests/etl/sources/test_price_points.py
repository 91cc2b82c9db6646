"""CoinGecko's export is a price series, not candles: it loads into `price_point` (no
open, high or low invented), and no candle, metric or quality report comes of it."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from etl.core.settings import Settings
from tests.databases import REAL
from tests.helpers import file_detail, rows, run_csv, scalar

GECKO = "btc-usd-max.csv"
DAY = 86_400_000
POINT = (
    "SELECT p.day, p.observed_at, p.price, p.market_cap, p.volume_quote_24h "
    "FROM price_point p JOIN asset a ON a.id = p.asset_id "
    "WHERE a.symbol = :s AND p.source = 'coingecko' AND p.day = :d"
)


def day(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_the_real_export_loads_as_daily_price_points(settings: Settings, engine: Engine) -> None:
    summary = run_csv(settings, engine, [REAL / GECKO])
    assert summary.status == "success", summary.error
    detail = file_detail(summary, GECKO)
    assert (detail["format"], detail["source"], detail["table"], detail["interval"]) == (
        "coingecko_export",
        "coingecko",
        "price_point",
        None,
    )
    assert (detail["read"], detail["inserted"], detail["rejected"]) == (3160, 3160, 0)
    assert rows(
        engine,
        "SELECT a.symbol, a.base, a.quote, count(*), min(p.day), max(p.day) FROM price_point p "
        "JOIN asset a ON a.id = p.asset_id GROUP BY a.symbol, a.base, a.quote",
    ) == [("BTCUSD", "BTC", "USD", 3160, day("2013-04-28"), day("2021-12-23"))]
    # integers without `.0`, volume 0 before 2013-12-27
    assert rows(engine, POINT, s="BTCUSD", d=day("2013-04-28")) == [
        (day("2013-04-28"), day("2013-04-28"), 135.3, 1500517590.0, 0.0)
    ]
    # a late snapshot belongs to its own date (floored), and keeps its exact time
    assert rows(engine, POINT, s="BTCUSD", d=day("2017-06-06")) == [
        (
            day("2017-06-06"),
            day("2017-06-06T23:29:55"),
            2903.4438,
            47547556371.0756,
            1211604496.354524,
        )
    ]
    assert (
        scalar(engine, "SELECT count(*) FROM price_point WHERE day = :d", d=day("2017-06-07")) == 1
    )
    # the empty market cap of 2017-04-02 is absent, not zero; the price is kept
    assert rows(engine, POINT, s="BTCUSD", d=day("2017-04-02"))[0][2:4] == (
        1098.0679999999998,
        None,
    )
    # nothing was taken for a bar
    for table in ("candle", "metric", "quality_report", "rejected_row"):
        assert scalar(engine, f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608


def test_a_newer_export_revises_and_extends_the_series(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    run_csv(settings, engine, [REAL / GECKO])
    lines = (REAL / GECKO).read_text().splitlines()
    last = lines[-1].split(",")
    revised = [*lines[:-1], ",".join([last[0], "50000.5", *last[2:]])]
    revised.append("2021-12-24 00:00:00 UTC,50800.1,960000000000.0,30000000000.0")
    newer = tmp_path / GECKO
    newer.write_text("\n".join(revised) + "\n")
    summary = run_csv(settings, engine, [newer])
    detail = file_detail(summary, GECKO)
    assert (detail["inserted"], detail["updated"], detail["unchanged"]) == (1, 1, 3159)
    assert rows(engine, POINT, s="BTCUSD", d=day("2021-12-23"))[0][2] == 50000.5
    assert scalar(engine, "SELECT count(*) FROM price_point") == 3161


def test_other_coins_and_bad_rows(settings: Settings, engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "eth-eur-max.csv"
    path.write_text(
        "snapped_at,price,market_cap,total_volume\n"
        "2016-01-01 00:00:00 UTC,0.87,65000000,300000\n"
        "2016-01-02 00:00:00 UTC,,65000000,300000\n"
        "2016-01-03 00:00:00 UTC,-1,65000000,300000\n"
        "2016-01-04 00:00:00 UTC,0.9,-5,300000\n"
        "2016-01-01 12:00:00 UTC,0.88,65000000,300000\n"
        "2016-01-05 00:00:00 UTC,abc,65000000,300000\n"
        "2016-01-06 00:00:00 UTC,0.95,,\n"
    )
    shutil.copy(REAL / GECKO, tmp_path / "sol-usd-max.csv")  # any coin: the name tells
    summary = run_csv(settings, engine, [path, tmp_path / "sol-usd-max.csv"])
    detail = file_detail(summary, path.name)
    assert (detail["read"], detail["inserted"], detail["rejected"]) == (7, 2, 5)
    reasons = [r for (r,) in rows(engine, "SELECT reason FROM rejected_row ORDER BY line")]
    assert reasons == [
        "missing_price: price",
        "non_positive_price: price <= 0",
        "negative_volume: volume or market cap < 0",
        "duplicate_key: same asset and open time as an earlier row in this file",
        "parse_error: non-numeric close: abc",
    ]
    assert rows(
        engine,
        "SELECT a.symbol, a.quote, count(*) FROM price_point p JOIN asset a ON a.id = p.asset_id "
        "GROUP BY a.symbol, a.quote ORDER BY a.symbol",
    ) == [("ETHEUR", "EUR", 2), ("SOLUSD", "USD", 3160)]
