"""The pipeline: extract -> validate -> transform -> load, recorded in the run ledger.

    python -m etl.pipeline [--csv PATH ...] [--symbols bitcoin,ethereum] [--database-url URL]
                           [--no-live] [--json] [--csv-symbol BTCUSD]

Run status: `success` when every source loaded, `partial` when a source (or some of its
files) failed but others loaded, `failed` when nothing could load or the database failed
mid-batch (that batch is rolled back; re-running completes the job). Exit code 0 for
`success` and `partial`, 1 for `failed`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python etl/pipeline.py` from the project root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from etl.core.assets import AssetRegistry
from etl.core.clock import utc_now_ms
from etl.core.log import configure_logging, correlation, secrets_of
from etl.core.settings import Settings, ccxt_venues, get_settings
from etl.db.engine import create_db_engine, migrate, write_transaction
from etl.load.ledger import finish_run, insert_quality, start_run, upsert_metric
from etl.sources.base import RunContext, Source, SourceResult
from etl.sources.csv_files import CsvSource
from etl.transform.quality import quality_report

log = logging.getLogger("etl.pipeline")


@dataclass
class RunSummary:
    run_id: str
    status: str
    duration_s: float
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "duration_s": self.duration_s,
            "sources": self.sources,
            "error": self.error,
        }


def overall_status(results: Sequence[SourceResult]) -> str:
    ran = [r for r in results if r.status != "skipped"]
    if ran and all(r.status == "failed" for r in ran):
        return "failed"
    if any(r.status in ("failed", "partial") for r in ran):
        return "partial"
    return "success"


def refresh_derived(ctx: RunContext, results: Sequence[SourceResult]) -> None:
    """Metrics and quality reports for every series this run loaded into: the quality
    profile from the statistics the loader kept (`series_stats`), the metrics from the
    newest window; no read of a whole series."""
    if not any(result.series for result in results):
        return  # nothing loaded: the metrics' pandas is not even imported
    from etl.read.series import latest_spread, series_profile, series_window
    from etl.transform.metrics import series_metrics

    with write_transaction(ctx.engine) as conn:
        for result in results:
            for key, stats in result.series.items():
                profile = series_profile(conn, key)
                if profile is None:
                    continue
                metrics = series_metrics(series_window(conn, key), key[2])
                metrics["spread"] = latest_spread(conn, key[0], key[1])
                upsert_metric(conn, key, metrics, run_id=ctx.run_id, now_ms=ctx.now_ms)
                report = quality_report(profile, interval=key[2], stats=stats, now_ms=ctx.now_ms)
                insert_quality(conn, key, report, run_id=ctx.run_id, now_ms=ctx.now_ms)


def begin_run(
    settings: Settings, engine: Engine, *, trigger: str, run_id: str, show_progress: bool = False
) -> RunContext:
    """Migrate if needed and open the run in the ledger (status `running`)."""
    migrate(engine)
    now_ms = utc_now_ms()
    start_run(engine, run_id=run_id, trigger=trigger, now_ms=now_ms)
    log.info("run started", extra={"trigger": trigger})
    return RunContext(engine, settings, run_id, AssetRegistry(), now_ms, show_progress)


def end_run(
    ctx: RunContext, results: list[SourceResult], started: float, error: str | None = None
) -> RunSummary:
    """Derived tables for what loaded, the run's status, and the ledger's last word.

    `error` is a failure that stopped the run (a database error, a crashed source): the
    run is `failed` and keeps what the earlier sources did."""
    if error is None:
        try:
            refresh_derived(ctx, results)
        except Exception as exc:  # the run must be recorded as failed whatever broke
            log.exception("derived tables failed")
            error = f"{type(exc).__name__}: {exc}"
    status = "failed" if error is not None else overall_status(results)
    if error is None and any(r.errors for r in results):
        error = "; ".join(e for r in results for e in r.errors)[:2000]
    # The summary says what the ledger stores (masked, bounded): the CLI prints it and
    # Prefect shows it, so it must leak no more than the ledger does.
    sources, error = finish_run(
        ctx.engine,
        run_id=ctx.run_id,
        status=status,
        sources={r.name: r.summary() for r in results},
        error=error,
        now_ms=utc_now_ms(),
        secrets=secrets_of(ctx.settings),
    )
    summary = RunSummary(
        run_id=ctx.run_id,
        status=status,
        duration_s=round(time.perf_counter() - started, 3),
        sources=sources,
        error=error,
    )
    log.info("run finished", extra={"status": summary.status, "duration_s": summary.duration_s})
    return summary


def run_pipeline(
    settings: Settings,
    *,
    sources: Sequence[Source],
    engine: Engine | None = None,
    trigger: str = "cli",
    run_id: str | None = None,
    show_progress: bool = False,
) -> RunSummary:
    """Run every source, then the derived tables; the ledger records the outcome."""
    run_id = run_id or str(uuid.uuid4())
    own_engine = engine is None
    engine = engine or create_db_engine(settings)
    started = time.perf_counter()
    try:
        with correlation(run_id):
            ctx = begin_run(
                settings, engine, trigger=trigger, run_id=run_id, show_progress=show_progress
            )
            results: list[SourceResult] = []
            for source in sources:
                try:
                    results.append(source.run(ctx))
                except Exception as exc:  # stop here; the ledger keeps what ran
                    log.exception("source failed", extra={"source": source.name})
                    error = f"{type(exc).__name__}: {exc}"
                    results.append(SourceResult(source.name, status="failed", errors=[error]))
                    return end_run(ctx, results, started, error=error)
            return end_run(ctx, results, started)
    finally:
        if own_engine:
            engine.dispose()


def live_sources(settings: Settings) -> list[Source]:
    """The venues of `EXCHANGES`: Gemini's own source, then one ccxt source per other venue."""
    # Imported here, by the runs that poll venues: the live stack (requests, the breakers'
    # Redis client, rate limiters, pandas; ccxt, the ETL image's dependency, which the API
    # image, importing this module too, never loads) is no cost to `--no-live` or `--help`.
    sources: list[Source] = []
    if "gemini" in settings.exchanges:
        from etl.sources.gemini import GeminiSource

        sources.append(GeminiSource())
    venues = ccxt_venues(settings)
    if venues:
        from etl.sources.ccxt_venues import VenueSource

        sources.extend(VenueSource(venue) for venue in venues)
    return sources


def build_sources(args: argparse.Namespace, settings: Settings) -> list[Source]:
    csv_paths = [Path(p) for p in args.csv] if args.csv else [settings.kaggle_data_path]
    sources: list[Source] = [CsvSource(csv_paths, default_symbol=args.csv_symbol)]
    if not args.no_live:
        sources.extend(live_sources(settings))
    return sources


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m etl.pipeline", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--csv",
        action="append",
        metavar="PATH",
        help="CSV file or folder (repeatable); default KAGGLE_DATA_PATH or data/raw",
    )
    parser.add_argument(
        "--symbols", help="coins for live sources, e.g. bitcoin,ethereum (COIN_IDS)"
    )
    parser.add_argument("--database-url", help="SQLAlchemy URL (DATABASE_URL)")
    parser.add_argument("--no-live", action="store_true", help="skip live sources")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON")
    parser.add_argument("--csv-symbol", help="asset for CSV files that name none (e.g. BTCUSD)")
    parser.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides: dict[str, object] = {}
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.symbols:
        overrides["coin_ids"] = args.symbols
    settings = get_settings(**overrides)
    configure_logging(settings)
    try:
        summary = run_pipeline(
            settings,
            sources=build_sources(args, settings),
            trigger=args.trigger,
            show_progress=sys.stderr.isatty(),
        )
    except SQLAlchemyError as exc:  # nothing can be recorded: the database itself failed
        url = make_url(settings.database_url).render_as_string(hide_password=True)
        sys.stderr.write(f"error: database {url} unusable: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(summary.as_dict()) + "\n")
    else:
        sys.stdout.write(format_summary(summary))
    return 1 if summary.status == "failed" else 0


def _detail_lines(details: list[dict[str, Any]]) -> list[str]:
    lines = []
    for d in details:
        if "file" in d:
            note = d.get("error") or f"{d.get('read', 0)} rows, {d.get('rejected', 0)} rejected"
            lines.append(f"{d['status']:8} {d['file']}: {note}")
        elif d["status"] == "calls":
            failures = d["failures"] or "none"
            lines.append(f"calls {d['calls']}, failures {failures}, breaker {d['breaker']}")
        elif d["status"] == "skipped":
            lines.append(f"skipped  {d['coin']}: {d['reason']}")
        else:
            parts = {k: v for k, v in d.items() if k not in ("coin", "symbol", "status")}
            lines.append(f"{d['status']:8} {d['coin']} ({d['symbol']}): {parts}")
    return lines


def format_summary(summary: RunSummary) -> str:
    lines = [f"run {summary.run_id}: {summary.status} in {summary.duration_s:.2f}s"]
    for name, counts in summary.sources.items():
        numbers = ", ".join(
            f"{k} {counts[k]}" for k in ("read", "inserted", "updated", "unchanged", "rejected")
        )
        lines.append(f"  {name}: {counts['status']} ({numbers})")
        lines.extend(f"    {line}" for line in _detail_lines(counts.get("details", [])))
        if name == "gemini" and counts["status"] == "failed":
            lines.append("    live data skipped: Gemini could not be reached (see errors)")
        elif name != "csv" and counts["status"] == "failed":
            lines.append(f"    live data skipped: {name} could not be reached (see errors)")
    if summary.error:
        lines.append(f"  error: {summary.error}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
