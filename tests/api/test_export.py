"""`GET /api/crypto/candles/{symbol}/export`: CSV that loads back as the same bars, NDJSON and
Parquet with the same values, streamed in chunks, gzip on request, a cap on bars per request
and its own rate-limit class. On SQLite and PostgreSQL (the api_database fixture)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.export import ExportSeries, accepts_gzip, bar_chunks
from api.main import create_app
from etl.db.engine import create_db_engine
from etl.pipeline import run_pipeline
from etl.read.assets import resolve_asset
from etl.read.candles import candle_page
from etl.sources.csv_files import CsvSource
from tests.api.helpers import KEY, api_settings, limited_client, problem
from tests.databases import postgres_schema

EXPORT = "/api/crypto/candles/{}/export"
BAR_FIELDS = ("open_time", "open", "high", "low", "close", "volume", "volume_quote")


def stored_bars(engine: Engine, symbol: str, source: str, interval: str) -> list[tuple[Any, ...]]:
    """Every bar of a stored series, read straight from the database."""
    with engine.connect() as conn:
        asset = resolve_asset(conn, symbol)
        rows = candle_page(
            conn,
            asset_id=asset.id,
            source=source,
            stored=interval,
            interval=interval,
            start_ms=0,
            end_ms=2**62,
            limit=1_000_000,
        )
    return [tuple(r[f] for f in BAR_FIELDS) for r in rows]


@contextmanager
def fresh_database(like: str, tmp_path: Path) -> Iterator[str]:
    if like.startswith("postgresql"):
        with postgres_schema("x") as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'reimport.db'}"


@pytest.fixture
def chunked(api_database: str) -> Iterator[TestClient]:
    """A client whose exports read 500 bars a chunk, so a full series takes several."""
    settings = api_settings(api_database, export_chunk_bars=500)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = KEY
        yield c


def test_csv_export_loads_back_through_the_pipeline_as_the_same_bars(
    chunked: TestClient, engine_for: Engine, api_database: str, tmp_path: Path
) -> None:
    answer = chunked.get(EXPORT.format("bitcoin"), params={"source": "coinmarketcap"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="BTCUSD_coinmarketcap_1d_20130429T0000Z-20210707T0000Z.csv"'
    )
    lines = answer.text.splitlines()
    assert lines[0] == "symbol,timestamp,open,high,low,close,volume,volume_quote"
    assert lines[1].startswith("BTCUSD,2013-04-29T00:00:00Z,")
    original = stored_bars(engine_for, "BTCUSD", "coinmarketcap", "1d")
    assert len(lines) == len(original) + 1 == int(answer.headers["x-export-bars"]) + 1
    assert len(original) > 2000  # several 500-bar chunks

    exported = tmp_path / "BTCUSD_export.csv"
    exported.write_bytes(answer.content)
    with fresh_database(api_database, tmp_path) as url:
        settings = api_settings(url)
        engine = create_db_engine(settings)
        try:
            summary = run_pipeline(settings, sources=[CsvSource([exported])], engine=engine)
            assert summary.status == "success", summary.error
            assert summary.sources["csv"]["rejected"] == 0, summary.sources
            assert stored_bars(engine, "BTCUSD", "csv", "1d") == original
        finally:
            engine.dispose()


def test_ndjson_export_has_the_candle_routes_values(chunked: TestClient) -> None:
    """A resampled interval (weekly from daily bars), across chunk boundaries."""
    params = {"interval": "1w", "start": "2016-01-04", "end": "2021-01-04"}
    pages: list[dict[str, Any]] = []
    query: dict[str, Any] = {**params, "limit": 100}
    while True:
        page = chunked.get("/api/crypto/candles/ETH", params=query).json()
        pages += page["data"]
        if not page["next_cursor"]:
            break
        query = {**params, "limit": 100, "cursor": page["next_cursor"]}
    answer = chunked.get(EXPORT.format("ETH"), params={**params, "format": "ndjson"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in answer.text.splitlines()]
    assert len(rows) == len(pages) > 200
    source = chunked.get("/api/crypto/candles/ETH", params={**params, "limit": 1}).json()["source"]
    assert answer.headers["content-disposition"].endswith(
        f'_{source}_1w_20160104T0000Z-20210104T0000Z.ndjson"'
    )
    for row, bar in zip(rows, pages, strict=True):
        assert row == {
            "symbol": "ETHUSD",
            "timestamp": bar["open_time"],
            **{k: bar[k] for k in ("open", "high", "low", "close", "volume", "volume_quote")},
        }


def test_parquet_export_is_typed_and_holds_the_stored_values(
    chunked: TestClient, engine_for: Engine
) -> None:
    answer = chunked.get(EXPORT.format("BTC-USD"), params={"format": "parquet", "source": "gemini"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    assert "content-encoding" not in answer.headers  # compressed inside (zstd)
    table = pq.read_table(io.BytesIO(answer.content))
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("symbol").type == pa.string()
    for name in ("open", "high", "low", "close", "volume", "volume_quote"):
        assert table.schema.field(name).type == pa.float64()
    original = stored_bars(engine_for, "BTCUSD", "gemini", "1d")
    assert table.num_rows == len(original) > 500
    assert pq.ParquetFile(io.BytesIO(answer.content)).num_row_groups == -(-len(original) // 500)
    got = table.to_pylist()
    assert got[0]["symbol"] == "BTCUSD"
    assert got[0]["timestamp"].utcoffset().total_seconds() == 0
    assert [
        (int(r["timestamp"].timestamp() * 1000), *(r[f] for f in BAR_FIELDS[1:])) for r in got
    ] == original


def test_gzip_when_the_client_accepts_it(chunked: TestClient) -> None:
    params = {"source": "coinmarketcap", "format": "csv"}
    plain = chunked.get(
        EXPORT.format("BTC"), params=params, headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    with chunked.stream(
        "GET", EXPORT.format("BTC"), params=params, headers={"Accept-Encoding": "br, gzip"}
    ) as answer:
        raw = b"".join(answer.iter_raw())
    assert answer.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == plain.content
    assert len(raw) < len(plain.content) / 2


def test_accept_encoding_is_read_with_its_weights() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, gzip;q=0.5")
    assert accepts_gzip("*")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("gzip;q=0, *")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("")
    assert not accepts_gzip("gzip;q=oops")


def test_bars_are_read_a_chunk_at_a_time(engine_for: Engine) -> None:
    """Memory is bounded by the chunk, not the range: the reader never returns more."""
    with engine_for.connect() as conn:
        asset = resolve_asset(conn, "BTC")
    series = ExportSeries("BTCUSD", asset.id, "coinmarketcap", "1d", "1d", 0, 2**62)
    chunks = list(bar_chunks(engine_for, series, 700))
    assert [len(c) for c in chunks[:-1]] == [700] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= 700
    times = [r["open_time"] for c in chunks for r in c]
    assert times == sorted(set(times))
    assert len(times) == len(stored_bars(engine_for, "BTC", "coinmarketcap", "1d"))


def test_a_range_over_the_cap_is_refused_before_streaming(api_database: str) -> None:
    settings = api_settings(api_database, export_max_bars=100)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = KEY
        refused = client.get(EXPORT.format("BTC"), params={"source": "coinmarketcap"})
        assert refused.status_code == 400
        body = problem(refused)
        assert body["code"] == "export_too_large"
        assert "at most 100" in str(body["detail"])
        params = {"source": "coinmarketcap", "start": "2020-01-01", "end": "2020-04-01"}
        narrowed = client.get(EXPORT.format("BTC"), params=params)
        assert narrowed.status_code == 200
        assert len(list(csv.reader(io.StringIO(narrowed.text)))) == 91 + 1
        weekly = client.get(
            EXPORT.format("BTC"), params={"source": "coinmarketcap", "interval": "1w"}
        )
        assert weekly.status_code == 400  # ~420 weeks


def test_bad_requests_are_problems(client: TestClient) -> None:
    assert problem(client.get(EXPORT.format("nosuchcoin")))["code"] == "unknown_asset"
    answer = client.get(EXPORT.format("BTC"), params={"source": "nosuch"})
    assert problem(answer)["code"] == "no_series"
    answer = client.get(EXPORT.format("BTC"), params={"start": "2021-01-02", "end": "2021-01-01"})
    assert problem(answer)["code"] == "invalid_range"
    assert client.get(EXPORT.format("BTC"), params={"format": "xlsx"}).status_code == 422
    assert problem(client.get(EXPORT.format("BTC"), headers={"X-API-Key": ""})).get("status") == 401
    empty = client.get(EXPORT.format("BTC"), params={"start": "2030-01-01"})
    assert empty.status_code == 200
    assert empty.text == "symbol,timestamp,open,high,low,close,volume,volume_quote\n"
    assert empty.headers["content-disposition"].endswith('_1d_empty.csv"')


def test_exports_have_their_own_rate_limit_class(api_database: str) -> None:
    client = limited_client(api_database, rate_limit_export="1/minute")
    with client:
        params = {"start": "2021-01-01", "end": "2021-01-08"}
        first = client.get(EXPORT.format("BTC"), params=params)
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit"] == "1"
        refused = client.get(EXPORT.format("BTC"), params=params)
        assert refused.status_code == 429
        assert problem(refused)["code"] == "rate_limited"
        assert "retry-after" in refused.headers
        # other classes keep their own counters
        assert client.get("/api/crypto/candles/BTC", params=params).status_code == 200
