"""Start-up benchmark: process start to exit of the pipeline's cheap runs (issue 14).

    python bench/startup.py [--runs 20] [--database sqlite|postgres|both] [--before PATH]

Each round runs, one after another (so the machine's moods hit every command alike):
- `python -c pass`: the interpreter's own start, the floor;
- `python -c "import sqlalchemy"`: the floor of anything that talks to a database;
- `python -m etl.pipeline --help`;
- `python -m etl.pipeline --no-live` on an up-to-date database (the real sample in
  data/raw, loaded by one untimed run first): SQLite, PostgreSQL (a fresh database on the
  test server), or both.

Reports the median and the fastest of `--runs` rounds, in seconds and as ratios to the two
floors, and writes bench/out/startup.json. `--before PATH` adds another checkout's
`etl.pipeline` commands to the same rounds, on the same databases, with this interpreter
(e.g. the commit before: `git archive COMMIT | tar -x -C PATH`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.databases import postgres_database  # noqa: E402
from tests.processes import command_env  # noqa: E402

OUT = ROOT / "bench" / "out" / "startup.json"
PIPELINE = [sys.executable, "-m", "etl.pipeline"]
FLOORS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import sqlalchemy'": [sys.executable, "-c", "import sqlalchemy"],
}


Command = tuple[list[str], Path]  # argv, and the checkout it runs in


def run(command: list[str], code: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=code, env=command_env(), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return elapsed


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'startup.db'}"
        return
    with postgres_database("bench_startup") as url:
        yield url.render_as_string(hide_password=False)


def measure(runs: int, kinds: list[str], before: Path | None, folder: Path) -> dict[str, Any]:
    data = str(ROOT / "data" / "raw")
    codes = {"": ROOT} | ({"before: ": before} if before else {})
    commands: dict[str, Command] = {name: (argv, ROOT) for name, argv in FLOORS.items()}
    for label, code in codes.items():
        commands[f"{label}etl.pipeline --help"] = ([*PIPELINE, "--help"], code)
    with ExitStack() as stack:
        for kind in kinds:
            url = stack.enter_context(database(kind, folder))
            no_live = [*PIPELINE, "--csv", data, "--database-url", url, "--no-live"]
            run(no_live, ROOT)  # migrate and load: the timed runs find nothing new
            for label, code in codes.items():
                commands[f"{label}etl.pipeline --no-live, up-to-date {kind}"] = (no_live, code)
        for argv, code in commands.values():  # warm the page cache and the bytecode
            run(argv, code)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, (argv, code) in commands.items():
                samples[name].append(run(argv, code))
    return {
        "runs": runs,
        "before": str(before) if before else None,
        "figures": {
            name: {"median_s": statistics.median(values), "min_s": min(values)}
            for name, values in samples.items()
        },
        "samples": samples,
    }


def report(result: dict[str, Any]) -> None:
    figures = result["figures"]
    bare = figures["python -c pass"]["median_s"]
    sqlalchemy = figures["python -c 'import sqlalchemy'"]["median_s"]
    print(f"{result['runs']} runs each; median / fastest, and the medians' ratios to the floors")
    print(f"  {'command':56} {'median':>8} {'fastest':>8} {'x pass':>7} {'x sqla':>7}")
    for name, f in figures.items():
        print(
            f"  {name:56} {f['median_s']:7.3f}s {f['min_s']:7.3f}s "
            f"{f['median_s'] / bare:7.1f} {f['median_s'] / sqlalchemy:7.2f}"
        )
    slow = [
        n
        for n, f in figures.items()
        if "--no-live" in n and not n.startswith("before") and f["median_s"] >= 1.0
    ]
    verdict = "NOT met" if slow else "met"
    print(f"  issue 14: --no-live on an up-to-date database under 1.0 s: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed rounds")
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--before", type=Path, help="another checkout, timed in the same rounds")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        before = args.before.resolve() if args.before else None
        result = measure(args.runs, kinds, before, Path(tmp))
    report(result)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
