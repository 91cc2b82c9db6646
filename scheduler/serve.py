"""`python -m scheduler.serve`: serve the scheduled ETL deployment (Prefect 3 `flow.serve`).

Talks to the Prefect server at `PREFECT_API_URL`; the process runs the flow on schedule.
"""

from __future__ import annotations

import sys

from etl.core.settings import get_settings
from scheduler.flows import etl_flow
from scheduler.schedule import DEPLOYMENT_NAME, schedule_kwargs


def main() -> int:
    settings = get_settings()
    etl_flow.serve(name=DEPLOYMENT_NAME, tags=["etl"], **schedule_kwargs(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
