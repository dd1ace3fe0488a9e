"""The sweep's own rules (the doc-missing Task, the escalation priority) come from the playbook."""

from __future__ import annotations

import datetime as dt

import pytest

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.plan import plan_escalation
from closed_loop.pipeline import sweep
from closed_loop.playbook import CaseDefaults, FlagTask, Playbook, load_playbook

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


def test_a_case_recorded_without_routing_values_takes_them_from_the_playbook():
    defaults = CaseDefaults(lp_role="management", channel="standard_email", severity="low", priority="Low")
    pb = changed(case_defaults=defaults)
    bare = {"case_key": "r2", "account_id": "001B", "account_name": "Initech", "contact_id": None}
    ctx = sweep.step_context(bare, pb, "https://example.test/case")
    assert (ctx.lp_role, ctx.lp_username) == ("management", pb.people.roles["management"].username)
    assert (ctx.channel, ctx.severity, ctx.case_priority) == ("standard_email", "low", "Low")
    assert ctx.task_priority == pb.priority.task["Low"] == "Low"
    recorded = sweep.step_context(CASE, pb, "https://example.test/case")  # the ledger's values win
    assert (recorded.lp_role, recorded.case_priority) == ("doi", "High")


def test_the_default_case_defaults_and_inform_task_are_the_previous_rules():
    d = PB.sla.case_defaults
    assert (d.lp_role, d.channel, d.severity, d.priority) == ("doi", "personalised_email", "medium", "Medium")
    assert (PB.recovery.inform_task.due_business_days, PB.recovery.inform_task.priority) == (2, "High")


def test_a_case_default_naming_an_unknown_role_or_channel_is_refused():
    data = PB.model_dump()
    data["sla"]["case_defaults"]["channel"] = "carrier_pigeon"
    with pytest.raises(ValueError, match="sla.case_defaults.channel: unknown channel 'carrier_pigeon'"):
        Playbook.model_validate(data)
    data = PB.model_dump()
    data["sla"]["case_defaults"]["lp_role"] = "nobody"
    with pytest.raises(ValueError, match="sla.case_defaults.lp_role: unknown role 'nobody'"):
        Playbook.model_validate(data)


def test_the_inform_task_of_a_negative_pulse_follows_the_playbook():
    from closed_loop.pipeline import recovery

    pb = PB.model_copy(
        update={"recovery": PB.recovery.model_copy(
            update={"inform_task": FlagTask(due_business_days=5, priority="Low")})}
    )  # fmt: skip
    ctx = sweep.step_context(CASE, pb, "https://example.test/case")
    _, inform = recovery._tasks(ctx, "pulse-1", [], pb, CAL, MONDAY)
    task = inform.task_fields(pb)
    assert task["ActivityDate"] == "2026-08-10"  # Monday + 5 business days = next Monday
    assert task["Priority"] == "Low"
    _, default = recovery._tasks(ctx, "pulse-1", [], PB, CAL, MONDAY)
    assert default.task_fields(PB)["ActivityDate"] == "2026-08-05"  # Monday + 2 business days
    assert default.task_fields(PB)["Priority"] == "High"
