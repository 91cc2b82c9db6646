"""The Prefect flow under one `prefect_test_harness` per session, on both databases."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.deployments.runner import RunnerDeployment
from prefect.testing.utilities import prefect_test_harness
from sqlalchemy import Engine

from etl.core.settings import Settings, get_settings
from etl.extract.gemini_client import reset_breakers
from etl.pipeline import run_pipeline
from etl.sources.csv_files import CsvSource
from scheduler.flows import EtlParameters, etl_flow, load_csv, open_run, plan_files
from scheduler.schedule import schedule_kwargs
from tests.databases import DATA, FORMATS, REAL
from tests.helpers import rows, scalar
from tests.venue_doubles import KrakenDouble
from tests.venue_doubles import start as start_venue
from tests.venue_doubles import stop as stop_venue

FILES = [REAL / "coin_Solana.csv", REAL / "BTC-USD.csv", FORMATS / "my_candles.csv"]
ROWS_SQL = (
    "SELECT a.symbol, c.source, c.interval, c.open_time, c.close, c.volume FROM candle c "
    "JOIN asset a ON a.id = c.asset_id ORDER BY a.symbol, c.source, c.interval, c.open_time"
)


@pytest.fixture(scope="session")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def env_database(database_url: str, monkeypatch: pytest.MonkeyPatch, harness: None) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("CSV_CHUNK_ROWS", "1000")
    monkeypatch.setenv("CSV_ALLOWED_ROOTS", str(DATA))
    return database_url


def test_flow_loads_the_same_rows_as_the_cli(
    env_database: str, engine: Engine, tmp_path: Path
) -> None:
    state = etl_flow(
        EtlParameters(csv_paths=[str(p) for p in FILES], live=False), return_state=True
    )
    assert state.is_completed()
    summary = state.result()
    assert summary["status"] == "success"
    # the flow run id is the ETL run id: one id in Prefect, the ledger and the logs
    assert summary["run_id"] == str(state.state_details.flow_run_id)
    assert (
        scalar(engine, "SELECT trigger FROM etl_run WHERE id = :id", id=summary["run_id"])
        == "prefect"
    )
    cli_settings = get_settings(database_url=f"sqlite:///{tmp_path / 'cli.db'}", _env_file=None)
    from etl.db.engine import create_db_engine

    cli_engine = create_db_engine(cli_settings)
    run_pipeline(cli_settings, sources=[CsvSource(FILES)], engine=cli_engine)
    assert rows(engine, ROWS_SQL) == rows(cli_engine, ROWS_SQL)
    assert len(rows(engine, ROWS_SQL)) == 452 + 2422 + 4
    cli_engine.dispose()


def test_a_failing_live_source_completes_the_flow_as_partial(
    env_database: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("GEMINI_RETRIES", "1")
    state = etl_flow(EtlParameters(csv_paths=[str(REAL / "coin_Solana.csv")]), return_state=True)
    assert state.is_completed()
    summary = state.result()
    assert summary["status"] == "partial"
    assert summary["sources"]["gemini"]["status"] == "failed"
    assert scalar(engine, "SELECT status FROM etl_run") == "partial"
    assert scalar(engine, "SELECT count(*) FROM candle") == 452


def test_the_flow_loads_the_venues_of_exchanges_each_failing_alone(
    env_database: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kraken (through ccxt, against its double) loads; Gemini is down: `partial`."""
    kraken = start_venue(KrakenDouble(now_ms=int(time.time() * 1000)))
    reset_breakers()
    monkeypatch.setenv("EXCHANGES", "gemini,kraken")
    monkeypatch.setenv("EXCHANGE_URLS", f"kraken={kraken.url}")
    monkeypatch.setenv("EXCHANGE_CANDLE_INTERVALS", "1d")
    monkeypatch.setenv("COIN_IDS", "bitcoin")
    monkeypatch.setenv("GEMINI_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("GEMINI_RETRIES", "1")
    try:
        state = etl_flow(
            EtlParameters(csv_paths=[str(REAL / "coin_Solana.csv")]), return_state=True
        )
    finally:
        stop_venue(kraken)
        reset_breakers()
    assert state.is_completed()
    summary = state.result()
    assert summary["status"] == "partial"
    statuses = {name: source["status"] for name, source in summary["sources"].items()}
    assert statuses == {"csv": "success", "gemini": "failed", "kraken": "success"}
    assert scalar(engine, "SELECT count(*) FROM ticker WHERE source = 'kraken'") == 1
    assert scalar(engine, "SELECT count(*) FROM candle WHERE source = 'kraken'") > 0


def test_a_failed_run_fails_the_flow(env_database: str, engine: Engine) -> None:
    state = etl_flow(
        EtlParameters(csv_paths=[str(FORMATS / "unknown_layout.csv")], live=False),
        return_state=True,
    )
    assert state.is_failed()
    assert "RunFailedError" in str(state.message) and "failed" in str(state.message)
    assert scalar(engine, "SELECT status FROM etl_run") == "failed"


def test_dry_run_lists_formats_and_writes_nothing(env_database: str, engine: Engine) -> None:
    result = etl_flow(EtlParameters(csv_paths=[str(FORMATS)], dry_run=True))
    formats = {Path(f["file"]).name: f["format"] for f in result["files"]}
    assert formats["bitcoin_price.csv"] == "kaggle_price_2018"
    assert formats["unknown_layout.csv"] == "unrecognised"
    assert scalar(engine, "SELECT count(*) FROM etl_run") == 0


def test_tasks_run_as_plain_functions(settings: Settings, engine: Engine) -> None:
    plan = plan_files.fn([REAL / "coin_Solana.csv"])
    assert plan == [{"file": str(REAL / "coin_Solana.csv"), "format": "kaggle_coin_2021"}]
    ctx = open_run.fn(settings, engine, "run-fn-test")
    result = load_csv.fn(ctx, [REAL / "coin_Solana.csv"])
    assert (result.status, result.inserted) == ("success", 452)
    assert scalar(engine, "SELECT status FROM etl_run WHERE id = 'run-fn-test'") == "running"


def test_the_plan_lists_the_members_of_a_zip(tmp_path: Path) -> None:
    archive = tmp_path / "BTCUSDT-1h-2024-12.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as writer:
        writer.write(REAL / "BTCUSDT-1h-2024-12.csv", "BTCUSDT-1h-2024-12.csv")
    (tmp_path / "notes.zip").write_bytes(b"not a zip")
    plan = plan_files.fn([tmp_path])
    assert plan[0] == {"file": f"{archive}/BTCUSDT-1h-2024-12.csv", "format": "binance_klines"}
    assert plan[1]["format"] == "unrecognised"
    assert "not a readable zip archive" in plan[1]["error"]


def test_schedule_comes_from_settings() -> None:
    default = get_settings(_env_file=None)
    assert schedule_kwargs(default) == {"cron": "*/15 * * * *"}
    hourly = get_settings(etl_schedule_cron="0 * * * *", _env_file=None)
    assert schedule_kwargs(hourly) == {"cron": "0 * * * *"}
    every_5 = get_settings(etl_schedule_interval_seconds=300, _env_file=None)
    assert schedule_kwargs(every_5) == {"interval": timedelta(seconds=300)}
    deployment = etl_flow.to_deployment(name="t", **schedule_kwargs(hourly))
    assert isinstance(deployment, RunnerDeployment)  # synchronous here, not a coroutine
    assert deployment.schedules is not None
    assert deployment.schedules[0].schedule.cron == "0 * * * *"  # type: ignore[union-attr]


def test_csv_paths_outside_the_allowed_roots_are_refused_unopened(
    env_database: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLOW_TEST_SECRET", "s3cret-value-in-the-environment")
    inside = tmp_path / "allowed"
    inside.mkdir()
    (inside / "sneaky.csv").symlink_to(REAL / "coin_Cardano.csv")  # points outside
    monkeypatch.setenv("CSV_ALLOWED_ROOTS", f"{inside},{REAL / 'coin_Solana.csv'}")
    paths = ["/proc/self/environ", str(inside / "sneaky.csv"), str(REAL / "coin_Solana.csv")]
    state = etl_flow(EtlParameters(csv_paths=paths, live=False), return_state=True)
    summary = state.result()
    assert summary["status"] == "partial"
    details = {d["file"]: d for d in summary["sources"]["csv"]["details"]}
    assert "outside the allowed folders" in details["/proc/self/environ"]["error"]
    assert "outside the allowed folders" in details[str(inside / "sneaky.csv")]["error"]
    ledger = str(scalar(engine, "SELECT error FROM etl_run"))
    assert "/proc/self/environ" in ledger and "s3cret-value" not in ledger
    assert scalar(engine, "SELECT count(*) FROM candle") == 452  # only the allowed file
    plan = etl_flow(EtlParameters(csv_paths=[*paths[:2], str(inside)], dry_run=True))
    listed = {Path(f["file"]).name: f for f in plan["files"]}
    assert listed["environ"]["format"] == "refused"
    assert "outside the given folders" in listed["sneaky.csv"]["error"]  # never sniffed


def test_only_refused_paths_fail_the_flow_with_a_clear_error(env_database: str) -> None:
    state = etl_flow(EtlParameters(csv_paths=["/etc/passwd"], live=False), return_state=True)
    assert state.is_failed()
    assert "outside the allowed folders" in str(state.message)


def test_kaggle_data_path_may_name_a_single_file(
    env_database: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    single = tmp_path / "kaggle_crypto_prices.csv"
    single.write_bytes((REAL / "coin_Solana.csv").read_bytes())
    monkeypatch.delenv("CSV_ALLOWED_ROOTS")
    monkeypatch.setenv("KAGGLE_DATA_PATH", str(single))
    summary = etl_flow(EtlParameters(live=False))
    assert summary["status"] == "success"
    assert scalar(engine, "SELECT count(*) FROM candle") == 452


def test_a_missing_kaggle_data_path_fails_the_run_with_a_clear_error(
    env_database: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CSV_ALLOWED_ROOTS")
    monkeypatch.setenv("KAGGLE_DATA_PATH", str(tmp_path / "kaggle_crypto_prices.csv"))
    state = etl_flow(EtlParameters(live=False), return_state=True)
    assert state.is_failed()
    assert "kaggle_crypto_prices.csv: no such file or folder" in str(state.message)
    assert scalar(engine, "SELECT status FROM etl_run") == "failed"
