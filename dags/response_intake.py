"""response_intake: completed survey -> scored -> a correctly owned Salesforce Case and SOP Tasks."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from closed_loop.dag_defaults import default_args, dry_run_param
from closed_loop.operators.intake import IngestResponsesOperator, OpenCasesOperator
from closed_loop.webhooks.schedule import intake_schedule

# The playbook's intake.schedule / intake.reconcile_schedule are the reference; they are not read here
# (no YAML at parse time) and tests/integration/test_response_intake_dag.py keeps them equal.
SCHEDULE = "*/15 * * * *"
RECONCILE_SCHEDULE = "0 * * * *"

DOC = """
### response_intake (every 15 minutes, `playbook.intake.schedule`; or event-driven)

**Schedule.** By default it polls every 15 minutes. With `CLOSED_LOOP_INTAKE_TRIGGER=events` (the
distributed stack with the webhook receiver, Redis and a triggerer) it runs when a SurveyMonkey
`response_completed` webhook arrives (asset `surveymonkey_response_webhooks`, watched on the Redis
channel `CLOSED_LOOP_WEBHOOK_CHANNEL`) **or** on `playbook.intake.reconcile_schedule` (hourly), the
safety net for a lost webhook. Events arriving during a run make one more run, not one each. The
webhook only wakes the DAG: every run pulls by the watermark, so duplicated, late or out-of-order
webhooks change nothing.

1. **ingest_responses** (pool `surveymonkey_api`): new and changed completed responses of the main
   survey since the ledger watermark minus `intake.watermark_overlap_minutes` (100 per page, one call
   when nothing is new; the recovery pulse survey only while a pulse is outstanding). Joined to
   account/contact through the ledger's survey sends, scored (every trigger recorded), stored raw +
   flattened with the watermark in one ledger transaction. A Case and its SOP steps are planned for
   every new negative response (owner by the routing rules, due dates in business days). Positives and
   recovery pulses are recorded, never cased. Unknown respondents, unreadable answers, missing MRR/TSM
   are quarantined with a reason and the batch goes on. Emits `closed_loop_responses`
   (through the alias `closed_loop_responses_ingested`) when it ingested something.
2. **open_cases** (pool `salesforce_api`): one SOQL for the owners' User ids, Case upserts then Task
   upserts by their external ids (playbook `salesforce.case/task.external_id`; sObject Collections of
   200, 5 per Composite call), marked in the ledger; one Task to the data-quality owner per quarantined
   item (`dq:<key>`).
   Per-record failures are quarantined and retried on the next run.

**Idempotent and crash-safe**: natural keys and external-id upserts; a crash between Salesforce and the
ledger makes the rerun update the same records. **Dry run**: trigger with `{"dry_run": true}` to log
the plan (counts and keys) and write nothing.
"""

with DAG(
    dag_id="response_intake",
    description="Score new survey responses and open the follow-up Case and SOP Tasks in Salesforce",
    doc_md=DOC,
    schedule=intake_schedule(SCHEDULE, RECONCILE_SCHEDULE),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=14),
    tags=["closed-loop", "surveys", "salesforce", "surveymonkey"],
    params={"dry_run": dry_run_param()},
    default_args=default_args(timedelta(minutes=1)),
) as dag:
    ingest = IngestResponsesOperator(task_id="ingest_responses", pool="surveymonkey_api")
    cases = OpenCasesOperator(task_id="open_cases", pool="salesforce_api")
    ingest >> cases
