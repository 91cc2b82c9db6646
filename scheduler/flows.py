"""The Prefect flow: a thin shell over `etl` (no business logic here).

Tasks sit at the I/O boundaries: open the run, load the CSV files, fetch and load Gemini
(retried with backoff; the client also retries each call), then derived tables + ledger.
Each task passes ids and small summaries, never DataFrames, and the tasks do not cache
(`NO_CACHE`): their inputs hold an engine. The Prefect flow run id *is* the ETL run id, so
the same id is in Prefect's UI, `etl_run` and every log line.

States: `success` completes; `partial` completes with a warning log and a markdown
artifact; `failed` fails the flow.

(No `from __future__ import annotations` here: Prefect builds the parameter model from the
real annotations.)
"""

import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from etl.core.log import correlation
from etl.core.settings import Settings, ccxt_venues, csv_roots, get_settings
from etl.db.engine import create_db_engine
from etl.extract.csv_guard import check_regular, is_below, one_line, resolved, shown
from etl.extract.csv_reader import sniff
from etl.extract.zip_members import input_path
from etl.pipeline import RunSummary, begin_run, end_run
from etl.sources.base import RunContext, SourceResult
from etl.sources.csv_files import OUTSIDE_ROOTS, CsvSource, csv_inputs, discover
from etl.sources.gemini import GeminiSource


class EtlParameters(BaseModel):
    """The flow's typed parameters (validated by Prefect from the deployment or the UI)."""

    csv_paths: list[str] = Field(
        default_factory=list, description="files or folders; default KAGGLE_DATA_PATH"
    )
    symbols: list[str] | None = Field(
        default=None, description="coin ids for Gemini; default COIN_IDS"
    )
    live: bool = Field(default=True, description="fetch Gemini")
    dry_run: bool = Field(default=False, description="only list the files and their formats")


class RunFailedError(RuntimeError):
    """Raised by the flow when the ETL run failed (the flow run is then Failed)."""


def settings_for(params: EtlParameters) -> Settings:
    overrides: dict[str, Any] = {}
    if params.symbols:
        overrides["coin_ids"] = params.symbols
    return get_settings(**overrides)


def csv_paths(params: EtlParameters, settings: Settings) -> list[Path]:
    return [Path(p) for p in params.csv_paths] or [settings.kaggle_data_path]


@task(name="plan-csv-files", cache_policy=NO_CACHE)
def plan_files(paths: list[Path], allowed_roots: list[Path] | None = None) -> list[dict[str, str]]:
    """The dry run: each file and the format its header shows (nothing is written); a
    path outside `allowed_roots` is listed as refused and never opened."""
    plan = []
    refused = [p for p in paths if allowed_roots is not None and not is_below(p, allowed_roots)]
    for path in refused:
        plan.append({"file": shown(path), "format": "refused", "error": OUTSIDE_ROOTS})
    allowed = [p for p in paths if p not in refused]
    given = [resolved(p) for p in allowed]
    for path in discover(allowed):
        try:
            check_regular(path, given)  # no FIFO, no symlink out of the folders given
            for source in csv_inputs(path, given):  # a zip: each of its CSV members
                fmt, _ = sniff(source)
                plan.append({"file": shown(input_path(source)), "format": fmt.name})
        except Exception as exc:  # noqa: BLE001 - a plan lists problems, it does not stop
            plan.append({"file": shown(path), "format": "unrecognised", "error": one_line(exc)})
    return plan


@task(name="open-run", cache_policy=NO_CACHE)
def open_run(settings: Settings, engine: Engine, run_id: str) -> RunContext:
    return begin_run(settings, engine, trigger="prefect", run_id=run_id)


@task(name="load-csv", cache_policy=NO_CACHE)
def load_csv(
    ctx: RunContext, paths: list[Path], allowed_roots: list[Path] | None = None
) -> SourceResult:
    """Extract, validate, transform and load the CSV files (one atomic batch each); paths
    outside `allowed_roots` fail unopened."""
    with correlation(ctx.run_id):
        return CsvSource(paths, allowed_roots=allowed_roots).run(ctx)


@task(name="load-gemini", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 60])
def load_gemini(ctx: RunContext) -> SourceResult:
    """Fetch and load Gemini; a Gemini outage is a `failed` result, not an exception."""
    with correlation(ctx.run_id):
        return GeminiSource().run(ctx)


@task(name="load-venue", cache_policy=NO_CACHE)
def load_venue(ctx: RunContext, venue: str) -> SourceResult:
    """Fetch and load one venue through ccxt (`EXCHANGES`); its outage fails it alone."""
    # ccxt is the ETL image's dependency, loaded only when a venue is configured
    from etl.sources.ccxt_venues import VenueSource

    with correlation(ctx.run_id):
        return VenueSource(venue).run(ctx)


@task(name="close-run", cache_policy=NO_CACHE)
def close_run(
    ctx: RunContext, results: list[SourceResult], started: float, error: str | None
) -> RunSummary:
    """Metrics, quality reports and the ledger's final status."""
    with correlation(ctx.run_id):
        return end_run(ctx, results, started, error=error)


@flow(name="crypto-etl", log_prints=True)
def etl_flow(params: EtlParameters | None = None) -> dict[str, Any]:
    params = params or EtlParameters()
    settings = settings_for(params)
    paths = csv_paths(params, settings)
    # Anyone who can start a flow run chooses `csv_paths`: only files below
    # CSV_ALLOWED_ROOTS (default KAGGLE_DATA_PATH) are read, e.g. never /proc/self/environ.
    roots = csv_roots(settings)
    if params.dry_run:
        return {"dry_run": True, "files": plan_files(paths, roots)}
    run_id = str(flow_run.get_id() or "")
    engine = create_db_engine(settings)
    started = time.perf_counter()
    try:
        ctx = open_run(settings, engine, run_id)
        steps: list[tuple[str, Any]] = [("csv", lambda: load_csv(ctx, paths, roots))]
        if params.live:  # the venues of EXCHANGES, as `python -m etl.pipeline` runs them
            if "gemini" in settings.exchanges:
                steps.append(("gemini", lambda: load_gemini(ctx)))
            steps += [(v, lambda v=v: load_venue(ctx, v)) for v in ccxt_venues(settings)]
        results, error = _run_steps(steps)
        summary = close_run(ctx, results, started, error)
    finally:
        engine.dispose()
    _report(summary)
    return summary.as_dict()


def _run_steps(steps: list[tuple[str, Any]]) -> tuple[list[SourceResult], str | None]:
    results: list[SourceResult] = []
    for name, step in steps:
        try:
            results.append(step())
        except Exception as exc:  # a crashed task stops the run; the ledger keeps the rest
            error = f"{type(exc).__name__}: {exc}"
            results.append(SourceResult(name, status="failed", errors=[error]))
            return results, error
    return results, None


def _report(summary: RunSummary) -> None:
    logger = get_run_logger()
    if summary.status == "failed":
        raise RunFailedError(f"ETL run {summary.run_id} failed: {summary.error}")
    if summary.status == "partial":
        logger.warning("ETL run %s is partial: %s", summary.run_id, summary.error)
        lines = [
            f"- **{name}**: {s['status']}, {s['inserted']} inserted, {s['rejected']} rejected"
            for name, s in summary.sources.items()
        ]
        markdown = f"# Partial ETL run\n\n{summary.error}\n\n" + "\n".join(lines)
        create_markdown_artifact(
            key="etl-partial", markdown=markdown, description="a source failed; the others loaded"
        )
