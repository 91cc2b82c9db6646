"""The deployment's schedule, built from settings: `ETL_SCHEDULE_INTERVAL_SECONDS` when set,
else `ETL_SCHEDULE_CRON` (default every 15 minutes)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from etl.core.settings import Settings

DEPLOYMENT_NAME = "crypto-etl-scheduled"


def schedule_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for `flow.serve` / `flow.to_deployment`: `interval` or `cron`."""
    if settings.etl_schedule_interval_seconds:
        return {"interval": timedelta(seconds=settings.etl_schedule_interval_seconds)}
    return {"cron": settings.etl_schedule_cron}
