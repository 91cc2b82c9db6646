"""Routes: values checked against the database and independent computations."""

from __future__ import annotations

import hashlib
import re

import pandas as pd
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.main import create_app
from etl.db.engine import MIGRATIONS_DIR as MIGRATIONS_ROOT
from tests import series_oracle
from tests.api.helpers import KEY, OTHER_KEY, api_settings, problem

PUBLIC = {"/health/live", "/health/ready"}
SAMPLE_PATH_VALUES = {"symbol": "bitcoin", "run_id": "00000000-0000-0000-0000-000000000000"}


def test_every_route_but_the_probes_needs_a_key(client: TestClient) -> None:
    routes = [r for r in client.app.routes if isinstance(r, APIRoute)]  # type: ignore[attr-defined]
    assert len(routes) >= 13
    for route in routes:
        path = route.path.format(**SAMPLE_PATH_VALUES)
        method = sorted(route.methods)[0]  # POST /api/crypto/stream/token is POST only
        bare = client.request(method, path, headers={"X-API-Key": ""})
        if route.path in PUBLIC:
            assert bare.status_code == 200, path
            continue
        assert bare.status_code == 401, path
        assert problem(bare)["code"] == "missing_api_key"
        assert bare.headers["WWW-Authenticate"] == "ApiKey"
        wrong = client.request(method, path, headers={"X-API-Key": "not-a-key"})
        assert wrong.status_code == 401 and problem(wrong)["code"] == "invalid_api_key"


def test_rotated_and_hashed_keys_are_accepted(api_database: str) -> None:
    hashed = "sha256:" + hashlib.sha256(b"only-the-hash-is-configured").hexdigest()
    app = create_app(api_settings(api_database, api_keys=f"{OTHER_KEY},{hashed}", api_key=KEY))
    with TestClient(app) as c:
        for key in (KEY, OTHER_KEY, "only-the-hash-is-configured"):
            assert c.get("/api/crypto/runs", headers={"X-API-Key": key}).status_code == 200
        assert c.get("/api/crypto/runs", headers={"X-API-Key": hashed}).status_code == 401


def test_latest_btc_is_the_last_stored_close(client: TestClient, engine_for: Engine) -> None:
    with engine_for.connect() as conn:
        newest = conn.execute(
            text(
                "SELECT c.close, c.source, c.close_time FROM candle c "
                "JOIN asset a ON a.id = c.asset_id "
                "WHERE a.symbol = 'BTCUSD' ORDER BY c.close_time DESC LIMIT 1"
            )
        ).one()
    body = client.get("/api/crypto/latest", params={"symbols": "btc-usd"}).json()
    assert len(body["data"]) == 1
    latest = body["data"][0]
    assert (latest["symbol"], latest["price"], latest["source"]) == ("BTCUSD", newest[0], newest[1])
    assert latest["stale"] is True and latest["age_seconds"] > 86_400
    assert pd.Timestamp(latest["as_of"]).value // 1_000_000 == newest[2]


def test_metrics_match_the_stored_metric_row(client: TestClient, engine_for: Engine) -> None:
    body = client.get("/api/crypto/metrics", params={"symbols": "ethereum"}).json()
    eth = body["data"][0]
    with engine_for.connect() as conn:
        sma, vol = conn.execute(
            text(
                "SELECT m.sma_7, m.volatility_30d FROM metric m JOIN asset a ON a.id = m.asset_id "
                "WHERE a.symbol = 'ETHUSD'"
            )
        ).one()
    assert (eth["symbol"], eth["source"], eth["interval"]) == ("ETHUSD", "coinmarketcap", "1d")
    assert eth["sma_7"] == pytest.approx(sma) and eth["volatility_30d"] == pytest.approx(vol)


def test_symbol_detail_accepts_every_alias(client: TestClient) -> None:
    for alias in ("bitcoin", "BTC", "BTCUSD", "btc-usd", "btcusd"):
        body = client.get(f"/api/crypto/symbol/{alias}").json()
        assert body["asset"]["symbol"] == "BTCUSD", alias
    detail = client.get("/api/crypto/symbol/bitcoin").json()
    assert {c["source"] for c in detail["asset"]["coverage"]} == {
        "coinmarketcap",
        "gemini",
        "yahoo",
    }
    assert {q["source"] for q in detail["quality"]} == {"coinmarketcap", "gemini", "yahoo"}
    missing = client.get("/api/crypto/symbol/dogecoin")
    assert missing.status_code == 404 and problem(missing)["code"] == "unknown_asset"


def test_symbols_list_coverage(client: TestClient) -> None:
    body = client.get("/api/crypto/symbols").json()
    eth = next(s for s in body["data"] if s["symbol"] == "ETHUSD")
    assert eth["coverage"] == [
        {
            "source": "coinmarketcap",
            "interval": "1d",
            "first_open": "2015-08-08T00:00:00Z",
            "last_open": "2021-07-06T00:00:00Z",
            "bars": 2160,
        },
    ]
    assert "ethereum" in eth["aliases"] and "ETH-USD" in eth["aliases"]


def test_coverage_counts_equal_the_old_count_per_call(
    client: TestClient, engine_for: Engine
) -> None:
    """`/symbols` and `/symbol/{s}` read the bars per series from the loader's statistics:
    the same answers as the min/max/count(*) per series they replaced."""
    listed = {s["symbol"]: s["coverage"] for s in client.get("/api/crypto/symbols").json()["data"]}
    with engine_for.connect() as conn:
        assets = conn.execute(text("SELECT id, symbol FROM asset")).all()
        expected = {
            symbol: [
                {
                    **c,
                    "first_open": utc_text(c["first_open"]),
                    "last_open": utc_text(c["last_open"]),
                }
                for c in series_oracle.series_coverage(conn, asset_id)
            ]
            for asset_id, symbol in assets
        }
    assert sum(len(c) for c in expected.values()) >= 4  # the sample: 4 series
    assert listed == expected
    for symbol, coverage in expected.items():
        detail = client.get(f"/api/crypto/symbol/{symbol}").json()
        assert detail["asset"]["coverage"] == coverage, symbol


def utc_text(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def test_weekly_candles_equal_an_independent_resampling(
    client: TestClient, engine_for: Engine
) -> None:
    with engine_for.connect() as conn:
        stored = pd.read_sql(
            text(
                "SELECT c.open_time, c.open, c.high, c.low, c.close, c.volume FROM candle c "
                "JOIN asset a ON a.id = c.asset_id WHERE a.symbol = 'BTCUSD' "
                "AND c.source = 'gemini' ORDER BY c.open_time"
            ),
            conn,
        )
    stored["t"] = pd.to_datetime(stored["open_time"], unit="ms", utc=True)
    week = stored["t"].dt.tz_localize(None).dt.to_period("W-SUN").dt.start_time  # Monday 00:00
    expected = stored.groupby(week).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
        bars=("open", "size"),
    )
    got = client.get(
        "/api/crypto/candles/BTC", params={"interval": "1w", "source": "gemini", "limit": 5000}
    ).json()
    assert got["resampled_from"] == "1d" and got["next_cursor"] is None
    frame = pd.DataFrame(got["data"])
    assert len(frame) == len(expected)
    assert list(pd.to_datetime(frame["open_time"]).dt.tz_localize(None)) == list(expected.index)
    for column in ("open", "high", "low", "close", "volume", "bars"):
        assert frame[column].tolist() == pytest.approx(expected[column].tolist()), column


def test_pagination_walks_every_bar_exactly_once(client: TestClient, engine_for: Engine) -> None:
    with engine_for.connect() as conn:
        stored = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT c.open_time FROM candle c JOIN asset a ON a.id = c.asset_id "
                    "WHERE a.symbol = 'ETHUSD' ORDER BY c.open_time"
                )
            )
        ]
    seen: list[int] = []
    params: dict[str, str | int] = {"interval": "1d", "limit": 333, "start": "2015-01-01"}
    for _ in range(20):
        page = client.get("/api/crypto/candles/ethereum", params=params).json()
        seen += [pd.Timestamp(b["open_time"]).value // 1_000_000 for b in page["data"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == stored


def test_tampered_or_foreign_cursor_is_a_400(client: TestClient) -> None:
    page = client.get("/api/crypto/candles/ethereum", params={"limit": 5}).json()
    cursor = page["next_cursor"]
    assert cursor
    forged = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    tampered = client.get("/api/crypto/candles/ethereum", params={"limit": 5, "cursor": forged})
    assert tampered.status_code == 400 and problem(tampered)["code"] == "invalid_cursor"
    foreign = client.get("/api/crypto/candles/bitcoin", params={"limit": 5, "cursor": cursor})
    assert foreign.status_code == 400 and problem(foreign)["code"] == "invalid_cursor"


def test_quality_and_runs(client: TestClient) -> None:
    quality = client.get("/api/crypto/quality", params={"symbols": "BTC"}).json()["data"]
    yahoo = next(q for q in quality if q["source"] == "yahoo")
    assert (yahoo["missing_bars"], len(yahoo["gaps"])) == (4, 3)
    runs = client.get("/api/crypto/runs").json()["data"]
    assert runs[0]["status"] == "success"
    one = client.get(f"/api/crypto/runs/{runs[0]['id']}").json()
    assert one["sources"]["csv"]["inserted"] == runs[0]["sources"]["csv"]["inserted"] > 0
    missing = client.get("/api/crypto/runs/nope")
    assert missing.status_code == 404 and problem(missing)["code"] == "run_not_found"


def test_health_probes_and_metrics(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health["database"]["reachable"] is True
    # the revision the newest migration file declares (read here, not from alembic)
    newest = sorted((MIGRATIONS_ROOT / "versions").glob("0*.py"))[-1].read_text()
    [revision] = re.findall(r'^revision = "([^"]+)"', newest, flags=re.MULTILINE)
    assert health["schema_version"] == health["schema_head"] == revision
    assert health["last_run"]["status"] == "success"
    assert {f["symbol"] for f in health["freshness"]} == {"BTCUSD", "ETHUSD"}
    assert health["status"] == "degraded"  # 2021/2022 data is stale today, and says so
    assert health["gemini_breaker"] == "closed"
    assert client.get("/health/live", headers={"X-API-Key": ""}).json() == {"status": "ok"}
    assert client.get("/health/ready", headers={"X-API-Key": ""}).json() == {"status": "ready"}
    exposition = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in exposition
    assert 'etl_last_run_rows{outcome="inserted",source="csv"}' in exposition
    assert 'data_age_seconds{interval="1d",source="gemini",symbol="BTCUSD"}' in exposition


def test_gemini_symbols_unreachable_is_a_503_with_retry_after(client: TestClient) -> None:
    answer = client.get("/api/crypto/gemini/symbols")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "60"
    assert problem(answer)["code"] == "gemini_unavailable"
