# Two commands do all the set-up on a fresh clone:
#   make run   - the portal (web, task and delivery clusters, and the upstream simulator unless
#                EMODAL_API_URL names another server), on SQLite
#   make test  - the test suite
#   make serve - production settings on one machine: gunicorn + qclusters (needs SECRET_KEY,
#                FIELD_ENCRYPTION_KEY and EMODAL_API_URL, in the environment or .env)
#   make sim   - the bundled upstream simulator alone, on 127.0.0.1:$(SIM_PORT) (a trial of
#                make serve without an automation server)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SIM_PORT ?= 5010
SIM_TIME_SCALE ?= 0.1
SIM_GLITCH_RATE ?= 0

.PHONY: run serve sim test lint types format venv bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# `exec`: the script is make's child itself, so that a SIGTERM make passes on reaches it (and
# it stops everything it started), not a shell that would die alone.
run: $(STAMP)
	DEBUG=$${DEBUG:-true} exec $(PY) scripts/run_portal.py

serve: $(STAMP)
	exec $(PY) scripts/serve.py

sim: $(STAMP)
	exec $(PY) -m emodal_sim --host 127.0.0.1 --port $(SIM_PORT) --time-scale $(SIM_TIME_SCALE) --glitch-rate $(SIM_GLITCH_RATE)

test: $(STAMP)
	DEBUG=true $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# mypy with the Django and DRF plugins (settings: emodal_portal.settings_test); the
# configuration, and the modules not checked yet, are in pyproject.toml.
types: $(STAMP)
	DEBUG=true $(PY) -m mypy

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var/test_db.sqlite3*
