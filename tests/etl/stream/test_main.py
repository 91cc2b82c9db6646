"""`python -m etl.stream` as a process: offline (as in CI) it retries quietly, and SIGTERM
stops it cleanly, its run closed in the ledger."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.processes import ROOT, command_env


def test_sigterm_stops_an_offline_worker_cleanly(tmp_path: Path) -> None:
    database = tmp_path / "stream.db"
    env = command_env(
        DATABASE_URL=f"sqlite:///{database}",
        GEMINI_BASE_URL="http://127.0.0.1:9",  # nothing listens: offline
        GEMINI_WS_URL="ws://127.0.0.1:9",
        GEMINI_RETRIES="1",
        STREAM_MAX_BACKOFF_SECONDS="0.5",
        LOG_JSON="false",
    )
    log_path = tmp_path / "stream.log"
    with log_path.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "etl.stream"], cwd=ROOT, env=env, stdout=sink, stderr=sink
        )
    try:
        # migrated, its signal handlers installed, retrying: then a few more refusals
        deadline = time.monotonic() + 60
        while "stream reconnecting" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        process.kill()
    log = log_path.read_text()
    assert process.returncode == 0, log
    assert "Traceback" not in log
    # The cap (0.5 s) is below the first step: one warning however many attempts.
    assert log.count("stream reconnecting") == 1, log
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        run = conn.execute(text("SELECT trigger, status, finished_at FROM etl_run")).one()
    engine.dispose()
    assert run[0] == "stream"
    assert run[1] == "partial"  # it never reached the exchange: last_error is set
    assert run[2] is not None
