"""What the sweep would do today, from the ledger alone: activated steps, breaches, reminders, dissatisfaction
and closes (``plan_sweep``), and the planning context of a ledger case (``step_context``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import replace

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.plan import (
    StepContext,
    StepPlan,
    plan_activated_steps,
)
from closed_loop.domain.routing import internal_call_audience
from closed_loop.ledger.types import to_utc
from closed_loop.pipeline.sweep.common import _case_url, local_date
from closed_loop.playbook import Playbook

PLAN_KINDS = ("activated", "breaches", "escalate", "late", "reminders", "dissatisfied_start",
              "dissatisfied_end", "doc_missing", "close")  # fmt: skip


def _triggers(ledger, case_keys: Iterable[str]) -> dict[str, tuple]:
    """The domain triggers of each case's response, as recorded by intake."""
    from closed_loop.domain.scoring import Trigger as DomainTrigger

    def domain(t: Mapping) -> DomainTrigger:
        text = {f: t[f] or "" for f in ("question_id", "heading", "answer", "rule")}
        return DomainTrigger(kind=t["kind"], row=t["row"], severity=t["severity"] or "low", **text)

    return {k: tuple(map(domain, rows)) for k, rows in ledger.triggers_of_cases(case_keys).items()}


def step_context(
    case: Mapping, playbook: Playbook, case_url: str, triggers: tuple = (), first_name: str | None = None
) -> StepContext:
    """Rebuild the planning context of a ledger case (for activated steps and escalations): the context
    intake planned with (response link, comments, MRR, flags) when the case carries it, with the ledger's
    current lead, and ``case_url`` as the Salesforce Case link."""
    topics = tuple(case.get("topics") or ())
    defaults = playbook.sla.case_defaults  # a case recorded without them (seeded history)
    priority = case.get("priority") or defaults.priority
    plan = case.get("plan") or {}
    if plan.get("context"):
        from closed_loop.pipeline.intake import context_from_json

        ctx = context_from_json(plan)
        return replace(
            ctx,
            account_name=case.get("account_name") or ctx.account_name,  # as read back today
            contact_first_name=first_name or ctx.contact_first_name,
            lp_role=case.get("lp_role") or ctx.lp_role,
            lp_username=case.get("lp_username") or ctx.lp_username,
            triggers=triggers or ctx.triggers,
            case_url=case_url,
        )
    return StepContext(
        response_id=case["case_key"],
        account_id=case["account_id"],
        account_name=case.get("account_name") or case["account_id"],
        contact_id=case.get("contact_id"),
        contact_first_name=first_name,
        lp_role=case.get("lp_role") or defaults.lp_role,
        lp_username=case.get("lp_username") or playbook.username(defaults.lp_role),
        tier=case.get("tier") or playbook.tiers.missing_mrr_tier,
        channel=case.get("channel") or defaults.channel,
        severity=case.get("severity") or defaults.severity,
        case_priority=priority,
        task_priority=playbook.priority.task[priority],
        response_url="",
        case_url=case_url,
        triggers=triggers,
        topics=topics,
        audience=internal_call_audience(topics, playbook),
        customer_call_variant="attend_tsm_call" if case.get("lp_role") == "tsm" else "schedule_call",
    )


def _as_step_plan(step: Mapping, ctx: StepContext, playbook: Playbook) -> StepPlan:
    title = (
        playbook.step(step["step"]).title if step["step"] in {s.key for s in playbook.steps} else step["step"]
    )
    return StepPlan(
        key=step["step_key"],
        step=step["step"],
        subject=f"{title}: {ctx.account_name}",
        owner_username=step.get("owner_username") or ctx.lp_username,
        owner_role=step.get("owner_role") or "lp",
        due_date=step["due_date"],
        priority=ctx.task_priority,
        description="",
    )


def breached(step: Mapping, case: Mapping, today: dt.date, playbook: Playbook) -> bool:
    """Due before today (or before the documented close) and not completed by its due date."""
    due = step.get("due_date")
    if due is None:
        return False
    cutoff = today
    if case.get("sf_closed") and case.get("sf_documented") and case.get("closed_at"):
        cutoff = min(today, local_date(case["closed_at"], playbook))
    done_on = local_date(step.get("completed_at"), playbook)
    return due < cutoff and (done_on is None or done_on > due)


def _late_completion(step: Mapping, playbook: Playbook) -> bool:
    """Completed, but after its due date (a fact for the Case history, not an alarm)."""
    due, done_on = step.get("due_date"), local_date(step.get("completed_at"), playbook)
    return step["status"] == "completed" and due is not None and done_on is not None and done_on > due


def _reminder_due(
    step: Mapping, case: Mapping, today: dt.date, playbook: Playbook, cal: BusinessCalendar
) -> bool:
    sla = playbook.sla
    due = step.get("due_date")
    if not sla.pre_due_reminder or due is None or step["status"] == "completed" or case.get("sf_closed"):
        return False
    return cal.add_business_days(due, -sla.pre_due_reminder_business_days) <= today < due


def _before_close(step: Mapping, case: Mapping) -> bool:
    """Steps activate only while the case is open: completed before a documented close."""
    if not (case.get("sf_closed") and case.get("sf_documented") and case.get("closed_at")):
        return True
    return to_utc(step["completed_at"]) < to_utc(case["closed_at"])


def plan_sweep(sf, ledger, playbook: Playbook, calendar: BusinessCalendar, today: dt.date) -> dict:
    """Everything the sweep would do today, computed from the ledger alone (no writes)."""
    cases = [c for c in ledger.open_cases_and_steps() if c["sf_case_id"]]
    keys = [c["case_key"] for c in cases]
    triggers = _triggers(ledger, keys)
    names = ledger.contact_first_names([c["contact_id"] for c in cases if c["contact_id"]])
    existing = ledger.event_keys_of_cases(keys)
    plan = {"cases": {}, "contexts": {}, "anchors": {}} | {kind: [] for kind in PLAN_KINDS}
    plan["escalate"] = {}  # case key -> its open steps found overdue in this sweep (one escalation)
    for case in cases:
        key = case["case_key"]
        url = _case_url(sf, case["sf_case_id"])
        ctx = step_context(case, playbook, url, triggers.get(key, ()), names.get(case["contact_id"]))
        plan["cases"][key], plan["contexts"][key] = case, ctx
        _plan_steps(plan, case, ctx, existing, playbook, calendar, today)
        _plan_case_state(plan, case, existing)
    return plan


def _plan_steps(plan: dict, case, ctx: StepContext, existing: set[str], playbook, calendar, today) -> None:
    """Steps activated by a completion (not yet in Salesforce), breaches and pre-due reminders."""
    key = case["case_key"]
    by_key = {s["step_key"]: s for s in case["steps"]}
    for step in case["steps"]:
        if step["status"] == "completed" and step["completed_at"] and _before_close(step, case):
            done_on = local_date(step["completed_at"], playbook)
            for new in plan_activated_steps(ctx, step["step"], done_on, playbook, calendar):
                if new.key not in by_key or by_key[new.key]["sf_task_id"] is None:
                    plan["activated"].append((key, new))
                    plan["anchors"][new.key] = done_on
        if step["sf_task_id"] is None:
            continue
        sk = step["step_key"]
        if _late_completion(step, playbook) and f"late:{sk}" not in existing:
            plan["late"].append((key, step))
        if breached(step, case, today, playbook) and not {f"breach:{sk}", f"escalation:{sk}"} & existing:
            plan["breaches"].append((key, step))
            if step["status"] != "completed" and not case.get("sf_closed"):
                plan["escalate"].setdefault(key, []).append(step)  # one Task per case and sweep
        elif _reminder_due(step, case, today, playbook, calendar) and (
            f"reminder:{step['step_key']}" not in existing
        ):
            plan["reminders"].append((key, step))


def _plan_case_state(plan: dict, case: Mapping, existing: set[str]) -> None:
    """Dissatisfaction starting or ending, an undocumented close to flag, a documented close."""
    key = case["case_key"]
    if case.get("sf_dissatisfied") and not case["dissatisfied"]:
        plan["dissatisfied_start"].append(key)
    elif not case.get("sf_dissatisfied") and case["dissatisfied"]:
        plan["dissatisfied_end"].append(key)
    if case.get("sf_closed") and not case.get("sf_documented") and f"doc_missing:{key}" not in existing:
        plan["doc_missing"].append(key)
    if case.get("sf_closed") and case.get("sf_documented"):
        plan["close"].append(key)
