"""The closed_loop_preflight DAG: before go-live, prove the org and the surveys match the playbook."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from closed_loop.dag_defaults import default_args, dry_run_param
from closed_loop.operators.preflight import PreflightOperator


@dag(
    dag_id="closed_loop_preflight",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["closed-loop", "preflight", "ops"],
    default_args=default_args(timedelta(minutes=1)),
    params={"dry_run": dry_run_param("The preflight only reads; this flag changes nothing.")},
    doc_md="""
### closed_loop_preflight
Run it by hand before go-live and after every change to the playbook, the org or the surveys. Read-only:
through `salesforce_default` and `surveymonkey_default` it checks, one log line per check (PASS/FAIL, what
was found, how to fix):

* every Salesforce field the playbook maps exists with a usable type (describe); the Case and Task upsert
  keys are External ID + unique; written fields are createable/updateable;
* every picklist value the playbook writes or reads exists (Case Status incl. `sla.dissatisfied_when`,
  Origin, Priority; Task Status, Priority);
* every role user exists and is active; the ops, leadership and digest addresses are set;
* both surveys exist; every heading the playbook maps is a question or matrix row; every answer text it
  lists is one of that question's choices; every question is mapped or listed in `topics.left_to_default`;
* the SurveyMonkey message templates carry the required merge tags; the token's scopes cover every
  endpoint used; the API budgets left today.

* **Schedule**: none (manual). **Params**: `dry_run` (no effect: nothing is written).
* The task fails when any check fails, listing them; `python -m closed_loop.preflight` prints the same.
""",
)
def closed_loop_preflight():
    PreflightOperator(task_id="preflight", retries=0)


closed_loop_preflight()
