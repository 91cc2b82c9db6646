"""The command line as users run it: options, environment defaults, JSON summary, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.databases import FORMATS, REAL
from tests.gemini_double import GeminiDouble, start, stop

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    args: list[str], env: dict[str, str], module: bool = True
) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, "-m", "etl.pipeline"] if module else [sys.executable, "etl/pipeline.py"]
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "KAGGLE_DATA_PATH", "COIN_IDS")
    }
    # never the internet: live calls go to a closed local port unless a test says otherwise
    clean["GEMINI_BASE_URL"] = "http://127.0.0.1:9"
    return subprocess.run(
        [*command, *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_json_summary_and_exit_code(database_url: str) -> None:
    done = run_cli(
        [
            "--csv",
            str(REAL / "coin_Solana.csv"),
            "--csv",
            str(FORMATS / "btcusd_1-min_data.csv"),
            "--database-url",
            database_url,
            "--no-live",
            "--json",
        ],
        env={},
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "success"
    assert summary["sources"]["csv"]["inserted"] == 452 + 4
    assert {"read", "inserted", "updated", "unchanged", "rejected"} <= summary["sources"][
        "csv"
    ].keys()
    # every log line is JSON and carries the run id
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert logs and all(entry["run_id"] == summary["run_id"] for entry in logs)


def test_script_path_and_environment_defaults(tmp_path: Path) -> None:
    db = tmp_path / "env.db"
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "coin_Solana.csv").write_bytes((REAL / "coin_Solana.csv").read_bytes())
    double = start(GeminiDouble(now_ms=int(time.time() * 1000)))
    env = {
        "DATABASE_URL": f"sqlite:///{db}",
        "KAGGLE_DATA_PATH": str(raw),
        "COIN_IDS": "bitcoin,cardano",
        "GEMINI_BASE_URL": double.url,
        "GEMINI_CANDLE_INTERVALS": "1d",
    }
    try:
        done = run_cli(["--json"], env=env, module=False)
    finally:
        stop(double)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["sources"]["csv"]["inserted"] == 452
    gemini = summary["sources"]["gemini"]
    assert (gemini["status"], gemini["inserted"]) == ("success", 1 + 5)  # a ticker, 5 bars
    assert {"coin": "cardano", "status": "skipped", "reason": "Gemini lists no ADA pair"} in (
        gemini["details"]
    )
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM candle")).scalar() == 452 + 5
        assert conn.execute(text("SELECT trigger, status FROM etl_run")).one() == ("cli", "success")
    engine.dispose()


def test_failed_run_exits_non_zero_and_says_why(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'f.db'}"
    done = run_cli(["--csv", str(FORMATS / "unknown_layout.csv"), "--database-url", database], {})
    assert done.returncode == 1
    assert "failed" in done.stdout and "unrecognised CSV format" in done.stdout


def test_offline_live_source_leaves_the_run_partial_and_says_so(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'o.db'}"
    done = run_cli(["--csv", str(REAL / "coin_Solana.csv"), "--database-url", database], {})
    assert done.returncode == 0
    assert "partial" in done.stdout
    assert "live data skipped: Gemini could not be reached" in done.stdout


def test_unreachable_database_is_a_clear_failure(tmp_path: Path) -> None:
    url = "postgresql://nobody:hunter2@127.0.0.1:1/none"
    done = run_cli(["--csv", str(REAL / "coin_Solana.csv"), "--database-url", url], {})
    assert done.returncode == 1
    assert (
        "error: database postgresql+psycopg2://nobody:***@127.0.0.1:1/none unusable" in done.stderr
    )
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


def test_missing_path_is_a_clear_failure(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'f.db'}"
    done = run_cli(["--csv", str(tmp_path / "nope"), "--database-url", database, "--json"], {})
    assert done.returncode == 1
    assert "no such file or folder" in json.loads(done.stdout)["sources"]["csv"]["errors"][0]
