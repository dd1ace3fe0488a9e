"""sla_sweep: keep every follow-up case moving until the loop is closed."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from closed_loop.dag_defaults import default_args, dry_run_param
from closed_loop.operators.sweep import (
    SweepOpsDigestOperator,
    SweepProgressOperator,
    SweepReadBackOperator,
    SweepRecoveryPulseOperator,
)

DOC = """
### sla_sweep (07:00 UTC, Monday-Friday; playbook holidays and closures are skipped)

The run's logical date is "today" for every decision.

1. **read_back** (pool `salesforce_api`): the open pipeline Cases and not-yet-completed step Tasks changed
   since the last sweep (queryAll on `SystemModstamp`, deletions included) or never read (`Id IN`), in
   Composite calls of 5 queries; completions, status, closure, documentation fields recorded in the ledger.
2. **progress_and_escalate** (pool `salesforce_api`): creates steps activated by a completion (the follow-up,
   due 15 business days after the acknowledgement); a step past its due date and not completed by it gets
   ONE escalation (Task for the playbook's escalation owner + LP notice + ledger event); a customer still
   dissatisfied gets one escalation to management per episode; a Case closed without root cause / actions /
   outcome is flagged back to the LP once and stays open in the ledger; documented Cases close. A pre-due
   reminder goes to the LP the business day before a due date.
3. **send_recovery_pulses** (pool `surveymonkey_api`): the recovery pulse survey to each closed case's
   contact, once, linked to the case (one collector per sweep date; intents before recipients).
4. **ops_digest**: one email to ops (breaches, escalations, dissatisfied, documentation gaps, data-quality
   quarantines, unconfirmed emails); nothing when there is nothing.

**Idempotent**: every Task is upserted by its external id, every event/email/send has a natural key in
the ledger; rerunning any day creates no second escalation, email or task. An email whose SMTP call failed
is resent by the retry; one left unconfirmed by a hard crash is never resent and appears in the digest.
**Dry run**: trigger with `{"dry_run": true}` to log the plan (counts and keys) and write nothing.
"""

with DAG(
    dag_id="sla_sweep",
    description="Read back follow-up Cases/Tasks, progress and escalate SLA breaches once, recovery pulse",
    doc_md=DOC,
    schedule="0 7 * * 1-5",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["closed-loop", "sla", "salesforce", "surveymonkey"],
    params={"dry_run": dry_run_param()},
    default_args=default_args(timedelta(minutes=5), exponential_backoff=True),
):
    read_back = SweepReadBackOperator(task_id="read_back", pool="salesforce_api")
    progress = SweepProgressOperator(task_id="progress_and_escalate", pool="salesforce_api")
    pulses = SweepRecoveryPulseOperator(task_id="send_recovery_pulses", pool="surveymonkey_api")
    digest = SweepOpsDigestOperator(task_id="ops_digest")
    read_back >> progress >> pulses >> digest
