"""Start-up (issue 14): `--help` and a run with nothing new import neither pandas nor the
live stack nor Alembic; the first file with something to load brings them in and loads.
Checked on what the interpreter itself reports (`-X importtime`), not timed: the time is
the benchmark's (bench/startup.py, docs/performance.md)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.databases import REAL
from tests.processes import ROOT, command_env

# What a cheap run must not load: the data stack, the live clients, the migration tool.
HEAVY = {"pandas", "numpy", "pyarrow", "alembic", "requests", "redis", "ccxt", "tqdm"}


def imported(args: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -m etl.pipeline args`; its outcome and every top-level package imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "etl.pipeline", *args],
        cwd=ROOT,
        env=command_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    modules = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return done, modules


def test_help_loads_nothing_heavy() -> None:
    done, modules = imported(["--help"])
    assert done.returncode == 0, done.stderr
    assert "--no-live" in done.stdout
    assert "sqlalchemy" in modules  # the report is read right: what is imported shows
    assert modules & HEAVY == set()


def test_a_run_with_nothing_new_loads_nothing_heavy_and_a_new_file_still_loads(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(REAL / "coin_Solana.csv", folder)
    args = ["--csv", str(folder), "--database-url", database_url, "--no-live", "--json"]

    first, first_modules = imported(args)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["sources"]["csv"]["inserted"] == 452
    assert {"pandas", "alembic"} <= first_modules  # a load (and a migration) needs them

    again, again_modules = imported(args)
    assert again.returncode == 0, again.stderr
    csv = json.loads(again.stdout)["sources"]["csv"]
    assert [d["status"] for d in csv["details"]] == ["skipped"]
    assert again_modules & HEAVY == set()

    shutil.copy(REAL / "coin_Cardano.csv", folder)  # something new: the loading stack returns
    third, third_modules = imported(args)
    assert third.returncode == 0, third.stderr
    csv = json.loads(third.stdout)["sources"]["csv"]
    assert sorted(d["status"] for d in csv["details"]) == ["loaded", "skipped"]
    assert csv["inserted"] == 1374
    assert "pandas" in third_modules
    assert "alembic" not in third_modules  # the schema was already at head
