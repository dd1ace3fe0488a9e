#!/usr/bin/env bash
# `make airflow`: the Airflow UI on the demo's runs (scripts/airflow_ui.py; Ctrl-C/SIGTERM stops it all).
cd "$(dirname "$0")/.." && exec .venv/bin/python scripts/airflow_ui.py "$@"
