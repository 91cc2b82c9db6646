# The README's two commands: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run etl test lint bench clean

$(STAMP): requirements.txt requirements-api.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# Migrate, run the ETL on data/raw into SQLite (data/crypto.db unless DATABASE_URL), then
# serve the API on :8000 (a random local key is generated into .env on first run).
run: install
	$(PY) -m etl.pipeline
	$(PY) -m api.serve --local

etl: run

test: install
	$(PY) -m pytest -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy etl api scheduler tests bench

# The operator's `docker compose up` without a container engine: each compose service's own
# command and environment as local processes, against local PostgreSQL, Redis and a real
# Prefect server (tests/deploy/rehearse.py says what is mapped and what is not rehearsed).
.PHONY: rehearse
rehearse: install
	$(PY) -m pytest -q tests/deploy/test_compose.py tests/deploy/test_rehearsal.py

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/etl_load.py
	$(PY) bench/api_load.py

clean:
	rm -rf $(VENV) data/crypto.db data/crypto.db-* .pytest_cache .mypy_cache .ruff_cache
