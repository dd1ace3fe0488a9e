"""Step 2 of the sweep: ``progress_and_escalate`` records the plan's intents, writes their Tasks to
Salesforce, closes documented cases and sends the day's notices."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.plan import (
    StepPlan,
    render_step,
    signed,
)
from closed_loop.domain.records import task_record
from closed_loop.pipeline.salesforce_writes import UserDirectory, create_records_once, lookup_users
from closed_loop.pipeline.sweep.common import _with_calls, stored_task_record
from closed_loop.pipeline.sweep.notices import _owed, _send_notices, owed_since
from closed_loop.pipeline.sweep.plan import PLAN_KINDS, plan_sweep
from closed_loop.pipeline.sweep.sla_events import (
    _add_overdue_events,
    _dissatisfied_episode,
    _doc_missing_event,
    _reminder_event,
)
from closed_loop.playbook import Playbook

log = logging.getLogger(__name__)


TASK_EVENT_KINDS = ("escalation", "doc_missing", "late_completion")


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
    asked = {u.casefold() for u in _plan_usernames(plan, playbook)}  # looked up already, found or not
    wanted = {u for u in work.usernames(playbook) if u and u.casefold() not in asked and not users.record(u)}
    if wanted and work.anything():
        users = UserDirectory({**users.by_username, **lookup_users(sf, wanted).by_username})
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


def sign_plan(sf, plan: dict, playbook: Playbook, calendar: BusinessCalendar) -> UserDirectory:
    """Name the leads as Salesforce knows them (one User query, only on a day with work to sign): the
    plan's contexts get their lead's name and title, the activated drafts are signed. Returns the users."""
    names = _plan_usernames(plan, playbook)
    if not names:
        return UserDirectory()
    users = lookup_users(sf, names)
    plan["contexts"] = {
        ck: signed(ctx, users.record(ctx.lp_username)) for ck, ctx in plan["contexts"].items()
    }
    ctxs, anchors = plan["contexts"], plan["anchors"]
    plan["activated"] = [
        (ck, render_step(p.step, ctxs[ck], anchors[p.key], playbook, calendar))
        if playbook.step(p.step).template
        else p
        for ck, p in plan["activated"]
    ]
    return users


def _plan_usernames(plan: dict, playbook: Playbook) -> set[str]:
    """Who a busy day's plan names (its LPs, the activated steps' owners, the playbook's roles, who own
    escalations): one User query for the signing and the Tasks and notices after it. Empty on a quiet day."""
    if not (plan["activated"] or plan["escalate"] or plan["late"] or plan["dissatisfied_start"]):
        return set()
    names = {plan["cases"][ck]["lp_username"] for ck in plan["contexts"]}
    names |= {p.owner_username for _, p in plan["activated"]}
    return {u for u in names | {r.username for r in playbook.people.roles.values()} if u}


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
    ledger.add_sla_events(_reminder_event(ck, step, ctxs[ck], today) for ck, step in plan["reminders"])
    ledger.start_dissatisfied_episodes(
        {
            ck: _dissatisfied_episode(ck, ctxs[ck], playbook, calendar, today)
            for ck in plan["dissatisfied_start"]
        }
    )
    if plan["dissatisfied_end"]:
        ledger.record_case_status({"case_key": ck, "dissatisfied": False} for ck in plan["dissatisfied_end"])
    ledger.flag_doc_missing(
        [_doc_missing_event(ck, ctxs[ck], playbook, calendar, today) for ck in plan["doc_missing"]],
        flagged_at=dt.datetime.now(dt.UTC),
    )


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
    recent = ledger.sla_events_since(owed_since(playbook, today))  # a notice stays owed until sent or expired
    known = {**cases, **ledger.cases_by_key({e["case_key"] for e in recent} - set(cases))}
    needs_mail = _owed(ledger, recent, known, today)
    all_cases = {**known, **ledger.cases_by_key({e["case_key"] for e in pending_events} - set(known))}
    step_rows = {p.key: (ck, p) for ck, p in plan["activated"]}
    return SweepWork(step_rows, pending_events, needs_mail, all_cases)


def write_tasks(
    sf, ledger, work: SweepWork, users: UserDirectory, playbook: Playbook, today: dt.date
) -> tuple[int, int]:
    """Create the activated steps' and the events' Tasks once (a replay after a crash finds them by
    external id and leaves the LP's Status, Priority and owner as they are); an owner who is not an
    active user, or a refused Task, is quarantined. Returns (written, failed)."""
    ext = playbook.salesforce.task.external_id
    records, owners = _task_records(work, users, playbook)
    bad = [r for r in records if not r.get("OwnerId")]
    records = [r for r in records if r.get("OwnerId")]
    reason = "Task owner is not an active Salesforce user"
    ledger.quarantine_all(_quarantine_row(f"no_owner:{r[ext]}", reason, r[ext]) for r in bad)
    results = create_records_once(sf, "Task", ext, records, playbook)
    refused = [res for res in results if not res.ok]
    ledger.quarantine_all(
        _quarantine_row(f"task_failed:{res.key}", f"Task upsert failed: {res.code}", res.key)
        for res in refused
    )
    done = {owners[res.key]: res.id for res in results if res.ok}
    ledger.set_sla_event_tasks({ref: i for (what, ref), i in done.items() if what == "event"})
    created_steps = {ref: i for (what, ref), i in done.items() if what == "step"}
    created_at = dt.datetime.combine(today, dt.time.min, tzinfo=dt.UTC)  # the logical day
    ledger.mark_steps_created(created_steps, created_at=created_at)
    return len(results), len(refused) + len(bad)


def _task_records(work: SweepWork, users: UserDirectory, playbook: Playbook) -> tuple[list, dict]:
    """The Task records to create (activated steps, then the events' Tasks as recorded in their details),
    and ``{external id: ("step", step key) | ("event", event key)}``."""
    records, owners = [], {}
    for key, (ck, p) in work.step_rows.items():
        case = work.cases[ck]
        records.append(task_record(
            playbook, key=p.key, subject=p.subject, description=p.description, due=p.due_date,
            priority=p.priority, owner_id=users.id(p.owner_username), what_id=case["sf_case_id"],
            who_id=case.get("contact_id"),
        ))  # fmt: skip
        owners[key] = ("step", key)
    for e in work.pending_events:
        stored, case = e["details"]["task"], work.cases[e["case_key"]]
        owner_id = users.id(stored["_owner"])
        records.append(
            stored_task_record(playbook, stored, owner_id, case["sf_case_id"], case.get("contact_id"))
        )
        owners[stored[playbook.salesforce.task.external_id]] = ("event", e["event_key"])
    return records, owners


def _quarantine_row(what: str, reason: str, key: str) -> dict:
    return {"q_key": f"sla_sweep:{what}", "source": "sla_sweep", "record_id": None, "reason": reason,
            "payload": {"key": key}}  # fmt: skip
