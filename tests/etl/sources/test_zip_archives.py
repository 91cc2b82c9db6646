"""Zips as downloaded (Binance and Kraken ship `.zip`): their CSV members load without
being unpacked, each as its own batch, and a hostile zip fails alone with its reason."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import Engine

from etl.core.settings import Settings
from tests.databases import REAL
from tests.helpers import file_detail, rows, run_csv, scalar

BINANCE = "BTCUSDT-1h-2024-12.csv"
KRAKEN = "XBTUSD_1440.csv"
CMC = "Bitcoin_7_30_2020-8_29_2025_historical_data_coinmarketcap.csv"
GECKO = "btc-usd-max.csv"


def zipped(folder: Path, name: str, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def test_downloaded_zips_load_like_their_csvs(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    # Binance: one CSV of the same name; Kraken: several pairs and intervals in one zip
    binance = zipped(tmp_path, "BTCUSDT-1h-2024-12.zip", {BINANCE: (REAL / BINANCE).read_bytes()})
    kraken = zipped(
        tmp_path,
        "Kraken_OHLCVT.zip",
        {
            f"Kraken_OHLCVT/{KRAKEN}": (REAL / KRAKEN).read_bytes(),
            "Kraken_OHLCVT/ETHUSD_60.csv": b"1609459200,730,735,725,731,4,9\n"
            b"1609462800,731,736,726,732,5,10\n",
        },
    )
    cmc = zipped(tmp_path, "cmc.zip", {CMC: (REAL / CMC).read_bytes()})
    gecko = zipped(tmp_path, "gecko.zip", {GECKO: (REAL / GECKO).read_bytes()})
    summary = run_csv(settings, engine, [binance, kraken, cmc, gecko])
    assert summary.status == "success", summary.error
    counts = {
        Path(d["file"]).name: (d["format"], d["interval"], d["read"], d["inserted"], d["rejected"])
        for d in summary.sources["csv"]["details"]
    }
    assert counts == {
        BINANCE: ("binance_klines", "1h", 744, 744, 0),
        KRAKEN: ("kraken_ohlcvt", "1d", 2722, 2722, 0),
        "ETHUSD_60.csv": ("kraken_ohlcvt", "1h", 2, 2, 0),
        CMC: ("coinmarketcap_export", "1d", 1856, 1856, 0),
        GECKO: ("coingecko_export", None, 3160, 3160, 0),
    }
    assert file_detail(summary, BINANCE)["file"] == f"{binance}/{BINANCE}"
    assert rows(
        engine,
        "SELECT a.symbol, c.source, count(*) FROM candle c JOIN asset a ON a.id = c.asset_id "
        "GROUP BY a.symbol, c.source ORDER BY a.symbol, c.source",
    ) == [
        ("BTCUSD", "coinmarketcap", 1856),
        ("BTCUSD", "kraken", 2722),
        ("BTCUSDT", "binance", 744),
        ("ETHUSD", "kraken", 2),
    ]
    assert scalar(engine, "SELECT count(*) FROM price_point") == 3160
    batches = rows(engine, "SELECT ref FROM source_batch ORDER BY ref")
    assert [ref for (ref,) in batches][0] == f"{binance}/{BINANCE}"


def test_a_zip_and_its_csv_are_the_same_content(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    binance = zipped(tmp_path, "BTCUSDT-1h-2024-12.zip", {BINANCE: (REAL / BINANCE).read_bytes()})
    first = run_csv(settings, engine, [binance])
    again = run_csv(settings, engine, [REAL / BINANCE])
    assert file_detail(first, BINANCE)["inserted"] == 744
    assert file_detail(again, BINANCE)["status"] == "skipped"  # same inflated bytes
    assert scalar(engine, "SELECT count(*) FROM candle") == 744


def test_rejected_rows_of_a_member_keep_their_line_and_raw_text(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    data = b"1609459200,730,735,725,731,4,9\n1609462800,731,720,726,732,5,10\n"
    archive = zipped(tmp_path, "k.zip", {"ETHUSD_60.csv": data})
    run_csv(settings, engine, [archive])
    assert rows(engine, "SELECT file, line, raw, reason FROM rejected_row") == [
        (
            f"{archive}/ETHUSD_60.csv",
            2,
            "1609462800,731,720,726,732,5,10",
            "high_below_open_close: high < max(open, close)",
        )
    ]


def big_member(size: int) -> bytes:
    row = b"1609459200,1,1,1,1,1,1\n"
    return row * (size // len(row))


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ({"../../etc/ETHUSD_60.csv": b"x"}, "zip member path '../../etc/ETHUSD_60.csv' leaves"),
        ({"/abs/ETHUSD_60.csv": b"x"}, "leaves the archive"),
        ({"ETHUSD_60.csv": b"1,2\n", "readme.txt": b"hello"}, "'readme.txt' is not a .csv"),
        ({f"ETHUSD_{i}.csv": b"1,2\n" for i in range(1, 6)}, "holds 5 files, more than"),
        ({"ETHUSD_60.csv": big_member(8 << 20)}, "inflates 4\\d\\d times|a zip bomb"),
        ({}, "holds no file"),
    ],
)
def test_a_hostile_zip_fails_alone(
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    members: dict[str, bytes],
    error: str,
) -> None:
    folder = tmp_path / "data"
    hostile = zipped(folder, "hostile.zip", members)
    zipped(folder, "ok.zip", {KRAKEN: (REAL / KRAKEN).read_bytes()})
    limited = settings.model_copy(update={"csv_zip_max_members": 4})
    summary = run_csv(limited, engine, [folder])
    assert summary.status == "partial"
    detail = file_detail(summary, hostile.name)
    assert detail["status"] == "failed"
    assert re.search(error, detail["error"]), detail["error"]
    assert file_detail(summary, KRAKEN)["inserted"] == 2722
    assert scalar(engine, "SELECT count(*) FROM candle") == 2722


def test_a_member_over_the_size_limit_or_not_a_zip_fails_alone(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    zipped(folder, "huge.zip", {"ETHUSD_60.csv": b"1609459200,730,735,725,731,4,9\n" * 1000})
    (folder / "fake.zip").write_bytes(b"PK\x03\x04 not really a zip")
    limited = settings.model_copy(update={"csv_zip_max_member_bytes": 10_000})
    summary = run_csv(limited, engine, [folder])
    assert "more than CSV_ZIP_MAX_MEMBER_BYTES" in file_detail(summary, "huge.zip")["error"]
    assert "not a readable zip archive" in file_detail(summary, "fake.zip")["error"]


def test_a_member_that_lies_about_its_size_fails_on_its_crc(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    path = zipped(tmp_path, "liar.zip", {"ETHUSD_60.csv": b"1609459200,730,735,725,731,4,9\n" * 50})
    data = bytearray(path.read_bytes())
    # the central directory's uncompressed size (offset 24 in its header) says 60 bytes
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (60).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    summary = run_csv(settings, engine, [path])
    detail = file_detail(summary, "ETHUSD_60.csv")
    assert detail["status"] == "failed"
    assert "CRC" in detail["error"] or "Bad" in detail["error"], detail["error"]
