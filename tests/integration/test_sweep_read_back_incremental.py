"""The sweep's read-back against the sandbox: a full first read, then only what changed (SystemModstamp,
queryAll for deletions), all through the Composite resource (5 query operations per API call)."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from sweep_cases import open_cases

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.ledger.types import to_utc
from closed_loop.pipeline import read_back_queries as rbq
from closed_loop.pipeline import sweep
from closed_loop.playbook import load_playbook

PB = load_playbook()
CAL = BusinessCalendar.from_playbook(PB)
START = dt.date(2026, 7, 1)


@pytest.fixture
def sf(stack):
    with stack.connections():
        from closed_loop.hooks.salesforce import ClosedLoopSalesforceHook

        yield ClosedLoopSalesforceHook()


def calls(stack) -> dict:
    return stack.sandbox.admin("GET", "counters")["sf"]


def tracked(ledger):
    cases = [c for c in ledger.open_cases_and_steps() if c["sf_case_id"]]
    steps = [s for c in cases for s in c["steps"] if s["sf_task_id"] and s["status"] != "completed"]
    return cases, steps


def test_first_read_is_full_then_only_changes_and_deletions(stack, sf):
    led = stack.ledger
    open_cases(sf, led, START, n=6)
    cases, steps = tracked(led)
    stack.sandbox.admin("POST", "counters/reset")
    first = sweep.read_back(sf, led, PB, CAL, START)
    # documented: 2,000 records per query page, 5 query operations per Composite call, one API call each
    pages = math.ceil(len(cases) / 2000) + math.ceil(len(steps) / 2000)
    assert first["full_read"] and first["statements"] == pages
    assert calls(stack)["total"] == math.ceil(pages / 5) == 1
    assert (first["cases_read"], first["tasks_read"]) == (len(cases), len(steps))

    # an hour later an LP completes one step Task and someone deletes another; nothing else changes
    stack.sandbox.admin("POST", "clock", {"advance_hours": 1})
    conn = sf.get_conn()
    done, deleted = steps[0], steps[1]
    conn.Task.update(done["sf_task_id"], {"Status": "Completed"})
    conn.Task.delete(deleted["sf_task_id"])
    mark = to_utc(led.get_watermark(rbq.TASK_WATERMARK))
    truth = {t["Id"]: t for t in stack.sandbox.admin("GET", "records/Task")}
    expected_tasks = {
        s["sf_task_id"]
        for s in steps
        if to_utc(truth[s["sf_task_id"]]["SystemModstamp"]) > mark - rbq.OVERLAP
        and not truth[s["sf_task_id"]].get("IsDeleted")
    }
    stack.sandbox.admin("POST", "counters/reset")
    second = sweep.read_back(sf, led, PB, CAL, START + dt.timedelta(days=1))
    assert not second["full_read"] and second["statements"] == 2  # Case changes + Task changes
    assert calls(stack)["total"] == 1 and calls(stack)["endpoints"] == {"POST composite": 1}
    assert second["tasks_read"] == len(expected_tasks) and done["sf_task_id"] in expected_tasks
    assert second["steps_completed"] == 1 and second["missing"] == 1
    step_rows = {s["step_key"]: s for c in led.open_cases_and_steps() for s in c["steps"]}
    assert step_rows[done["step_key"]]["status"] == "completed"
    q = {r["q_key"] for r in led.unreported_quarantine()}
    assert f"sla_sweep:task_missing:{deleted['step_key']}" in q

    # the Recycle Bin keeps deleted records 15 days: after a longer gap the read is full again
    late = sweep.read_back(sf, led, PB, CAL, START + dt.timedelta(days=1 + rbq.RECYCLE_BIN_DAYS))
    assert late["full_read"]


def test_dry_run_does_not_advance_the_watermarks(stack, sf):
    led = stack.ledger
    open_cases(sf, led, START, n=2)
    sweep.read_back(sf, led, PB, CAL, START, dry_run=True)
    assert led.get_watermark(rbq.SWEPT_ON) is None and led.get_watermark(rbq.CASE_WATERMARK) is None
