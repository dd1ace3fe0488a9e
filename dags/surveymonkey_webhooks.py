"""surveymonkey_webhooks: create or repair the webhook that makes intake event-driven (manual)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from closed_loop.dag_defaults import default_args, dry_run_param
from closed_loop.operators.webhooks import EnsureWebhookOperator

DOC = """
### surveymonkey_webhooks (manual: run once after exposing the receiver, and whenever it moved)

**ensure_webhook** (pool `surveymonkey_api`): finds the main and recovery pulse surveys (playbook
`surveys`) and makes SurveyMonkey hold exactly one webhook named `closed-loop response intake`:
`event_type: response_completed`, `object_type: survey`, both survey ids, `subscription_url` = the
`subscription_url` param, else the `host` of connection `surveymonkey_webhook`. SurveyMonkey checks
the URL with a HEAD request when the webhook is created (the receiver answers 200).

**Idempotent**: an identical webhook is left alone (`unchanged`), a drifted one is PATCHed (`repaired`,
with the changed fields), duplicates are deleted, a missing one is created. The XCom/log is the report.
**Dry run**: `{"dry_run": true}` reports the plan and writes nothing. Costs 2-4 SurveyMonkey calls.
Intake uses the webhook only when `CLOSED_LOOP_INTAKE_TRIGGER=events` (docs/distributed.md).
"""

with DAG(
    dag_id="surveymonkey_webhooks",
    description="Create or repair the SurveyMonkey response_completed webhook for event-driven intake",
    doc_md=DOC,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["closed-loop", "surveymonkey", "webhooks"],
    params={
        "dry_run": dry_run_param(),
        "subscription_url": Param("", type="string", description="receiver URL; empty = connection host"),
    },
    default_args=default_args(timedelta(minutes=1)),
) as dag:
    EnsureWebhookOperator(
        task_id="ensure_webhook", pool="surveymonkey_api", subscription_url="{{ params.subscription_url }}"
    )
