"""The sweep's own rules (the doc-missing Task, the escalation priority) come from the playbook."""

from __future__ import annotations

import datetime as dt

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.plan import plan_escalation
from closed_loop.pipeline import sweep
from closed_loop.playbook import FlagTask, load_playbook

PB = load_playbook()
CAL = BusinessCalendar.from_playbook(PB)
MONDAY = dt.date(2026, 8, 3)  # no US holiday in the next two weeks
CASE = {"case_key": "r1", "account_id": "001A", "account_name": "Acme", "contact_id": None,
        "lp_role": "doi", "lp_username": PB.username("doi"), "priority": "High"}  # fmt: skip


def changed(**sla):
    return PB.model_copy(update={"sla": PB.sla.model_copy(update=sla)})


def test_the_default_playbook_keeps_the_sop_values():
    assert (PB.sla.doc_missing_task.due_business_days, PB.sla.doc_missing_task.priority) == (2, "High")
    assert PB.sla.escalation_priority == "High"
    assert PB.recovery.pulse_lookback_days == 30


def test_doc_missing_task_due_and_priority_follow_the_playbook():
    pb = changed(doc_missing_task=FlagTask(due_business_days=5, priority="Low"))
    ctx = sweep.step_context(CASE, pb, "https://example.test/case")
    event = sweep._doc_missing_event("r1", ctx, pb, CAL, MONDAY)
    task = event["details"]["task"]
    assert task["ActivityDate"] == "2026-08-10"  # Monday + 5 business days = next Monday
    assert task["Priority"] == "Low"


def test_escalation_priority_follows_the_playbook():
    pb = changed(escalation_priority="Normal")
    ctx = sweep.step_context(CASE, pb, "https://example.test/case")
    assert plan_escalation(ctx, "dissatisfied", MONDAY, pb, CAL).priority == "Normal"
    assert plan_escalation(ctx, "dissatisfied", MONDAY, PB, CAL).priority == "High"
