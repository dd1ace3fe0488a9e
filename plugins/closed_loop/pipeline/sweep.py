"""SLA sweep: keep every follow-up case moving until the loop is closed (no Airflow import).

Four steps, each a plain function over built hooks, the Ledger, the Playbook, a BusinessCalendar and the
run's logical date ``today`` (never the wall clock):

1. ``read_back``: the tracked Cases and not-yet-completed Tasks changed since the last sweep (queryAll by
   ``SystemModstamp``, deletions included) or never read (``Id IN``),
   through Composite; records completions, Case status, closure and documentation in the ledger.
2. ``progress_and_escalate``: creates activated steps (the follow-up, anchored on the acknowledgement's
   completion), escalates each breached step once, escalates a dissatisfied customer once per episode,
   flags an undocumented close once, reminds LPs the business day before a due date, closes documented
   cases. Tasks are upserted by the playbook's Task external id; events and emails are keyed in the ledger.
3. ``send_recovery_pulses``: the recovery pulse survey to the contact of each case closed with docs.
4. ``ops_digest``: one email to ops with the day's breaches, escalations and quarantines (none if empty).

A breach is cadence-independent: a step is breached when its due date is before ``today`` (or before the
documented close) and it was not completed by its due date, so a late completion seen after the fact still
counts once; sweeping daily or every few days yields the same escalations.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal, select

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.plan import (
    TSM_TITLE,
    StepContext,
    StepPlan,
    lead_words,
    plan_activated_steps,
    plan_escalation,
    plan_late_completion,
    render_step,
    signed,
)
from closed_loop.domain.routing import internal_call_audience
from closed_loop.domain.wording import describe_trigger, field_labels
from closed_loop.ledger.models import Case, CaseStep, Contact, SlaEvent, SurveySend, Trigger
from closed_loop.ledger.types import to_utc
from closed_loop.ledger.upsert import insert_if_absent
from closed_loop.pipeline import outbox
from closed_loop.pipeline.read_back_queries import read_tracked, save_marks
from closed_loop.pipeline.surveys import carry_over_when_budget_exhausted, require_survey_id
from closed_loop.playbook import Playbook
from closed_loop.survey_messages import render_message
from closed_loop.templating import render

log = logging.getLogger(__name__)

USER_SOQL = (
    "SELECT Id, Username, Name, FirstName, Email, Title, IsActive FROM User WHERE Username IN {values}"
)
TASK_EVENT_KINDS = ("escalation", "doc_missing", "late_completion")
PLAN_KINDS = ("activated", "breaches", "escalate", "late", "reminders", "dissatisfied_start",
              "dissatisfied_end", "doc_missing", "close")  # fmt: skip


# -- shared helpers ------------------------------------------------------------------------------------


def case_fields(playbook: Playbook) -> list[str]:
    """The read-back Case fields: status, closure, documentation and the dissatisfied field."""
    base = [
        "Id",
        "Status",
        "IsClosed",
        "ClosedDate",
        "Account.Name",
        "ContactId",
        "Contact.Email",
        "Contact.FirstName",
        "Contact.LastName",
        f"Contact.{playbook.salesforce.contact.opted_out}",
    ]
    extra = [playbook.sla.dissatisfied_when.field, *playbook.sla.documentation_fields]
    return list(dict.fromkeys(base + extra))


def case_soql(playbook: Playbook) -> str:
    """The read-back Case query by ``Id IN``."""
    return f"SELECT {', '.join(case_fields(playbook))} FROM Case WHERE Id IN {{values}}"


def task_fields(playbook: Playbook) -> list[str]:
    """The read-back Task fields: status and completion, with the org's external-id field."""
    ext = playbook.salesforce.task.external_id
    return ["Id", "Status", "IsClosed", "CompletedDateTime", "ActivityDate", ext]


def task_soql(playbook: Playbook) -> str:
    """The read-back Task query by ``Id IN``."""
    return f"SELECT {', '.join(task_fields(playbook))} FROM Task WHERE Id IN {{values}}"


def local_date(value, playbook: Playbook) -> dt.date | None:
    """The calendar date of a timestamp in the playbook's business time zone."""
    ts = to_utc(value)
    return ts.astimezone(ZoneInfo(playbook.calendar.timezone)).date() if ts else None


def email_key(kind: str, *parts: object) -> str:
    return ":".join([kind, *(str(p) for p in parts)])


def _title(role: str | None, playbook: Playbook) -> str:
    if role in playbook.people.roles:
        return playbook.people.roles[role].title
    return TSM_TITLE


def _case_url(sf, sf_case_id: str | None) -> str:
    instance = getattr(sf.get_conn(), "sf_instance", "") if sf is not None else ""
    return f"https://{instance}/lightning/r/Case/{sf_case_id}/view" if instance else str(sf_case_id)


def _is_documented(record: Mapping, playbook: Playbook) -> bool:
    return all(str(record.get(f) or "").strip() for f in playbook.sla.documentation_fields)


def _with_calls(hook) -> int:
    return getattr(hook, "calls_made", 0)


# -- 1. read back --------------------------------------------------------------------------------------


@dataclass
class ReadBack:
    """What the read-back records: Case status/closure/documentation, the cases' contacts, step Task
    status and completions, and Cases/Tasks deleted in Salesforce (kind, key, Salesforce id)."""

    case_updates: list[dict]
    contacts: dict[str, dict]
    step_updates: list[dict]
    missing: list[tuple[str, str, str]]
    completed: int = 0


def read_back(
    sf, ledger, playbook: Playbook, calendar: BusinessCalendar, today: dt.date, dry_run: bool = False
) -> dict:
    """Read the open pipeline Cases and not-completed step Tasks that changed since the last sweep (or were
    never read) and record them in the ledger (``read_back_queries``: a few Composite calls).

    Cases the ledger closed within ``sla.reopen_lookback_days`` are tracked too: one reopened in Salesforce
    (open again, or set to the dissatisfied status) is open again in the ledger and dissatisfied (SOP
    6.1: the customer remains dissatisfied, so the sweep escalates it); a Task completed after its Case
    closed is recorded. Cases and Tasks deleted in Salesforce are quarantined once. Returns counts.
    """
    start = _with_calls(sf)
    cases = [c for c in ledger.open_cases_and_steps() if c["sf_case_id"]]
    cases += _recently_closed(ledger, today - dt.timedelta(days=playbook.sla.reopen_lookback_days))
    steps = [s for c in cases for s in c["steps"] if s["sf_task_id"] and s["status"] != "completed"]
    read = read_tracked(
        sf,
        ledger,
        case_fields=case_fields(playbook),
        task_fields=task_fields(playbook),
        case_external_id=playbook.salesforce.case.external_id,
        task_external_id=playbook.salesforce.task.external_id,
        cases=cases,
        steps=steps,
        today=today,
    )
    got = plan_read_back(cases, steps, read, playbook, today)
    out = {
        "cases_read": len(read.cases),
        "tasks_read": len(read.tasks),
        "steps_completed": got.completed,
        "cases_closed_in_sf": sum(bool(u["sf_closed"]) for u in got.case_updates),
        "cases_reopened": sum(u.get("status") == "open" for u in got.case_updates),
        "missing": len(got.missing),
        "dry_run": dry_run,
    }
    if not dry_run:
        apply_read_back(ledger, got)
        save_marks(ledger, read)
    out["full_read"], out["statements"] = read.full, read.statements
    out["api_calls"] = _with_calls(sf) - start
    log.debug("read_back %s: %s", today, out)
    return out


def plan_read_back(cases, steps, read, playbook: Playbook, today: dt.date) -> ReadBack:
    """The ledger updates for the records read back (``read.cases``/``read.tasks`` by Id; ``read.gone``
    the deleted ones); records unchanged since the last sweep are simply absent (pure)."""
    got = ReadBack([], {}, [], [])
    for case in cases:
        rec = read.cases.get(case["sf_case_id"])
        if case["sf_case_id"] in read.gone:
            got.missing.append(("case_missing", case["case_key"], case["sf_case_id"]))
        if rec is None:  # unchanged since the last sweep, or gone
            continue
        got.case_updates.append(_case_update(case, rec, playbook))
        if rec.get("ContactId"):
            got.contacts[rec["ContactId"]] = _contact_row(case, rec, playbook)
    for step in steps:
        rec = read.tasks.get(step["sf_task_id"])
        if step["sf_task_id"] in read.gone:
            got.missing.append(("task_missing", step["step_key"], step["sf_task_id"]))
        if rec is None:
            continue
        done = bool(rec.get("IsClosed"))
        got.completed += done
        update = {"step_key": step["step_key"], "sf_status": rec.get("Status")}
        if done:
            update |= {
                "status": "completed",
                "completed_at": to_utc(rec.get("CompletedDateTime"))
                or dt.datetime.combine(today, dt.time(12), dt.UTC),
            }
        got.step_updates.append(update)
    return got


def _case_update(case: Mapping, rec: Mapping, playbook: Playbook) -> dict:
    """A case the ledger closed that Salesforce shows open again, or dissatisfied, is reopened: open in
    the ledger and "remains dissatisfied" (SOP 6.1), so the plan escalates it."""
    rules, names = playbook.sla.dissatisfied_when, playbook.salesforce.case
    closed = bool(rec.get("IsClosed"))
    dissatisfied = str(rec.get(rules.field) or "") == rules.equals
    reopened = case["status"] == "closed" and (not closed or dissatisfied)
    return {
        "case_key": case["case_key"],
        **({"status": "open"} if reopened else {}),
        "sf_status": rec.get("Status"),
        "account_name": (rec.get("Account") or {}).get("Name"),
        "sf_dissatisfied": dissatisfied or reopened,
        "sf_closed": closed and not reopened,
        "sf_documented": _is_documented(rec, playbook),
        "closed_at": to_utc(rec.get("ClosedDate")) if closed else None,
        "root_cause": rec.get(names.root_cause),
        "actions_taken": rec.get(names.actions_taken),
        "outcome": rec.get(names.outcome),
    }


def _contact_row(case: Mapping, rec: Mapping, playbook: Playbook) -> dict:
    contact = rec.get("Contact") or {}
    return {
        "sf_id": rec["ContactId"],
        "account_id": case["account_id"],
        "email": contact.get("Email"),
        "first_name": contact.get("FirstName"),
        "last_name": contact.get("LastName"),
        "opted_out": bool(contact.get(playbook.salesforce.contact.opted_out)),
    }


def apply_read_back(ledger, got: ReadBack) -> None:
    ledger.record_case_status(got.case_updates)
    ledger.record_step_status(got.step_updates)
    if got.contacts:
        ledger.upsert_contacts(got.contacts.values())
    for kind, key, sf_id in got.missing:
        ledger.quarantine(
            f"sla_sweep:{kind}:{key}",
            "sla_sweep",
            sf_id,
            f"{kind.replace('_', ' ')} in Salesforce (deleted?)",
            {"key": key},
        )


def _recently_closed(ledger, since: dt.date) -> list[dict]:
    """Cases the ledger closed on or after ``since`` (the look-back window), each with its ``steps``."""
    cutoff = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC)
    with ledger.session() as s:
        closed = (Case.status == "closed") & (Case.closed_at >= cutoff) & Case.sf_case_id.is_not(None)
        cases = [_row(c) for c in s.scalars(select(Case).where(closed).order_by(Case.case_key))]
        keys = [c["case_key"] for c in cases]
        steps: dict[str, list[dict]] = defaultdict(list)
        if keys:
            query = select(CaseStep).where(CaseStep.case_key.in_(keys))
            for step in s.scalars(query.order_by(CaseStep.due_date, CaseStep.step_key)):
                steps[step.case_key].append(_row(step))
    return [c | {"steps": steps[c["case_key"]]} for c in cases]


def _row(record) -> dict:
    return {c.key: getattr(record, c.key) for c in type(record).__table__.columns}


# -- 2. progress and escalate --------------------------------------------------------------------------


def _triggers(ledger, case_keys: Iterable[str]) -> dict[str, tuple]:
    from closed_loop.domain.scoring import Trigger as DomainTrigger

    out: dict[str, list] = defaultdict(list)
    with ledger.session() as s:
        for t in s.scalars(select(Trigger).where(Trigger.response_id.in_(list(case_keys)))):
            out[t.response_id].append(
                DomainTrigger(
                    kind=t.kind,
                    question_id=t.question_id or "",
                    heading=t.heading or "",
                    row=t.row,
                    answer=t.answer or "",
                    rule=t.rule or "",
                    severity=t.severity or "low",
                )
            )
    return {k: tuple(v) for k, v in out.items()}


def _first_names(ledger, contact_ids: Iterable[str]) -> dict[str, str | None]:
    with ledger.session() as s:
        rows = s.execute(
            select(Contact.sf_id, Contact.first_name).where(Contact.sf_id.in_(list(contact_ids)))
        )
        return dict(rows.all())


def step_context(
    case: Mapping, playbook: Playbook, case_url: str, triggers: tuple = (), first_name: str | None = None
) -> StepContext:
    """Rebuild the planning context of a ledger case (for activated steps and escalations): the context
    intake planned with (response link, comments, MRR, flags) when the case carries it, with the ledger's
    current lead, and ``case_url`` as the Salesforce Case link."""
    topics = tuple(case.get("topics") or ())
    priority = case.get("priority") or "Medium"
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
        lp_role=case.get("lp_role") or "doi",
        lp_username=case.get("lp_username") or playbook.username("doi"),
        tier=case.get("tier") or playbook.tiers.missing_mrr_tier,
        channel=case.get("channel") or "personalised_email",
        severity=case.get("severity") or "medium",
        case_priority=priority,
        task_priority=playbook.priority.task.get(priority, "Normal"),
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
    names = _first_names(ledger, [c["contact_id"] for c in cases if c["contact_id"]])
    existing = {e["event_key"] for e in _events(ledger, keys)}
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


def _events(
    ledger, case_keys: Iterable[str] | None = None, on: dt.date | None = None, since: dt.date | None = None
) -> list[dict]:
    with ledger.session() as s:
        stmt = select(SlaEvent)
        if case_keys is not None:
            stmt = stmt.where(SlaEvent.case_key.in_(list(case_keys)))
        if on is not None:
            stmt = stmt.where(SlaEvent.occurred_on == on)
        if since is not None:
            stmt = stmt.where(SlaEvent.occurred_on >= since)
        return [
            {c.key: getattr(e, c.key) for c in SlaEvent.__table__.columns}
            for e in s.scalars(stmt.order_by(SlaEvent.event_key))
        ]


def _event_task(plan: StepPlan, playbook: Playbook) -> dict:
    return plan.task_fields(playbook) | {"_owner": plan.owner_username}


def _step_title(step: str, playbook: Playbook) -> str:
    return playbook.step(step).title if step in _step_keys(playbook) else step


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
    task = _event_task(line, playbook) | {"Status": playbook.salesforce.task.completed_status}
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
    if events:
        with ledger.session() as s:
            insert_if_absent(s, SlaEvent, events, ["event_key"])


def _step_keys(playbook: Playbook) -> set[str]:
    return {s.key for s in playbook.steps}


def _start_dissatisfied_episode(ledger, case_key: str, ctx: StepContext, playbook, calendar, today) -> bool:
    """Atomically open a dissatisfaction episode: the escalation event and the case flag together."""
    esc = plan_escalation(ctx, "dissatisfied", today, playbook, calendar)
    with ledger.session() as s:
        case = s.get(Case, case_key, with_for_update=True)
        if case is None or case.dissatisfied:
            return False
        prefix = f"escalation:{esc.key}"
        n = 1 + s.scalar(
            select(func.count()).where(SlaEvent.case_key == case_key, SlaEvent.event_key.like(f"{prefix}%"))
        )
        if n > 1:
            esc = replace(esc, key=f"{esc.key}:{n}")
        s.add(
            SlaEvent(
                event_key=f"escalation:{esc.key}",
                kind="escalation",
                case_key=case_key,
                occurred_on=today,
                details={
                    "reason": "dissatisfied",
                    "episode": n,
                    "account_name": ctx.account_name,
                    "owner_role": esc.owner_role,
                    "owner_title": _title(esc.owner_role, playbook),
                    "task": _event_task(esc, playbook),
                },
            )
        )
        case.dissatisfied = True
    return True


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


def _users(sf, usernames: Iterable[str]) -> dict[str, dict]:
    wanted = sorted({u for u in usernames if u})
    if not wanted:
        return {}
    return {r["Username"].casefold(): r for r in sf.query_in_chunks(USER_SOQL, wanted)}


def progress_and_escalate(
    sf,
    sender,
    ledger,
    playbook: Playbook,
    calendar: BusinessCalendar,
    today: dt.date,
    run_id: str | None = None,
    dry_run: bool = False,
) -> dict:
    """Create activated steps, escalate breaches and dissatisfaction, flag undocumented closes, remind,
    close documented cases, and send today's notices. Every action is keyed: a rerun repeats nothing."""
    start = _with_calls(sf)
    plan = plan_sweep(sf, ledger, playbook, calendar, today)
    out = {k: len(plan[k]) for k in PLAN_KINDS} | {"dry_run": dry_run}
    if dry_run:
        log.info(
            "progress_and_escalate %s dry run: %s; activated %s; breaches %s; doc_missing %s",
            today,
            out,
            [p.key for _, p in plan["activated"]],
            [s["step_key"] for _, s in plan["breaches"]],
            plan["doc_missing"],
        )
        return out | {"api_calls": 0, "emails": {}}
    users = sign_plan(sf, plan, playbook, calendar)
    record_intents(ledger, plan, playbook, calendar, today)  # natural keys, before any external write
    work = pending_work(ledger, plan, playbook, today)
    wanted = {u for u in work.usernames(playbook) if u and u.casefold() not in users}
    if wanted and work.anything():
        users |= _users(sf, wanted)
    upserted, failed = write_tasks(sf, ledger, work, users, playbook, today)
    # close documented cases (after the breach check above used their close date)
    ledger.record_case_status(
        {"case_key": ck, "status": "closed", "closed_at": plan["cases"][ck]["closed_at"]}
        for ck in plan["close"]
    )
    # today's notices (derived from today's events, so a retry of the same day sends what is missing)
    emails = _send_notices(sf, sender, ledger, playbook, today, run_id, work.needs_mail, work.cases, users)
    out |= {
        "tasks_upserted": upserted,
        "task_failures": failed,
        "emails": dict(emails),
        "api_calls": _with_calls(sf) - start,
    }
    log.debug("progress_and_escalate %s: %s", today, out)
    if emails.get("failed"):
        raise RuntimeError(
            f"{emails['failed']} email(s) were not accepted by the SMTP server; retry sends them"
        )
    return out


def sign_plan(sf, plan: dict, playbook: Playbook, calendar: BusinessCalendar) -> dict[str, dict]:
    """Name the leads as Salesforce knows them (one User query, only on a day with work to sign): the
    plan's contexts get their lead's name and title, the activated drafts are signed. Returns the users."""
    busy = plan["activated"] or plan["escalate"] or plan["late"] or plan["dissatisfied_start"]
    if not busy:
        return {}
    users = _users(sf, {plan["cases"][ck]["lp_username"] for ck in plan["contexts"]})
    plan["contexts"] = {
        ck: signed(ctx, users.get(ctx.lp_username.casefold())) for ck, ctx in plan["contexts"].items()
    }
    ctxs, anchors = plan["contexts"], plan["anchors"]
    plan["activated"] = [
        (ck, render_step(p.step, ctxs[ck], anchors[p.key], playbook, calendar))
        if playbook.step(p.step).template
        else p
        for ck, p in plan["activated"]
    ]
    return users


def record_intents(ledger, plan: dict, playbook: Playbook, calendar: BusinessCalendar, today: dt.date):
    """The plan's steps, escalations, reminders, dissatisfaction episodes and documentation flags in the
    ledger under natural keys (before any Salesforce write or email)."""
    ctxs = plan["contexts"]
    ledger.upsert_case_steps(
        {
            "step_key": p.key,
            "case_key": ck,
            "step": p.step,
            "owner_username": p.owner_username,
            "owner_role": p.owner_role,
            "due_date": p.due_date,
            "status": "planned",
        }
        for ck, p in plan["activated"]
    )
    _add_overdue_events(ledger, plan, ctxs, playbook, calendar, today)
    for ck, step in plan["reminders"]:
        ledger.add_sla_event(_reminder_event(ck, step, ctxs[ck], today))
    for ck in plan["dissatisfied_start"]:
        _start_dissatisfied_episode(ledger, ck, ctxs[ck], playbook, calendar, today)
    if plan["dissatisfied_end"]:
        ledger.record_case_status({"case_key": ck, "dissatisfied": False} for ck in plan["dissatisfied_end"])
    for ck in plan["doc_missing"]:
        if ledger.add_sla_event(_doc_missing_event(ck, ctxs[ck], playbook, calendar, today)):
            ledger.record_case_status([{"case_key": ck, "doc_missing_flagged_at": dt.datetime.now(dt.UTC)}])


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


@dataclass
class SweepWork:
    """What is still to write after the intents: activated step Tasks, events without their Task (also
    after a crash), today's events without their email, and the ledger cases they belong to."""

    step_rows: dict[str, tuple[str, StepPlan]]
    pending_events: list[dict]
    needs_mail: list[dict]
    cases: dict[str, dict]

    def anything(self) -> bool:
        return bool(self.step_rows or self.pending_events or self.needs_mail)

    def usernames(self, playbook: Playbook) -> set[str]:
        names = {p.owner_username for _, p in self.step_rows.values()}
        names |= {e["details"]["task"]["_owner"] for e in self.pending_events}
        names |= {(self.cases.get(e["case_key"]) or {}).get("lp_username") for e in self.needs_mail}
        roles = {e["details"].get("owner_role") for e in self.needs_mail}
        return names | {playbook.username(r) for r in roles if r in playbook.people.roles}


def pending_work(ledger, plan: dict, playbook: Playbook, today: dt.date) -> SweepWork:
    cases = plan["cases"]
    pending_events = [
        e for e in ledger.events_without_task(TASK_EVENT_KINDS) if (e["details"] or {}).get("task")
    ]
    recent = _events(ledger, since=owed_since(playbook, today))  # a notice stays owed until sent or expired
    known = {**cases, **_cases(ledger, {e["case_key"] for e in recent} - set(cases))}
    needs_mail = [e for e in recent if _owed(ledger, e, known, today)]
    all_cases = {**known, **_cases(ledger, {e["case_key"] for e in pending_events} - set(known))}
    step_rows = {p.key: (ck, p) for ck, p in plan["activated"]}
    return SweepWork(step_rows, pending_events, needs_mail, all_cases)


def write_tasks(sf, ledger, work: SweepWork, users, playbook: Playbook, today: dt.date) -> tuple[int, int]:
    """Upsert the activated steps' and the events' Tasks by external id; an owner who is not an active
    user, or a refused Task, is quarantined. Returns (upserted, failed)."""
    from closed_loop.pipeline.salesforce_writes import upsert_tasks

    records, owners, ext = [], {}, playbook.salesforce.task.external_id
    for key, (ck, p) in work.step_rows.items():
        case = work.cases[ck]
        records.append(p.task_fields(playbook) | _refs(case) | {"OwnerId": _uid(users, p.owner_username)})
        owners[key] = ("step", key)
    for e in work.pending_events:
        task = dict(e["details"]["task"])
        owner = task.pop("_owner")
        records.append(task | _refs(work.cases[e["case_key"]]) | {"OwnerId": _uid(users, owner)})
        owners[task[ext]] = ("event", e["event_key"])
    bad = [r for r in records if not r["OwnerId"]]
    records = [r for r in records if r["OwnerId"]]
    for r in bad:
        ledger.quarantine(
            f"sla_sweep:no_owner:{r[ext]}",
            "sla_sweep",
            None,
            "Task owner is not an active Salesforce user",
            {"key": r[ext]},
        )
    results = upsert_tasks(sf, records, ext) if records else []
    created_steps, failed = {}, 0
    for res in results:
        what, ref = owners[res.key]
        if not res.ok:
            failed += 1
            ledger.quarantine(
                f"sla_sweep:task_failed:{res.key}",
                "sla_sweep",
                None,
                f"Task upsert failed: {res.code}",
                {"key": res.key},
            )
        elif what == "step":
            created_steps[ref] = res.id
        else:
            ledger.set_sla_event_task(ref, res.id)
    created_at = dt.datetime.combine(today, dt.time.min, tzinfo=dt.UTC)  # the logical day
    ledger.mark_steps_created(created_steps, created_at=created_at)
    return len(results), failed + len(bad)


NOTICE_KINDS = ("escalation", "reminder", "doc_missing")


def owed_since(playbook: Playbook, today: dt.date) -> dt.date:
    """The first day whose unsent notices are still owed today (``sla.notice_expiry_days``)."""
    return today - dt.timedelta(days=playbook.sla.notice_expiry_days)


def _owed(ledger, event: Mapping, cases: Mapping[str, dict], today: dt.date) -> bool:
    """A notice event no email has reported yet: not on its own day (the mail server was down or refused:
    the failed send left no row) and not carried into today's notice."""
    if event["kind"] not in NOTICE_KINDS or event["occurred_on"] > today:
        return False
    own = _notice_key(event, cases, event["occurred_on"])
    return ledger.get_email(own) is None and ledger.get_email(_notice_key(event, cases, today)) is None


def _notice_key(event: Mapping, cases: Mapping[str, dict], today: dt.date) -> str:
    """The email that reports ``event``: the LP's daily notice for breaches and reminders, else its own."""
    if event["kind"] == "reminder" or (event["details"] or {}).get("reason") == "overdue":
        return email_key("lp_notice", today, cases[event["case_key"]]["lp_username"])
    return event["event_key"]


def _cases(ledger, keys: Iterable[str]) -> dict[str, dict]:
    keys = list(keys)
    if not keys:
        return {}
    with ledger.session() as s:
        return {
            c.case_key: {k.key: getattr(c, k.key) for k in Case.__table__.columns}
            for c in s.scalars(select(Case).where(Case.case_key.in_(keys)))
        }


def _refs(case: Mapping) -> dict:
    refs = {"WhatId": case["sf_case_id"]}
    if case.get("contact_id"):
        refs["WhoId"] = case["contact_id"]
    return refs


def _uid(users: Mapping[str, dict], username: str | None) -> str | None:
    user = users.get((username or "").casefold())
    return user["Id"] if user and user.get("IsActive", True) else None


def _email_of(users: Mapping[str, dict], username: str | None) -> str | None:
    user = users.get((username or "").casefold())
    return (user or {}).get("Email")


def _first_name(users: Mapping[str, dict], username: str | None, fallback: str) -> str:
    """How to greet a user: their first name in Salesforce, else their full name, else ``fallback``."""
    user = users.get((username or "").casefold()) or {}
    return user.get("FirstName") or user.get("Name") or fallback


def _dissatisfied_context(sf, ledger, case: Mapping, playbook, users) -> dict:
    """What management needs to decide: the answers that fired, the comments, MRR and the lead."""
    ctx = step_context(
        case,
        playbook,
        _case_url(sf, case["sf_case_id"]),
        _triggers(ledger, [case["case_key"]]).get(case["case_key"], ()),
    )
    ctx = signed(ctx, users.get((case.get("lp_username") or "").casefold()))
    return {
        "why": [describe_trigger(t, playbook) for t in ctx.triggers],
        "comments": list(ctx.comments),
        "mrr": ctx.mrr,
        "lead": lead_words(ctx, playbook),
        "response_url": ctx.response_url or None,
    }


def _send_notices(sf, sender, ledger, playbook, today, run_id, events, cases, users) -> Counter:
    """LP notices (one per LP per day: breaches + reminders), dissatisfied escalations to the owner,
    documentation flags to the LP. Each keyed in the ledger; a missing address is quarantined."""
    outcomes: Counter = Counter()
    company = playbook.company.name
    by_lp: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        case, d = cases[e["case_key"]], e["details"] or {}
        url = _case_url(sf, case["sf_case_id"])
        if e["kind"] == "reminder" or d.get("reason") == "overdue":
            listed = d.get("steps") or [{"step": d.get("step"), "step_title": d.get("step_title"),
                                         "due_date": d.get("due_date")}]  # fmt: skip
            by_lp[case["lp_username"]] += [
                {
                    "account_name": d.get("account_name"),
                    "subject": st.get("step_title") or playbook.step(st["step"]).title,
                    "due_date": st.get("due_date"),
                    "case_url": url,
                    "overdue": e["kind"] == "escalation",
                    "_carried": _notice_key(e, cases, e["occurred_on"]) if e["occurred_on"] < today else None,
                }
                for st in listed
            ]
            continue
        subject_case = f"Post-implementation feedback needs follow-up: {d.get('account_name')}"
        if e["kind"] == "escalation":  # dissatisfied: the escalation owner
            owner = playbook.username(d["owner_role"])
            to = _email_of(users, owner)
            ctx = {
                "company": company,
                "reason": "dissatisfied",
                "owner_name": _first_name(users, owner, d.get("owner_title") or ""),
                "account_name": d.get("account_name"),
                "case_subject": subject_case,
                "case_url": url,
                "owner_title": d.get("owner_title"),
                "late_steps": [],
            } | _dissatisfied_context(sf, ledger, case, playbook, users)
            tpl, subject = "escalation_notice", f"Escalation: {d.get('account_name')} is still dissatisfied"
        else:  # doc_missing: the LP
            to = _email_of(users, case["lp_username"])
            ctx = {
                "company": company,
                "lp_name": _first_name(users, case["lp_username"], _title(case.get("lp_role"), playbook)),
                "account_name": d.get("account_name"),
                "case_subject": subject_case,
                "case_url": url,
                "missing": field_labels(playbook.sla.documentation_fields),
            }
            tpl, subject = "doc_missing_notice", f"Please document the closed case: {d.get('account_name')}"
        outcomes[_send(ledger, sender, e["event_key"], to, subject, tpl, ctx, e["kind"], run_id)] += 1
    for lp, steps in sorted(by_lp.items()):
        role = next((c.get("lp_role") for c in cases.values() if c.get("lp_username") == lp), None)
        ctx = {"company": company, "lp_name": _first_name(users, lp, _title(role, playbook)), "steps": steps}
        n = sum(s["overdue"] for s in steps)
        subject = f"{n} overdue follow-up step(s)" if n else "Follow-up steps due soon"
        key = email_key("lp_notice", today, lp)  # == _notice_key of each of these events
        outcome = _send(
            ledger, sender, key, _email_of(users, lp), subject, "lp_overdue_notice", ctx, "lp_notice", run_id
        )
        outcomes[outcome] += 1
        if outcome in ("sent", "unconfirmed"):  # notices owed from an earlier day went out in this one
            outbox.carry(ledger, {s["_carried"] for s in steps if s["_carried"]}, key)
    return outcomes


def _send(ledger, sender, key, to, subject, template, context, kind, run_id) -> str:
    if not to:
        ledger.quarantine(
            f"sla_sweep:no_email:{key}",
            "sla_sweep",
            None,
            "recipient has no email address",
            {"email_key": key},
        )
        return "no_address"
    try:
        text = render(f"{template}.txt", **context)
        html = render(f"{template}.html", **context)
        message = outbox.build_message(key, [to], subject, text, html)
    except Exception as exc:  # one bad message never stops the others
        ledger.quarantine(
            f"sla_sweep:bad_email:{key}",
            "sla_sweep",
            None,
            f"the {kind} email could not be built: {type(exc).__name__}: {str(exc)[:200]}",
            {"email_key": key},
        )
        return "quarantined"
    return outbox.send_once(ledger, sender, key, message, kind, run_id)


# -- 3. recovery pulses --------------------------------------------------------------------------------


def recovery_key(case_key: str) -> str:
    return f"recovery:{case_key}"


def pulse_collector_name(today: dt.date) -> str:
    return f"closed-loop recovery pulse {today.isoformat()}"


def _plan_recovery(ledger, playbook: Playbook, today: dt.date) -> list[dict]:
    """A send row for each case closed (documented) recently that has none yet."""
    if not playbook.recovery.send_on_close:
        return []
    lookback = dt.timedelta(days=playbook.recovery.pulse_lookback_days)
    since = dt.datetime.combine(today - lookback, dt.time(), dt.UTC)
    with ledger.session() as s:
        stmt = (
            select(Case, Contact)
            .outerjoin(SurveySend, SurveySend.send_key == literal("recovery:").concat(Case.case_key))
            .outerjoin(Contact, Contact.sf_id == Case.contact_id)
            .where(Case.status == "closed", Case.closed_at >= since, SurveySend.send_key.is_(None))
            .order_by(Case.case_key)
        )
        rows = []
        for case, contact in s.execute(stmt).all():
            row = {
                "send_key": recovery_key(case.case_key),
                "kind": "recovery",
                "account_id": case.account_id,
                "contact_id": case.contact_id,
                "due_date": today,
                "case_key": case.case_key,
            }
            if contact is None or not (contact.email or "").strip():
                row |= {"status": "skipped", "reason": "no contact email"}
            elif contact.opted_out:
                row |= {"status": "opted_out", "reason": "contact opted out of email"}
            rows.append(row)
        return rows


def _contacts(ledger, ids: Iterable[str]) -> dict[str, dict]:
    with ledger.session() as s:
        rows = s.scalars(select(Contact).where(Contact.sf_id.in_(list(ids))))
        return {
            c.sf_id: {"email": c.email, "first_name": c.first_name, "last_name": c.last_name} for c in rows
        }


@carry_over_when_budget_exhausted
def send_recovery_pulses(
    sm, ledger, playbook: Playbook, today: dt.date, run_id: str | None = None, dry_run: bool = False
) -> dict:
    """Send the recovery pulse to the contact of every case closed with documentation, once per case.

    Crash-safe like the invites: send rows (natural key ``recovery:<case_key>``, carrying ``case_key``)
    are claimed (intent, with the message id) before recipients are added; a retry reconciles intents
    against the message's recipients. One collector per sweep date.
    """
    from closed_loop.pipeline.dispatch import complete_message  # the invites' crash-safe send

    start = _with_calls(sm)
    planned = _plan_recovery(ledger, playbook, today)
    pending = [r for r in ledger.pending_intents() if r["kind"] == "recovery"]
    out = {
        "planned": len(planned),
        "skipped": sum(r.get("status") in ("skipped", "opted_out") for r in planned),
        "reconciled": 0,
        "sent": 0,
        "rejected": 0,
        "dry_run": dry_run,
    }
    if dry_run:
        log.info(
            "send_recovery_pulses %s dry run: would plan %s, reconcile %d",
            today,
            [r["send_key"] for r in planned],
            len(pending),
        )
        return out | {"api_calls": 0}
    ledger.plan_sends(planned)
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in pending:
        groups[(row["collector_id"], row["message_id"])].append(row)
    for (collector_id, message_id), rows in groups.items():
        if not (collector_id and message_id):
            ledger.release_intents([r["send_key"] for r in rows])
            continue
        contacts = _contacts(ledger, [r["contact_id"] for r in rows])
        sent, _ = complete_message(sm, ledger, collector_id, message_id, rows, contacts, today, fresh=False)
        out["reconciled"] += sent
    due = ledger.sends_due(today, kind="recovery")
    if due:
        sm.budget_guard(5)
        survey_id = require_survey_id(sm, ledger, playbook.surveys.recovery_pulse)
        collector_id = sm.get_or_create_email_collector(survey_id, pulse_collector_name(today))["id"]
        subject, body = render_message("recovery_pulse", playbook)
        message = sm.create_message(collector_id, "invite", subject, body)
        claimed = set(
            ledger.mark_send_intent(
                [r["send_key"] for r in due],
                run_id or "",
                message_id=message["id"],
                collector_id=collector_id,
                survey_id=survey_id,
            )
        )
        intents = [r | {"message_id": message["id"]} for r in due if r["send_key"] in claimed]
        contacts = _contacts(ledger, [r["contact_id"] for r in intents])
        sent, rejected = complete_message(
            sm, ledger, collector_id, message["id"], intents, contacts, today, fresh=True
        )
        out["sent"], out["rejected"] = sent, rejected
    out["api_calls"] = _with_calls(sm) - start
    log.debug("send_recovery_pulses %s: %s", today, out)
    return out


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from ``first`` up to the day before ``last``."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days)]


def _owed_notices(ledger, playbook: Playbook, today: dt.date) -> list[dict]:
    """Notices still owed after today's sends (the mail server down or refusing), with the day each
    expires (``sla.notice_expiry_days`` after its event): listed in the digest until sent or expired."""
    events = [e for e in _events(ledger, since=owed_since(playbook, today)) if e["kind"] in NOTICE_KINDS]
    cases = _cases(ledger, {e["case_key"] for e in events})
    expiry = dt.timedelta(days=playbook.sla.notice_expiry_days)
    return [
        {
            "kind": e["kind"],
            "account_name": (e["details"] or {}).get("account_name"),
            "since": e["occurred_on"].isoformat(),
            "expires": (e["occurred_on"] + expiry).isoformat(),
        }
        for e in events
        if e["case_key"] in cases and _owed(ledger, e, cases, today)
    ]


# -- 4. ops digest -------------------------------------------------------------------------------------


def ops_digest(
    sender, ledger, playbook: Playbook, today: dt.date, run_id: str | None = None, dry_run: bool = False
) -> dict:
    """One email to ops with today's breaches, dissatisfied customers, documentation gaps, unreported
    quarantines and unconfirmed emails; nothing when all are empty. Account names only, no PII."""
    missed = [
        d
        for d in _days(owed_since(playbook, today), today)
        if ledger.get_email(email_key("digest", d)) is None
    ]
    events = [
        e for e in _events(ledger, since=min(missed, default=today)) if e["occurred_on"] in {*missed, today}
    ]
    breaches, sad, gaps = [], [], []
    for e in events:
        d = e["details"] or {}
        if e["kind"] == "breach":
            outcome = d.get("escalated_to") or (
                f"completed late on {d['completed_on']}" if d.get("completed_on") else "case already closed"
            )
            breaches.append(
                {
                    "account_name": d.get("account_name"),
                    "step_title": d.get("step_title"),
                    "due_date": d.get("due_date"),
                    "owner_title": outcome,
                }
            )
        elif e["kind"] == "escalation" and d.get("reason") == "overdue":
            continue  # listed through its breaches
        elif e["kind"] == "escalation":
            sad.append({"account_name": d.get("account_name"), "owner_title": d.get("owner_title")})
        elif e["kind"] == "doc_missing":
            gaps.append({"account_name": d.get("account_name")})
    quarantined = ledger.unreported_quarantine()
    groups = Counter((q["source"], q["reason"][:120]) for q in quarantined)
    quarantines = [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(groups.items())]
    unconfirmed = outbox.unconfirmed_emails(ledger)
    owed = _owed_notices(ledger, playbook, today)
    totals = {
        "breaches": len(breaches),
        "dissatisfied": len(sad),
        "doc_gaps": len(gaps),
        "quarantined": len(quarantined),
        "unconfirmed": len(unconfirmed),
        "owed": len(owed),
    }
    out = dict(totals, dry_run=dry_run, outcome="nothing")
    if not any(totals.values()):
        log.info("ops_digest %s: nothing to report", today)
        return out
    ctx = {
        "company": playbook.company.name,
        "day": today.isoformat(),
        "breaches": breaches,
        "dissatisfied": sad,
        "doc_gaps": gaps,
        "quarantines": quarantines,
        "unconfirmed": unconfirmed,
        "owed": owed,
        "carried_days": [d.isoformat() for d in missed],
        "totals": totals,
    }
    key = email_key("digest", today)
    message = outbox.build_message(
        key,
        playbook.people.ops_digest_emails,
        f"Closed-loop SLA digest {today}",
        render("ops_digest.txt", **ctx),
        render("ops_digest.html", **ctx),
    )
    out["outcome"] = outbox.send_once(ledger, sender, key, message, "digest", run_id, dry_run)
    if out["outcome"] == "sent":
        ledger.mark_quarantine_reported([q["q_key"] for q in quarantined])
        outbox.mark_unconfirmed(ledger, [u["email_key"] for u in unconfirmed])
    if out["outcome"] in ("sent", "unconfirmed"):  # the digests of the missed days went out in this one
        outbox.carry(ledger, [email_key("digest", d) for d in missed], key)
    log.debug("ops_digest %s: %s", today, out)
    if out["outcome"] == "failed":
        raise RuntimeError("the ops digest was not accepted by the SMTP server; retry sends it")
    return out
