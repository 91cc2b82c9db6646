# The README's two commands: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lock run etl test lint bench clean
# Coverage floor per package, enforced by `make test` (and so by CI).
COVERAGE_FLOOR := 90

# Installs the hashed dev lock (every transitive dependency pinned); `make lock` regenerates
# the three locks after a requirements*.txt change.
# pip itself comes first, from its own lock: older pips (23.x) refuse a hashed lock whose
# packages ask for extras of one another (prefect -> sqlalchemy[asyncio]).
$(STAMP): requirements/pip.lock requirements/dev.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements/pip.lock
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	touch $(STAMP)

install: $(STAMP)

# One lock per image and one for development, for the images' Python (3.11 on Linux).
# uv comes with requirements-dev.txt; no index URL is written into the locks.
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --no-header \
	--python-version 3.11 --python-platform linux
# Versions already in a lock are kept (add `--upgrade` by hand to move them all).
lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(PY) -m pip install --quiet uv==0.13.8
	$(LOCK) requirements-api.txt -o requirements/api.lock
	$(LOCK) requirements.txt -o requirements/etl.lock
	$(LOCK) requirements-dev.txt -o requirements/dev.lock
	echo pip==26.3 | $(LOCK) - -o requirements/pip.lock

# Migrate, run the ETL on data/raw into SQLite (data/crypto.db unless DATABASE_URL), then
# serve the API on :8000 (a random local key is generated into .env on first run) with the
# stream worker beside it; Ctrl-C stops both (offline, the worker retries quietly).
run: install
	$(PY) -m etl.pipeline
	$(PY) -m etl.stream & stream=$$!; \
	trap 'kill $$stream 2>/dev/null; wait $$stream' EXIT INT TERM; \
	$(PY) -m api.serve --local

etl: run

test: install
	rm -f .coverage .coverage.*
	$(PY) -m pytest -n 2 --dist loadfile --cov --cov-report=
	$(PY) -m coverage report --include='etl/*' --fail-under=$(COVERAGE_FLOOR)
	$(PY) -m coverage report --include='api/*' --fail-under=$(COVERAGE_FLOOR)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy etl api scheduler tests bench
	$(VENV)/bin/lint-imports

# The operator's `docker compose up` without a container engine: each compose service's own
# command and environment as local processes, against local PostgreSQL, Redis and a real
# Prefect server (tests/deploy/rehearse.py says what is mapped and what is not rehearsed).
.PHONY: rehearse
rehearse: install
	$(PY) -m pytest -q tests/deploy/test_compose.py tests/deploy/test_rehearsal.py

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(PY) bench/etl_load.py
	$(PY) bench/derived_load.py
	$(PY) bench/api_load.py
	$(PY) bench/candles_load.py
	$(PY) bench/stream_load.py
	$(PY) bench/dashboard_load.py
	$(PY) bench/startup.py

clean:
	rm -rf $(VENV) data/crypto.db data/crypto.db-* .pytest_cache .mypy_cache .ruff_cache
