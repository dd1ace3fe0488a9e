"""The whole sla_sweep DAG through `airflow dags test` against the local stack."""

from __future__ import annotations

import datetime as dt

import pytest
from sweep_cases import open_cases


@pytest.mark.airflow
def test_sla_sweep_dag_escalates_once_and_reruns_change_nothing(stack, stack_airflow):
    with stack.connections():
        from closed_loop.hooks import ClosedLoopSalesforceHook

        open_cases(ClosedLoopSalesforceHook(), stack.ledger, dt.date(2026, 7, 1), n=6)
    stack.sandbox.admin("POST", "clock", {"now": "2026-07-15T11:00:00Z"})
    stack.sandbox.admin("POST", "counters/reset")

    result = stack_airflow.dags_test("sla_sweep", "2026-07-15T07:00:00+00:00")
    assert result.ok, result.output[-3000:]
    # one summary per task in the task log: counts, quarantine, ids touched, API budget left (issue 17)
    summaries = result.output.count("closed-loop summary of ")
    assert summaries >= 4 and result.output.count("API budget left today:") == summaries, summaries
    assert "Salesforce " in result.output and " requests left (this task: " in result.output
    events = stack.ledger.sla_events()
    breaches = [e for e in events if e["kind"] == "escalation" and e["details"]["reason"] == "overdue"]
    assert breaches and all(e["sf_task_id"] for e in breaches)
    assert stack.ledger.get_email("digest:2026-07-15")["status"] == "sent"
    counters = stack.sandbox.admin("GET", "counters")
    tasks = len(stack.sandbox.admin("GET", "records/Task"))
    emails = len(stack.emails())
    # read-back 2 SOQL + users 1 + one Task upsert; SurveyMonkey only when a case closed
    assert counters["sf"]["total"] <= 5, counters["sf"]

    rerun = stack_airflow.dags_test("sla_sweep", "2026-07-15T07:00:00+00:00")
    assert rerun.ok, rerun.output[-3000:]
    assert len(stack.ledger.sla_events()) == len(events)
    assert len(stack.sandbox.admin("GET", "records/Task")) == tasks
    assert len(stack.emails()) == emails
