"""`/metrics`: Prometheus exposition (request counts and latency by route and status,
rate-limit refusals, and, read from the ledger at scrape time, ETL rows and durations per
source of the last batch run, data age per series, and the stream worker's state)."""

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api.deps import RegistryDep
from api.rate_limit import RouteLimits
from api.responses import freshness
from etl.core.clock import utc_now_ms
from etl.read.assets import list_assets
from etl.read.prices import latest_metrics
from etl.read.runs import StreamReport, list_runs, stream_report
from etl.read.venues import latest_venue_quotes
from etl.transform.consolidate import ConsolidatedPrice, ConsolidationRules, consolidated_price


class VenueFamilies:
    """Per asset: each fresh venue's price, whether the consolidated price used it, and
    the spread between the venues used ((max - min) / consolidated price)."""

    def __init__(self) -> None:
        self.price = GaugeMetricFamily(
            "venue_price", "A fresh venue's price (mid, else last)", labels=["symbol", "source"]
        )
        self.used = GaugeMetricFamily(
            "venue_used",
            "1 when the consolidated price used the venue",
            labels=["symbol", "source"],
        )
        self.spread = GaugeMetricFamily(
            "venue_spread_ratio",
            "(max - min) of the venues used over the consolidated price",
            labels=["symbol"],
        )

    def families(self) -> tuple[GaugeMetricFamily, ...]:
        return (self.price, self.used, self.spread)


def _venue_metrics(families: VenueFamilies, symbol: str, result: ConsolidatedPrice) -> None:
    for venue in result.venues:
        if venue.price is not None and venue.reason != "stale":
            families.price.add_metric([symbol, venue.source], venue.price)
            families.used.add_metric([symbol, venue.source], float(venue.used))
    used = [v.price for v in result.venues if v.used and v.price is not None]
    if result.price and len(used) >= 2:
        families.spread.add_metric([symbol], (max(used) - min(used)) / result.price)


class LedgerCollector(Collector):
    def __init__(self, engine: Engine, rules: ConsolidationRules) -> None:
        self.engine, self.rules = engine, rules

    def collect(self) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "etl_last_run_rows", "Rows of the last ETL run", labels=["source", "outcome"]
        )
        duration = GaugeMetricFamily(
            "etl_last_run_duration_seconds", "Duration of the last ETL run"
        )
        failed = GaugeMetricFamily(
            "etl_last_run_failed", "1 when the last run failed", labels=["status"]
        )
        data_age = GaugeMetricFamily(
            "data_age_seconds",
            "Age of the newest bar's close",
            labels=["symbol", "source", "interval"],
        )
        venues = VenueFamilies()
        try:
            with self.engine.connect() as conn:
                runs = list_runs(conn, 1, batch_only=True)
                if runs:
                    run = runs[0]
                    for source, counts in (run["sources"] or {}).items():
                        for outcome in ("read", "inserted", "updated", "unchanged", "rejected"):
                            rows.add_metric([source, outcome], float(counts.get(outcome, 0)))
                    if run["finished_at"] is not None:
                        duration.add_metric(
                            [], (int(run["finished_at"]) - int(run["started_at"])) / 1000
                        )
                    failed.add_metric([run["status"]], 1.0 if run["status"] == "failed" else 0.0)
                now_ms = utc_now_ms()
                for asset in list_assets(conn):
                    for m in latest_metrics(conn, asset.id):
                        _, age, _ = freshness(m, stale_after_intervals=0)
                        data_age.add_metric([asset.symbol, m["source"], m["interval"]], age)
                    result = consolidated_price(
                        latest_venue_quotes(conn, asset.id), now_ms=now_ms, rules=self.rules
                    )
                    _venue_metrics(venues, asset.symbol, result)
                stream = stream_report(conn, utc_now_ms())
        except SQLAlchemyError:
            stream = None
        yield from (rows, duration, failed, data_age, *venues.families())
        if stream is not None:
            yield from _stream_metrics(stream, utc_now_ms())


def _stream_metrics(report: StreamReport, now_ms: int) -> Iterator[Metric]:
    """The stream worker's last report (its counts restart with the worker, as counters
    do with a process)."""
    state = GaugeMetricFamily(
        "stream_state", "1 for the stream worker's current state", labels=["state"]
    )
    for name in ("connected", "disconnected", "stopped", "unresponsive"):
        state.add_metric([name], 1.0 if report.state == name else 0.0)
    yield state
    yield GaugeMetricFamily("stream_connected", "1 while connected", value=float(report.connected))
    for name, value, text in (
        ("stream_messages", report.messages, "Messages received"),
        ("stream_bad_messages", report.bad_messages, "Messages quarantined"),
        ("stream_reconnects", report.reconnects, "Reconnections"),
    ):
        yield CounterMetricFamily(name, text, value=float(value))
    for name, at, text in (
        ("stream_last_message_age_seconds", report.last_message_ms, "Since the last message"),
        ("stream_report_age_seconds", report.reported_ms, "Since the worker last reported"),
    ):
        if at is not None:
            yield GaugeMetricFamily(name, text, value=max(0.0, (now_ms - at) / 1000))


def build(limits: RouteLimits) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get(
        "/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}}
    )
    @limits.data
    def metrics(request: Request, registry: RegistryDep) -> Response:  # noqa: ARG001
        """Prometheus text exposition."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
