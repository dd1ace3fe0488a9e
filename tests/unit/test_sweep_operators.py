"""sla_sweep operators: execute() with a context dict against the local stack."""

from __future__ import annotations

import json

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowSkipException
from sweep_cases import open_cases

from closed_loop.operators.sweep import (
    SweepOpsDigestOperator,
    SweepProgressOperator,
    SweepReadBackOperator,
    SweepRecoveryPulseOperator,
)

OPERATORS = [
    SweepReadBackOperator,
    SweepProgressOperator,
    SweepRecoveryPulseOperator,
    SweepOpsDigestOperator,
]


def context(day: str, run_id: str = "manual__sweep") -> dict:
    return {"logical_date": pendulum.parse(f"{day}T07:00:00Z"), "run_id": run_id}


def run_all(day: str, dry_run: bool = False) -> list[dict]:
    out = []
    for cls in OPERATORS:
        op = cls(task_id=cls.__name__, dry_run=dry_run)
        out.append(op.execute(context(day)))
    return out


def test_holiday_is_skipped(stack):
    with stack.connections(), pytest.raises(AirflowSkipException, match="Independence Day"):
        SweepReadBackOperator(task_id="read_back", dry_run=False).execute(context("2026-07-03"))


def test_dry_run_plans_but_writes_nothing_then_real_run_acts(stack):
    with stack.connections():
        from closed_loop.hooks import ClosedLoopSalesforceHook

        open_cases(ClosedLoopSalesforceHook(), stack.ledger, pendulum.date(2026, 7, 1), n=6)
        stack.sandbox.admin("POST", "clock", {"now": "2026-07-15T11:00:00Z"})
        tasks_before = len(stack.sandbox.admin("GET", "records/Task"))

        read, progress, pulses, digest = run_all("2026-07-15", dry_run=True)
        assert read["tasks_read"] > 0 and read["dry_run"]
        assert progress["breaches"] > 0 and progress["api_calls"] == 0
        assert stack.ledger.sla_events() == [] and stack.emails() == []
        assert len(stack.sandbox.admin("GET", "records/Task")) == tasks_before
        assert all(s["completed_at"] is None for c in stack.ledger.open_cases_and_steps() for s in c["steps"])

        results = run_all("2026-07-15")
        json.dumps(results)  # small, JSON-safe XComs
        read, progress, pulses, digest = results
        assert progress["breaches"] > 0 and progress["tasks_upserted"] >= progress["breaches"]
        assert digest["outcome"] == "sent" and digest["breaches"] == progress["breaches"]
        assert len(stack.sandbox.admin("GET", "records/Task")) > tasks_before
        emails = len(stack.emails())

        again = run_all("2026-07-15")  # rerun of the same logical date: nothing new
        assert again[1]["tasks_upserted"] == 0 and again[3]["outcome"] == "already_sent"
        assert len(stack.emails()) == emails
