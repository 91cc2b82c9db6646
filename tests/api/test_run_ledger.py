"""The run ledger as the API serves it: masked like the logs, bounded, and listed without
per-file details."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from etl.db.engine import create_db_engine, migrate
from etl.load.ledger import MAX_STORED_ERRORS, MAX_STORED_TEXT, finish_run, start_run
from etl.pipeline import run_pipeline
from etl.sources.csv_files import CsvSource
from tests.api.helpers import KEY, api_settings, problem
from tests.databases import REAL

GEMINI_SECRET = 'acct-"quoted"\\secret-9'  # noqa: S105 - JSON-escaped when stored as JSON


def _client(database_url: str) -> TestClient:
    client = TestClient(create_app(api_settings(database_url)), raise_server_exceptions=False)
    client.headers["X-API-Key"] = KEY
    return client


def test_a_file_echoing_secrets_leaves_them_masked_in_the_ledger(
    database_url: str, tmp_path: Path
) -> None:
    """`/proc/self/environ` given as a CSV: the detection error quotes its first line."""
    environ = tmp_path / "environ.csv"
    environ.write_bytes(
        f"API_KEYS={KEY}\0GEMINI_API_KEY={GEMINI_SECRET}\0"
        "REDIS_URL=redis://:redis-pass-42@cache:6379/0\n".encode()
    )
    settings = api_settings(database_url, gemini_api_key=GEMINI_SECRET)
    sources = [CsvSource([environ, REAL / "coin_Bitcoin.csv"])]
    summary = run_pipeline(settings, sources=sources)
    assert summary.status == "partial"
    with _client(database_url) as client:
        one = client.get(f"/api/crypto/runs/{summary.run_id}")
        listed = client.get("/api/crypto/runs")
    # what the CLI prints and Prefect's artifact shows: the summary, masked as stored
    stored = one.text + listed.text + json.dumps(summary.as_dict())
    for secret in (KEY, GEMINI_SECRET, json.dumps(GEMINI_SECRET)[1:-1], "redis-pass-42"):
        assert secret not in stored, secret
    detail = one.json()["sources"]["csv"]["details"][0]
    assert detail["status"] == "failed" and "API_KEYS=***" in detail["error"]
    assert "redis://:***@cache" in one.json()["error"]


def test_stored_errors_are_bounded(database_url: str) -> None:
    engine = create_db_engine(api_settings(database_url))
    migrate(engine)
    run_id = str(uuid.uuid4())
    start_run(engine, run_id=run_id, trigger="test", now_ms=1)
    errors = [f"file {i}: " + "x" * 5000 for i in range(500)]
    sources = {"csv": {"status": "failed", "read": 0, "errors": errors, "details": []}}
    kept_sources, kept_error = finish_run(
        engine, run_id=run_id, status="failed", sources=sources, error="y" * 100_000, now_ms=2
    )
    engine.dispose()
    with _client(database_url) as client:
        run = client.get(f"/api/crypto/runs/{run_id}").json()
        listed = client.get("/api/crypto/runs").json()["data"][0]
    assert len(run["error"]) == MAX_STORED_TEXT and run["error"] == kept_error
    assert run["sources"] == kept_sources  # what the ledger stored is what it returned
    kept = run["sources"]["csv"]["errors"]
    assert len(kept) == MAX_STORED_ERRORS + 1 and kept[-1] == "... and 450 more errors"
    assert all(len(e) <= MAX_STORED_TEXT for e in kept)
    assert listed["sources"]["csv"] == {
        "status": "failed",
        "read": 0,
        "inserted": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "error_count": MAX_STORED_ERRORS + 1,
    }


def test_the_run_list_has_no_per_file_details_and_a_bounded_limit(api_database: str) -> None:
    with _client(api_database) as client:
        listed = client.get("/api/crypto/runs")
        one = client.get(f"/api/crypto/runs/{listed.json()['data'][0]['id']}").json()
        too_many = client.get("/api/crypto/runs", params={"limit": 101})
        schema = client.get("/openapi.json").json()
    csv = listed.json()["data"][0]["sources"]["csv"]
    assert "details" not in csv and csv["error_count"] == 0
    assert csv["inserted"] == one["sources"]["csv"]["inserted"] > 0
    assert len(one["sources"]["csv"]["details"]) == 4  # the details stay on /runs/{id}
    assert problem(too_many)["code"] == "validation_error"
    components = schema["components"]["schemas"]
    item = components["RunList"]["properties"]["data"]["items"]["$ref"]
    assert item == "#/components/schemas/RunSummary"
    totals = components["SourceTotals"]["properties"]
    assert "details" not in totals and totals["error_count"]["type"] == "integer"
