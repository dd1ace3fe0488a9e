"""SOP 6 "if the customer remains dissatisfied, escalate ... keep the customer informed": a negative
recovery pulse (``domain.recovery``) escalates its Case.

``escalate_dissatisfied_pulses`` runs with open_cases. For each negative pulse not handled yet it records,
in one ledger transaction, an escalation event (keyed by the pulse, so once per pulse) and reopens the
ledger Case with its dissatisfaction flag set (the sweep then sees the episode as already escalated and
sends management's notice with the day's escalations). Then, in Salesforce: the Case is set to the
playbook's dissatisfied status (which reopens it), management gets the escalation Task and the LP a Task
to keep the customer informed. The Tasks are created once by external id (``create_records_once``: a
replay finds them and leaves the LP's Status, Priority and owner alone); the Case status is an upsert (an
intended change). A rerun repeats nothing.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date

from closed_loop.domain.plan import StepPlan, plan_escalation
from closed_loop.pipeline.salesforce_writes import create_records_once, lookup_users, upsert_cases
from closed_loop.pipeline.sweep.common import stored_task_record

log = logging.getLogger(__name__)

SOURCE = "recovery_pulse"


def event_key(case_key: str, response_id: str) -> str:
    return f"escalation:{case_key}:escalate:dissatisfied:pulse:{response_id}"


def _pending(ledger) -> list[tuple[str, str]]:
    """(pulse response id, case key) of negative pulses whose escalation is not recorded yet."""
    rows = ledger.negative_recovery_pulses()
    done = ledger.existing_event_keys(event_key(ck, rid) for rid, ck in rows)
    return [(rid, ck) for rid, ck in rows if event_key(ck, rid) not in done]


def _tasks(
    ctx, response_id: str, answers: list[dict], playbook, calendar, today: date
) -> tuple[StepPlan, ...]:
    what = "; ".join(f'{t["heading"]}: "{t["answer"]}"' for t in answers) or "a negative answer"
    esc = plan_escalation(ctx, "dissatisfied", today, playbook, calendar)
    esc = replace(
        esc,
        key=f"{esc.key}:pulse:{response_id}",
        description=f"The recovery pulse after the follow-up says the customer remains dissatisfied "
        f"({what}).\n\n{esc.description}",
    )
    inform = StepPlan(
        key=f"{ctx.response_id}:inform_escalation:{response_id}",
        step="inform_escalation",
        subject=f"Keep the customer informed of the escalation: {ctx.account_name}"[:255],
        owner_username=ctx.lp_username,
        owner_role="lp",
        due_date=calendar.add_business_days(today, playbook.recovery.inform_task.due_business_days),
        priority=playbook.recovery.inform_task.priority,
        description=(
            f"The customer's recovery pulse is negative ({what}): the case was escalated to "
            f"{playbook.people.roles[esc.owner_role].title} and reopened. Tell the customer about the "
            "escalation and keep them updated until it is resolved (SOP 6.2).\n\n"
            f"Survey response: {ctx.response_url}"
        ),
        start_date=today,
    )
    return esc, inform


def _event(ck: str, rid: str, esc: StepPlan, inform: StepPlan, playbook, account: str) -> dict:
    """The pulse's escalation event: recorded with its case reopened, so the sweep sees it as escalated."""
    fields = playbook.salesforce.task
    return dict(
        event_key=event_key(ck, rid), kind="escalation", case_key=ck, occurred_on=esc.start_date,
        details={
            "reason": "dissatisfied", "source": SOURCE, "response_id": rid, "account_name": account,
            "owner_role": esc.owner_role, "owner_title": playbook.people.roles[esc.owner_role].title,
            "task": esc.task_fields(playbook) | {"_owner": esc.owner_username},
            "inform_task": inform.task_fields(playbook) | {"_owner": inform.owner_username},
            "task_key": esc.key, "external_id": fields.external_id,
        },
    )  # fmt: skip


def escalate_dissatisfied_pulses(sf, ledger, playbook, calendar, today: date, dry_run: bool = False) -> int:
    """Escalate every negative recovery pulse once (see the module doc). Returns how many were escalated
    (or would be, in a dry run). Salesforce calls when there is work: 1 user query, 1 Case upsert, 1 Task
    create (per 1000)."""
    todo = _plan(ledger, playbook, calendar, today)
    if dry_run or not todo:
        if todo:
            log.info("DRY RUN recovery: would escalate %s", [t[1]["case_key"] for t in todo])
        return len(todo)
    ledger.record_reopening_escalations(
        _event(case["case_key"], rid, esc, inform, playbook, name) for rid, case, name, esc, inform in todo
    )
    _write_salesforce(sf, ledger, playbook)
    log.info("recovery: %d negative pulse(s) escalated: %s", len(todo), [t[1]["case_key"] for t in todo])
    return len(todo)


def _plan(ledger, playbook, calendar, today: date) -> list[tuple]:
    """(pulse id, case, account name, escalation Task, inform Task) for each pending negative pulse whose
    case is in Salesforce with its plan."""
    from closed_loop.pipeline.intake import context_from_json

    todo = []
    for rid, ck in _pending(ledger):
        case = ledger.get_case(ck)
        if not case or not case.get("plan") or not case.get("sf_case_id"):
            continue
        triggers = (ledger.get_response(rid) or {}).get("triggers") or []
        ctx = context_from_json(case["plan"])
        todo.append((rid, case, ctx.account_name, *_tasks(ctx, rid, triggers, playbook, calendar, today)))
    return todo


def _write_salesforce(sf, ledger, playbook) -> None:
    """Every pulse escalation without its Task (this run's, or a crashed run's): the Case set to the
    dissatisfied status, then the escalation and inform Tasks; each escalation Task's id recorded."""
    events = [
        e for e in ledger.events_without_task(["escalation"]) if (e["details"] or {}).get("source") == SOURCE
    ]
    if not events:
        return
    cases = ledger.cases_by_key(e["case_key"] for e in events)
    owners = {e["details"][t]["_owner"] for e in events for t in ("task", "inform_task")}
    fallback = playbook.username(playbook.routing.missing_tsm.role)
    users = lookup_users(sf, owners | {fallback})
    rule, ext = playbook.sla.dissatisfied_when, playbook.salesforce.case.external_id
    upsert_cases(sf, [{ext: ck, rule.field: rule.equals} for ck in cases], ext)
    rows, by_task = _task_rows(events, cases, lambda owner: users.id(owner) or users.id(fallback), playbook)
    done = {}
    for res in create_records_once(sf, "Task", playbook.salesforce.task.external_id, rows, playbook):
        if res.ok and res.key in by_task:
            done[by_task[res.key]] = res.id
        elif not res.ok:
            log.warning("recovery escalation Task %s refused by Salesforce: %s", res.key, res.code)
    ledger.set_sla_event_tasks(done)


def _task_rows(events: list[dict], cases: dict, owner_id, playbook) -> tuple[list[dict], dict[str, str]]:
    """The Task rows (escalation and inform) of the events, and ``{escalation Task key: event key}``."""
    rows, by_task = [], {}
    for e in events:
        case = cases[e["case_key"]]
        for name in ("task", "inform_task"):
            task = e["details"][name]
            owner = owner_id(task["_owner"])
            rows.append(stored_task_record(playbook, task, owner, case["sf_case_id"], case.get("contact_id")))
            if name == "task":
                by_task[task[playbook.salesforce.task.external_id]] = e["event_key"]
    return rows, by_task
