# Two commands do all the set-up on a fresh clone:
#   make run   - the portal (web, task and delivery clusters, and the upstream simulator unless
#                EMODAL_API_URL is set), on SQLite
#   make test  - the test suite
#   make serve - production settings on one machine: gunicorn + qclusters (needs SECRET_KEY
#                and FIELD_ENCRYPTION_KEY, in the environment or .env)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run serve test lint format venv bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	DEBUG=$${DEBUG:-true} $(PY) scripts/run_portal.py

serve: $(STAMP)
	$(PY) scripts/serve.py

test: $(STAMP)
	DEBUG=true $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/test_db.sqlite3*
