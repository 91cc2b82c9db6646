"""A CSV must not take over a known coin's alias (issue 9): `Symbol=AAA,Name=Ethereum`."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert

from api.main import create_app
from etl.core.settings import Settings
from etl.db.models import Asset
from etl.read.assets import resolve_asset
from tests.api.helpers import KEY, api_settings
from tests.databases import REAL
from tests.helpers import file_detail, rows, run_csv, scalar

HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n"


def takeover_file(folder: Path) -> Path:
    path = folder / "coin_Aaa.csv"
    path.write_text(
        HEADER
        + "1,Ethereum,AAA,2021-01-01 23:59:59,2,1,1.5,1.8,100,1000\n"
        + "2,bitcoin,BBB,2021-01-02 23:59:59,2,1,1.5,1.8,100,1000\n"
        + "3,Aaa Token,CCC,2021-01-03 23:59:59,2,1,1.5,1.8,100,1000\n"
        + "4,Formula,=CMD|x,2021-01-04 23:59:59,2,1,1.5,1.8,100,1000\n"
    )
    return path


def test_a_row_naming_another_known_coin_is_quarantined_with_a_reason(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    summary = run_csv(settings, engine, [REAL / "coin_Ethereum.csv", takeover_file(tmp_path)])
    assert file_detail(summary, "coin_Aaa.csv")["rejected"] == 3
    reasons = [r for (r,) in rows(engine, "SELECT reason FROM rejected_row ORDER BY line")]
    assert reasons == [
        "bad_name: 'Ethereum' belongs to the known coin ETH",
        "bad_name: 'bitcoin' belongs to the known coin BTC",
        "bad_symbol: '=CMD|x' is not 1-16 letters and digits",
    ]
    assert scalar(engine, "SELECT count(*) FROM asset WHERE symbol IN ('AAAUSD', 'BBBUSD')") == 0
    with engine.connect() as conn:
        assert resolve_asset(conn, "ethereum").symbol == "ETHUSD"
        assert resolve_asset(conn, "ccc").symbol == "CCCUSD"  # an unknown coin still loads


def test_exact_aliases_rank_before_a_stored_lookalike(settings: Settings, engine: Engine) -> None:
    run_csv(settings, engine, [REAL / "coin_Ethereum.csv"])
    with engine.begin() as conn:  # as an older release would have stored it
        conn.execute(
            insert(Asset).values(
                symbol="AAAUSD", base="AAA", quote="USD", name="Ethereum", coin_id="ethereum"
            )
        )
    with engine.connect() as conn:
        for alias in ("ethereum", "ETH", "eth-usd", "ETHUSD"):
            assert resolve_asset(conn, alias).symbol == "ETHUSD", alias
        assert resolve_asset(conn, "aaa").symbol == "AAAUSD"
    app = create_app(api_settings(settings.database_url))
    with TestClient(app) as client:
        page = client.get("/api/crypto/candles/ethereum", headers={"X-API-Key": KEY})
    assert page.status_code == 200 and page.json()["symbol"] == "ETHUSD"
