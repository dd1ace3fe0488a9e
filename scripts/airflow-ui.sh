#!/usr/bin/env bash
# `make airflow`: the Airflow UI (airflow standalone) on the demo's AIRFLOW_HOME and its DAG run history.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .airflow-demo/airflow.db ] || { echo "run 'make demo' first"; exit 1; }
export PATH="$PWD/.venv/bin:$PATH" AIRFLOW_HOME="$PWD/.airflow-demo" AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags" \
  AIRFLOW__CORE__PLUGINS_FOLDER="$PWD/plugins" AIRFLOW__CORE__LOAD_EXAMPLES=False \
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$PWD/.airflow-demo/airflow.db" \
  CLOSED_LOOP_PLAYBOOK="$PWD/include/playbook.yaml" PYTHONPATH="$PWD/plugins:$PWD"
# The demo's connections (the sandbox is not running any more: the UI shows the recorded runs).
[ -f demo-output/connections.env ] && source demo-output/connections.env
echo "Airflow UI: http://127.0.0.1:8080  login: admin, password: see $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
exec .venv/bin/airflow standalone
