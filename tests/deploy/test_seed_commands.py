"""The original README's commands, run as written: people arrive with them.

    PYTHONPATH=. uvicorn api.main:app --host 0.0.0.0 --port 8000   (here on 127.0.0.1)
    PYTHONPATH=. python etl/pipeline.py
    PYTHONPATH=. pytest -v                                         (outside CI, no servers)

The last one is run on a small subset in this virtualenv: building a fresh one per test run
would take minutes (`make test` does that from scratch in CI).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from etl.core.settings import get_settings
from etl.pipeline import run_pipeline
from etl.sources.csv_files import CsvSource
from tests.databases import REAL
from tests.processes import BIN, ROOT, command_env, free_port, serving

KEY = "seed-key-0123456789abcdef0123"


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_importing_api_main_reads_no_settings_and_app_is_built_on_first_access() -> None:
    # Settings that cannot load: a placeholder key in production. Importing must not notice.
    env = command_env(ENVIRONMENT="production", API_KEY="dev")
    imported = run([sys.executable, "-c", "import api.main"], env)
    assert imported.returncode == 0, imported.stderr
    accessed = run([sys.executable, "-c", "import api.main; api.main.app"], env)
    assert accessed.returncode != 0
    assert "refusing a placeholder or short API key in production" in accessed.stderr


def test_the_app_is_one_object_per_process() -> None:
    script = "import api.main as m; assert m.app is m.app; print(type(m.app).__name__)"
    done = run([sys.executable, "-c", script], command_env(API_KEY=KEY))
    assert (done.returncode, done.stdout.strip()) == (0, "FastAPI"), done.stderr


@pytest.mark.parametrize("reload", [False, True], ids=["plain", "reload"])
def test_uvicorn_api_main_app_serves_the_api(tmp_path: Path, reload: bool) -> None:
    database = f"sqlite:///{tmp_path / 'seed.db'}"
    summary = run_pipeline(
        get_settings(database_url=database, _env_file=None),
        sources=[CsvSource([REAL / "coin_Bitcoin.csv"])],
    )
    assert summary.status == "success", summary.error
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(["--reload"] if reload else []),
    ]
    env = command_env(DATABASE_URL=database, API_KEY=KEY)
    with serving(command, env, port, tmp_path / "uvicorn.log") as base:
        kubelet = httpx.get(f"{base}/health/ready", headers={"Host": "10.1.2.3:8000"})
        assert (kubelet.status_code, kubelet.json()) == (200, {"status": "ready"})
        latest = httpx.get(f"{base}/api/crypto/latest", headers={"X-API-Key": KEY})
        assert latest.status_code == 200, latest.text
        assert [row["symbol"] for row in latest.json()["data"]] == ["BTCUSD"]
        assert httpx.get(f"{base}/api/crypto/latest").status_code == 401


def test_pipeline_script_loads_the_raw_folder(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'seed.db'}"
    env = command_env(DATABASE_URL=database, GEMINI_RETRIES="1")
    done = run([sys.executable, "etl/pipeline.py"], env)
    # Gemini is a closed port here: the live source fails, the CSV folder loads (partial).
    assert done.returncode == 0, done.stderr
    assert "csv: success" in done.stdout and "live data skipped" in done.stdout
    raw_files = sorted(p.name for p in (ROOT / "data" / "raw").glob("*.csv"))
    engine = create_engine(database)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM candle")).scalar_one() > 20_000
        files = conn.execute(text("SELECT ref FROM source_batch WHERE kind = 'csv'")).scalars()
        loaded = sorted(Path(ref).name for ref in files)
        status = conn.execute(text("SELECT status FROM etl_run")).scalar_one()
    engine.dispose()
    assert loaded == raw_files
    assert status == "partial"


def test_pytest_outside_ci_skips_server_tests_with_the_reason() -> None:
    closed = free_port()
    env = command_env(
        TEST_POSTGRES_URL=f"postgresql://postgres@127.0.0.1:{closed}/test",
        TEST_REDIS_URL=f"redis://127.0.0.1:{closed}/0",
    )
    env.pop("CI", None)
    subset = [
        "tests/etl/db/test_db_pool.py",
        "tests/api/test_rate_limits.py::test_two_app_instances_share_one_limit_in_redis",
    ]
    done = run([str(BIN / "pytest"), "-v", "-p", "no:cacheprovider", *subset], env)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "test_the_pool_is_fixed_and_a_request_beyond_it_waits[sqlite] PASSED" in done.stdout
    assert f"PostgreSQL unreachable at postgresql://postgres@127.0.0.1:{closed}/test" in done.stdout
    assert f"Redis unreachable at redis://127.0.0.1:{closed}/0" in done.stdout
    assert "1 passed, 2 skipped" in done.stdout
