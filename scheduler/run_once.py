"""`python -m scheduler.run_once`: one ETL run, for cron (no Prefect server needed).

It is the CLI pipeline (`python -m etl.pipeline`), with the same options; a crontab line:

    */15 * * * * cd /opt/crypto-etl && .venv/bin/python -m scheduler.run_once --json >> etl.log 2>&1
"""

from __future__ import annotations

import sys

from etl.pipeline import main

if __name__ == "__main__":
    sys.exit(main(["--trigger", "cron", *sys.argv[1:]]))
