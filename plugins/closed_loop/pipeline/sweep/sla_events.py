"""The SLA event rows the sweep records (breach, escalation, late completion, reminder, doc_missing,
dissatisfaction episode), each under a natural key so it is written once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace

from closed_loop.domain.plan import (
    StepContext,
    StepPlan,
    plan_escalation,
    plan_late_completion,
)
from closed_loop.domain.records import task_record
from closed_loop.domain.wording import field_labels
from closed_loop.pipeline.sweep.common import _step_title, _title, local_date
from closed_loop.pipeline.sweep.plan import _as_step_plan
from closed_loop.playbook import Playbook


def _event_task(plan: StepPlan, playbook: Playbook, status: str | None = None) -> dict:
    """The Task an event creates, as recorded in its details (``task_record``, plus its ``_owner``)."""
    task = task_record(playbook, key=plan.key, subject=plan.subject, description=plan.description,
                       due=plan.due_date, priority=plan.priority, status=status)  # fmt: skip
    return task | {"_owner": plan.owner_username}


def _breach_event(case_key: str, step: Mapping, ctx: StepContext, playbook, escalated_to) -> dict:
    """The SLA metric: one per breached step, whether or not it is escalated (completed late, or its
    Case already closed, are breaches without an alarm)."""
    done_on = local_date(step.get("completed_at"), playbook)
    return {
        "event_key": f"breach:{step['step_key']}",
        "kind": "breach",
        "case_key": case_key,
        "step_key": step["step_key"],
        "occurred_on": None,  # set by the caller (today)
        "details": {
            "account_name": ctx.account_name,
            "step": step["step"],
            "step_title": _step_title(step["step"], playbook),
            "due_date": str(step["due_date"]),
            "completed_on": str(done_on) if done_on else None,
            "escalated_to": escalated_to,
        },
    }


def _escalation_event(case_key: str, steps: list, ctx: StepContext, playbook, calendar, today) -> dict:
    """One escalation (and one Task) for all of a case's open steps found overdue in this sweep."""
    late = [_as_step_plan(step, ctx, playbook) for step in steps]
    esc = plan_escalation(ctx, "overdue", today, playbook, calendar, overdue_step=late)
    return {
        "event_key": f"escalation:{esc.key}",
        "kind": "escalation",
        "case_key": case_key,
        "step_key": steps[0]["step_key"] if len(steps) == 1 else None,
        "occurred_on": today,
        "details": {
            "reason": "overdue",
            "account_name": ctx.account_name,
            "steps": [
                {
                    "step_key": step["step_key"],
                    "step": step["step"],
                    "step_title": _step_title(step["step"], playbook),
                    "due_date": str(step["due_date"]),
                    "days_late": calendar.business_days_between(step["due_date"], today),
                }
                for step in steps
            ],
            "owner_role": esc.owner_role,
            "owner_title": _title(esc.owner_role, playbook),
            "task": _event_task(esc, playbook),
        },
    }


def _late_event(case_key: str, step: Mapping, ctx: StepContext, playbook, calendar, today) -> dict:
    """A factual Case-history line (a completed Task) for a step completed after its due date."""
    done_on = local_date(step["completed_at"], playbook)
    line = plan_late_completion(ctx, _as_step_plan(step, ctx, playbook), done_on, playbook, calendar)
    task = _event_task(line, playbook, status=playbook.salesforce.task.completed_status)
    return _step_event(
        "late",
        "late_completion",
        case_key,
        step,
        ctx,
        today,
        step_title=_step_title(step["step"], playbook),
        completed_on=str(done_on),
        days_late=calendar.business_days_between(step["due_date"], done_on),
        task=task,
    )


def _add_overdue_events(ledger, plan: dict, ctxs: Mapping, playbook, calendar, today: dt.date) -> None:
    """Breach metrics, the grouped escalations and the late-completion lines, in one transaction (a
    crash never leaves a breach recorded without the escalation it raised)."""
    events, escalated_to = [], {}
    for ck, steps in plan["escalate"].items():
        event = _escalation_event(ck, steps, ctxs[ck], playbook, calendar, today)
        events.append(event)
        escalated_to |= {st["step_key"]: event["details"]["owner_title"] for st in steps}
    for ck, step in plan["breaches"]:
        event = _breach_event(ck, step, ctxs[ck], playbook, escalated_to.get(step["step_key"]))
        events.append(event | {"occurred_on": today})
    events += [_late_event(ck, step, ctxs[ck], playbook, calendar, today) for ck, step in plan["late"]]
    ledger.add_sla_events(events)


def _dissatisfied_episode(case_key: str, ctx: StepContext, playbook, calendar, today) -> tuple:
    """A dissatisfaction episode to open (``ledger.start_dissatisfied_episodes``): the key prefix of its
    escalation events and ``build(n)``, the escalation event of the case's ``n``-th episode."""
    first = plan_escalation(ctx, "dissatisfied", today, playbook, calendar)

    def build(n: int) -> dict:
        esc = replace(first, key=f"{first.key}:{n}") if n > 1 else first
        return {
            "event_key": f"escalation:{esc.key}",
            "kind": "escalation",
            "case_key": case_key,
            "occurred_on": today,
            "details": {
                "reason": "dissatisfied",
                "episode": n,
                "account_name": ctx.account_name,
                "owner_role": esc.owner_role,
                "owner_title": _title(esc.owner_role, playbook),
                "task": _event_task(esc, playbook),
            },
        }

    return f"escalation:{first.key}", build


def _doc_missing_event(case_key: str, ctx: StepContext, playbook: Playbook, calendar, today) -> dict:
    step = next((s for s in playbook.steps if s.checks_fields), None)
    rule = playbook.sla.doc_missing_task
    due = calendar.add_business_days(today, rule.due_business_days)
    task = StepPlan(
        key=f"{case_key}:doc_missing",
        step="doc_missing",
        subject=f"Document the closed case: {ctx.account_name}"[:255],
        owner_username=ctx.lp_username,
        owner_role="lp",
        due_date=due,
        priority=rule.priority,
        description=(
            "The Case was closed without "
            + ", ".join(field_labels(playbook.sla.documentation_fields))
            + ". Fill them in: the case stays open in the follow-up tracking until then.\n\n"
            + (step.description if step else "")
            + f"\n\nSalesforce Case: {ctx.case_url}"
        ),
    )
    return {
        "event_key": f"doc_missing:{case_key}",
        "kind": "doc_missing",
        "case_key": case_key,
        "occurred_on": today,
        "details": {
            "account_name": ctx.account_name,
            "owner_role": "lp",
            "task": _event_task(task, playbook),
        },
    }


def _reminder_event(case_key: str, step: Mapping, ctx: StepContext, today: dt.date) -> dict:
    return _step_event("reminder", "reminder", case_key, step, ctx, today)


def _step_event(prefix: str, kind: str, case_key: str, step: Mapping, ctx, today, **details) -> dict:
    """An SLA event row about one step (keyed ``<prefix>:<step_key>``, so it is written once)."""
    return {
        "event_key": f"{prefix}:{step['step_key']}",
        "kind": kind,
        "case_key": case_key,
        "step_key": step["step_key"],
        "occurred_on": today,
        "details": {
            "account_name": ctx.account_name,
            "step": step["step"],
            "due_date": str(step["due_date"]),
            **details,
        },
    }
