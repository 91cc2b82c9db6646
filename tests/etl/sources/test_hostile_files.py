"""One bad file never stops a run: a hostile corpus beside one valid file (issue 9)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from etl.core.settings import Settings
from etl.pipeline import RunSummary
from tests import hostile_corpus
from tests.databases import REAL
from tests.helpers import file_detail, rows, run_csv, scalar

RUN_TIMEOUT_S = 120  # a FIFO or /dev/zero read would hang forever: fail instead


def run_bounded(settings: Settings, engine: Engine, paths: list[Path]) -> RunSummary:
    """The run in a daemon thread, so a hang fails the test instead of the session."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["summary"] = run_csv(settings, engine, paths)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(RUN_TIMEOUT_S)
    if worker.is_alive():
        pytest.fail(f"the run did not finish within {RUN_TIMEOUT_S}s (a file hangs it)")
    if "error" in outcome:
        raise outcome["error"]
    summary: RunSummary = outcome["summary"]
    return summary


def reasons_for(engine: Engine, name: str) -> list[str]:
    stored = rows(engine, "SELECT file, reason FROM rejected_row")
    return [reason for file, reason in stored if Path(file).name == name]


def test_each_hostile_file_fails_alone_and_the_valid_file_loads(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    hostile_corpus.build(folder, tmp_path / "elsewhere")
    summary = run_bounded(settings, engine, [folder])
    assert summary.status == "partial", summary.error
    assert file_detail(summary, hostile_corpus.VALID)["status"] == "loaded"
    solana = "SELECT count(*) FROM candle c JOIN asset a ON a.id = c.asset_id WHERE a.symbol = :s"
    assert scalar(engine, solana, s="SOLUSD") == hostile_corpus.VALID_ROWS
    for name, (outcome, text) in hostile_corpus.EXPECTED.items():
        detail = file_detail(summary, name)
        if outcome == "failed":
            assert detail["status"] == "failed", (name, detail)
            assert text in detail["error"] and "\n" not in detail["error"], (name, detail)
        else:
            assert detail["status"] == "loaded", (name, detail)
            assert any(text in reason for reason in reasons_for(engine, name)), name
    # a header with no rows loads nothing and says so
    assert file_detail(summary, "header_only.csv")["read"] == 0
    # the coin named by the good row of a file with a bad row still loads
    assert scalar(engine, solana, s="WIDEUSD") == 1
    assert scalar(engine, solana, s="LONGUSD") == 2


def test_quarantined_raw_text_is_bounded_and_storable(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    hostile_corpus.build(folder, tmp_path / "elsewhere")
    summary = run_bounded(settings, engine, [folder])
    stored = {
        (Path(file).name, line): raw
        for file, line, raw in rows(engine, "SELECT file, line, raw FROM rejected_row")
    }
    long_raw = stored[("long_line.csv", 3)]
    assert long_raw.startswith("9,yyyy") and len(long_raw) <= 4100
    assert "\\x00" in stored[("nul.csv", 2)]  # NUL kept visibly; PostgreSQL refuses a NUL
    error = file_detail(summary, "one_long_line.csv")["error"]
    assert len(error) < 1000 and "x" * 300 not in error


def test_a_detection_failure_echoes_at_most_200_printable_characters(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "environ.csv"
    secret_tail = "TAIL_SECRET=do-not-echo-me"  # noqa: S105 - fake, must not be echoed
    path.write_text("PATH=/usr/bin\x00HOME=/root\x00" + "A" * 300 + "\x00" + secret_tail + "\n")
    summary = run_bounded(settings, engine, [path, REAL / "coin_Solana.csv"])
    error = file_detail(summary, "environ.csv")["error"]
    assert "PATH=/usr/bin" in error  # the start is shown, to say what was found
    assert secret_tail not in error and "\x00" not in error
    assert secret_tail not in (summary.error or "")
    assert "A" * 201 not in error


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file: nothing is denied")
def test_a_permission_denied_file_fails_alone(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    denied = tmp_path / "denied.csv"
    shutil.copy(REAL / "coin_Cardano.csv", denied)
    denied.chmod(0)
    summary = run_bounded(settings, engine, [denied, REAL / "coin_Solana.csv"])
    assert summary.status == "partial"
    assert "Permission denied" in file_detail(summary, "denied.csv")["error"]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_a_permission_denied_file_fails_alone_for_root_without_dac_override(
    tmp_path: Path,
) -> None:
    """CI runs as root, who reads any file; the pipeline run without the two capabilities
    that let root ignore file modes meets a real EACCES, as any other user would."""
    folder = tmp_path / "csv"
    folder.mkdir()
    denied = folder / "denied.csv"
    shutil.copy(REAL / "coin_Cardano.csv", denied)
    denied.chmod(0)
    shutil.copy(REAL / "coin_Solana.csv", folder / "coin_Solana.csv")
    caps = "-dac_override,-dac_read_search"
    done = subprocess.run(
        [
            *("setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--"),
            *(sys.executable, "-m", "etl.pipeline", "--no-live", "--json"),
            *("--csv", str(folder), "--database-url", f"sqlite:///{tmp_path / 'run.db'}"),
        ],
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "LOG_LEVEL": "ERROR"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    details = {Path(d["file"]).name: d for d in summary["sources"]["csv"]["details"]}
    assert summary["status"] == "partial"
    assert details["denied.csv"]["status"] == "failed"
    assert "Permission denied" in details["denied.csv"]["error"]
    assert details["coin_Solana.csv"]["status"] == "loaded"


def test_a_missing_path_or_a_symlink_loop_given_directly_fails_alone(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    summary = run_bounded(settings, engine, [tmp_path / "nope", loop, REAL / "coin_Solana.csv"])
    assert summary.status == "partial"
    assert file_detail(summary, "nope")["error"].endswith("nope: no such file or folder")
    assert "Too many levels of symbolic links" in file_detail(summary, "loop.csv")["error"]
    assert scalar(engine, "SELECT count(*) FROM candle") == 452


def test_infinite_numbers_are_quarantined_not_stored(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "mine.csv"
    bars = [f"BTC,2024-01-0{day}T00:00:00Z,1,2,1,2,3" for day in range(3, 6)]
    path.write_text(
        "symbol,timestamp,open,high,low,close,volume\n"
        "BTC,2024-01-01T00:00:00Z,1,inf,1,2,5\nBTC,2024-01-02T00:00:00Z,1,2,1,2,-inf\n"
        + "\n".join(bars)
        + "\n"
    )
    summary = run_bounded(settings, engine, [path])
    assert summary.status == "success"
    assert scalar(engine, "SELECT count(*) FROM candle") == 3
    assert [r for (r,) in rows(engine, "SELECT reason FROM rejected_row ORDER BY line")] == [
        "parse_error: infinite high",
        "parse_error: infinite volume",
    ]
