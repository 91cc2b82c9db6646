# The README's two commands: `make run` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run etl test lint bench clean
# Coverage floor per package, enforced by `make test` (and so by CI).
COVERAGE_FLOOR := 90

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
	rm -f .coverage .coverage.*
	$(PY) -m pytest -n 2 --dist loadfile --cov --cov-report=
	$(PY) -m coverage report --include='etl/*' --fail-under=$(COVERAGE_FLOOR)
	$(PY) -m coverage report --include='api/*' --fail-under=$(COVERAGE_FLOOR)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy etl api scheduler tests bench
	$(VENV)/bin/lint-imports

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) bench/etl_load.py
	$(PY) bench/api_load.py

clean:
	rm -rf $(VENV) data/crypto.db data/crypto.db-* .pytest_cache .mypy_cache .ruff_cache
