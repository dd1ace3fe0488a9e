# closed-loop: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup demo test lint format bench audit airflow services tools clean

$(STAMP): requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

services:  ## start PostgreSQL and Redis on this machine if they are down
	@bash scripts/ensure-services.sh

tools:  ## Debian packages some tests use: headless chromium (report screenshot), docker-compose (config check)
	@bash scripts/ensure-chromium.sh
	@bash scripts/ensure-compose.sh

lint: setup
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

test: setup services tools lint
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python bench/run.py

audit:  ## dependency audit of the pinned requirements (pip-audit, in its own venv)
	@test -x .audit-venv/bin/pip-audit || ($(PYTHON) -m venv .audit-venv && .audit-venv/bin/pip install -q pip-audit)
	.audit-venv/bin/pip-audit -r requirements.txt

airflow: setup  ## the Airflow UI on the demo's state
	bash scripts/airflow-ui.sh

clean:
	rm -rf .airflow-test .airflow-demo demo-output .pytest_cache .ruff_cache
