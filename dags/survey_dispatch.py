"""survey_dispatch: the post-implementation survey, two weeks after go-live, exactly once."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from closed_loop.dag_defaults import default_args, dry_run_param
from closed_loop.operators.dispatch import (
    SalesforceGoLiveSyncOperator,
    SurveyMonkeySendInvitesOperator,
    SurveyMonkeySendRemindersOperator,
)

DOC = """
### survey_dispatch (daily, 14:00 UTC)

1. **sync_go_lives** (pool `salesforce_api`): one incremental, paged SOQL for Accounts (changed since the
   watermark, or go-live inside the catch-up horizon) and one for flagged Contacts; upserted into the
   ledger together with their watermarks.
2. **send_invites** (pool `surveymonkey_api`): due = go-live + `playbook.dispatch.survey_delay_days`,
   from the run's logical date; late go-lives caught up within `catch_up_window_days`, never older; one
   invite per contact and go-live; quarantine, opt-outs, bounces and open follow-up cases respected, every
   skip recorded with its reason. One email collector and one invite message per logical date; intents are
   written before recipients are added, so a retry reconciles instead of re-sending; the survey's
   collectors are checked against the ledger first, so a ledger restored from a backup adopts the
   batches it forgot instead of sending them again.
3. **send_reminders** (pool `surveymonkey_api`): once per batch, `reminder_delay_days` after it, to the
   batch's non-responders; optionally a Salesforce Task for the account's Lead Person.

**Idempotent**: rerunning any day (or retrying any task after a crash) sends nothing twice.
**Dry run**: trigger with `{"dry_run": true}` to log the plan (counts and keys) and write nothing.
"""

with DAG(
    dag_id="survey_dispatch",
    description="Send the post-implementation survey two weeks after go-live, once, and remind once",
    doc_md=DOC,
    schedule="0 14 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["closed-loop", "surveys", "salesforce", "surveymonkey"],
    params={"dry_run": dry_run_param()},
    default_args=default_args(timedelta(minutes=5), exponential_backoff=True),
):
    sync = SalesforceGoLiveSyncOperator(task_id="sync_go_lives", pool="salesforce_api")
    invites = SurveyMonkeySendInvitesOperator(task_id="send_invites", pool="surveymonkey_api")
    reminders = SurveyMonkeySendRemindersOperator(task_id="send_reminders", pool="surveymonkey_api")
    sync >> invites >> reminders
