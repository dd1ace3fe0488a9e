"""``open_cases``: write the planned Cases and their SOP step Tasks to Salesforce (created once by external
id), owners resolved with one User query and the lead re-decided on the accounts as Salesforce has them;
Cases opened from a partial and completed later are updated in place."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from closed_loop.domain.plan import render_step, signed
from closed_loop.pipeline.intake.alerts import alert_rows, close_fixed_alerts
from closed_loop.pipeline.intake.common import (
    QUARANTINE_SOURCES,
    SF_SOURCE,
    Problem,
    context_from_json,
    plan_to_json,
)
from closed_loop.pipeline.intake.plan import flag_reason
from closed_loop.pipeline.lead import ROLES_CHECKED, decide_leads, read_accounts
from closed_loop.pipeline.recovery import escalate_dissatisfied_pulses
from closed_loop.pipeline.salesforce_writes import (
    UserDirectory,
    create_records_once,
    lookup_users,
    upsert_cases,
)

log = logging.getLogger(__name__)


@dataclass
class OpenSummary:
    dry_run: bool = False
    cases_pending: int = 0
    cases_created: int = 0
    cases_updated: int = 0
    tasks_created: int = 0
    tasks_updated: int = 0
    failures: int = 0
    alerts_sent: int = 0
    alerts_closed: int = 0  # data-quality Tasks completed because their record now exists
    owner_fallbacks: int = 0
    rerouted: int = 0  # Cases whose lead changed with the accounts/users as Salesforce has them now
    recovery_escalations: int = 0  # negative recovery pulses escalated (SOP 6)
    cases_completed: int = 0  # Cases opened from a partial, updated with the completed response
    sf_calls: int = 0
    case_keys: list[str] = field(default_factory=list)

    def as_xcom(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "case_keys"}


@dataclass
class Owners:
    """Usernames -> active Salesforce User ids; a missing/inactive user falls back to ``fallback``, and
    each such use is counted and recorded as a problem."""

    ids: dict[str, str]
    fallback: str
    fallbacks: int = 0
    problems: list[Problem] = field(default_factory=list)
    users: dict[str, dict] = field(default_factory=dict)  # username -> User (Name, Title: signatures)

    def user_for(self, username: str) -> dict | None:
        """The User record that ends up owning ``username``'s Tasks (the fallback when inactive)."""
        return self.users.get(username) or self.users.get(self.fallback)

    def id_for(self, username: str, key: str) -> str | None:
        if username in self.ids:
            return self.ids[username]
        self.fallbacks += 1
        self.problems.append(Problem(
            f"intake_sf:owner:{username}", username,
            f"Salesforce user {username} is missing or inactive: its cases and tasks go to {self.fallback}",
            {"case_key": key.split(":")[0], "username": username},
        ))  # fmt: skip
        return self.ids.get(self.fallback)


@dataclass
class OpenPlan:
    """What open_cases writes: Case rows (owners resolved), the Cases already in Salesforce, the step
    Tasks of every pending case (written once its Case has an id) and the data-quality alerts."""

    pending: list[dict]
    alerts: list[dict]
    owners: Owners
    dq_user: str
    case_rows: list[dict] = field(default_factory=list)
    case_ids: dict[str, str] = field(default_factory=dict)


CASE_CHUNK = 1000  # pending Cases opened together (one Composite call of Cases): memory flat with the backlog


def open_cases(sf_hook, ledger, playbook, calendar, today: date, dry_run: bool = False) -> OpenSummary:
    """Write every planned case to Salesforce, ``CASE_CHUNK`` cases at a time: Case creates, then Task
    creates (step Tasks; the data-quality Task of every unreported intake quarantine item goes with the
    last chunk), then mark them in the ledger. Owners come from one User query (a later chunk asks only
    for usernames not seen yet). Creates go through ``create_records_once``: a replay (a crash, a ledger
    restored from backup) finds the records by external id and never resets a Task the LP completed or
    a Case's Status, Priority or Owner.

    Salesforce calls: 1 user query + ``ceil(cases/1000)`` + ``ceil(tasks/1000)`` (Composite); none when idle.
    Per-record failures are quarantined with Salesforce's error and retried on the next run.
    """
    summary = OpenSummary(dry_run=dry_run)
    calls_before = sf_hook.calls_made
    keys = ledger.case_keys_needing_salesforce()
    summary.recovery_escalations = escalate_dissatisfied_pulses(
        sf_hook, ledger, playbook, calendar, today, dry_run
    )
    summary.cases_completed = update_completed_partials(sf_hook, ledger, playbook, dry_run)
    users = _Users()
    chunks = [keys[i : i + CASE_CHUNK] for i in range(0, len(keys), CASE_CHUNK)] or [[]]
    for n, chunk in enumerate(chunks):
        context = (playbook, calendar, today, dry_run)
        _open_chunk(sf_hook, ledger, chunk, n == len(chunks) - 1, users, context, summary)
    summary.sf_calls = sf_hook.calls_made - calls_before
    if not dry_run:
        log.debug("open_cases: %s; cases %s", summary.as_xcom(), summary.case_keys)
    return summary


def _open_chunk(sf_hook, ledger, keys: list[str], last: bool, users: _Users, context, summary) -> None:
    """One chunk of open_cases: read (pending cases, accounts, owners), re-decide the leads, plan, apply;
    the last chunk also carries the data-quality alerts."""
    playbook, calendar, today, dry_run = context
    pending, alerts = cases_to_open(ledger, keys, alerts=last)
    summary.cases_pending += len(pending)
    summary.case_keys += [c["case_key"] for c in pending]
    if not pending and not alerts:
        return
    owners, accounts = read_owners(sf_hook, pending, playbook, users)
    new = [c for c in pending if not c.get("sf_case_id")]
    rerouted = decide_leads(new, accounts, {u.casefold() for u in owners.ids}, playbook, calendar)
    summary.rerouted += len(rerouted)
    if rerouted:
        _store_decisions(ledger, rerouted, accounts, playbook, dry_run)
        if not dry_run and last:
            alerts = [q for q in ledger.unreported_quarantine() if q["source"] in QUARANTINE_SOURCES]
    plan = plan_open(pending, alerts, owners, playbook)
    if dry_run:
        summary.owner_fallbacks += plan.owners.fallbacks
        steps = sum(len(c["pending_steps"]) for c in pending)
        log.info(
            "DRY RUN open_cases: %d case(s) to create %s, %d step task(s), %d data-quality alert(s) %s",
            len(plan.case_rows), [c["case_key"] for c in pending], steps, len(alerts),
            [a["q_key"] for a in alerts],
        )  # fmt: skip
        return
    apply_open(sf_hook, ledger, plan, playbook, calendar, today, summary)


def cases_to_open(
    ledger, keys: list[str] | None = None, alerts: bool = True
) -> tuple[list[dict], list[dict]]:
    """Planned cases still to write (or with planned steps still to write; of ``keys`` when given), and
    unreported intake quarantine items (each becomes a data-quality Task; none with ``alerts=False``)."""
    pending = [  # steps another pipeline added (follow-up, escalations) are written by that pipeline
        c for c in ledger.cases_needing_salesforce(keys)
        if c.get("plan") and (not c.get("sf_case_id")
                              or any(s["step_key"] in c["plan"]["steps"] for s in c["pending_steps"]))
    ]  # fmt: skip
    if not alerts:
        return pending, []
    return pending, [q for q in ledger.unreported_quarantine() if q["source"] in QUARANTINE_SOURCES]


@dataclass
class _Users:
    """The Salesforce Users looked up this run: a later chunk asks only for the usernames not seen yet."""

    asked: set[str] = field(default_factory=set)
    found: dict[str, dict] = field(default_factory=dict)  # casefolded username -> User

    def lookup(self, sf_hook, wanted) -> UserDirectory:
        new = {u for u in wanted if u} - self.asked
        if new:
            self.found |= dict(lookup_users(sf_hook, new).by_username)
            self.asked |= new
        return UserDirectory(dict(self.found))


def read_owners(sf_hook, pending: list[dict], playbook, users: _Users | None = None) -> tuple[Owners, dict]:
    """The new cases' accounts as Salesforce has them now (one SOQL), and one User query for every owner
    the pending cases and those accounts name, the role users, the data-quality owner and the fallback."""
    fallback_user = playbook.username(playbook.routing.missing_tsm.role)
    wanted = {playbook.username(playbook.people.data_quality_owner), fallback_user}
    wanted |= {playbook.username(r) for r in ROLES_CHECKED}
    new = [c for c in pending if not c.get("sf_case_id")]
    accounts = read_accounts(sf_hook, playbook, (c["account_id"] for c in new)) if new else {}
    wanted |= {(r.get(playbook.salesforce.account.tsm_relationship) or {}).get("Username")
               for r in accounts.values()}  # fmt: skip
    for case in pending:
        wanted.add(case["plan"]["owner_username"])
        wanted |= {s["owner_username"] for s in case["plan"]["steps"].values()}
    directory = (users or _Users()).lookup(sf_hook, wanted)
    found = {u: directory.active(u) for u in sorted(u for u in wanted if directory.active(u))}
    return Owners({u: r["Id"] for u, r in found.items()}, fallback_user, users=found), accounts


def _store_decisions(ledger, rerouted, accounts: Mapping[str, Mapping], playbook, dry_run: bool) -> None:
    """Put each re-decided plan on its pending case (in memory) and, unless dry, on the ledger Case and
    its steps; quarantine the data-quality flags of the new decision (raw MRR shown), resolve the stale
    ones of the old."""
    mrr_field = playbook.salesforce.account.mrr
    case_rows, step_rows, problems, stale = [], [], [], []
    for case, plan in rerouted:
        old_flags = set(case["plan"]["context"].get("flags") or ())
        case["plan"] = plan_to_json(plan, playbook)
        by_key = {s.key: s for s in plan.steps}
        for step in case["pending_steps"]:
            if step["step_key"] in by_key:
                step["owner_username"] = by_key[step["step_key"]].owner_username
        r, account = plan.routing, plan.account_id
        case_rows.append({"case_key": case["case_key"], "lp_role": r.lp_role, "lp_username": r.lp_username,
                          "tier": r.tier, "channel": r.channel, "priority": plan.priority,
                          "plan": case["plan"]})  # fmt: skip
        step_rows += [{"step_key": s.key, "owner_username": s.owner_username, "owner_role": s.owner_role,
                       "due_date": s.due_date} for s in plan.steps]  # fmt: skip
        base = {"response_id": case["case_key"], "account_id": account, "case_key": case["case_key"]}
        raw = accounts[account].get(mrr_field)
        for flag in r.flags:
            reason = f"{flag}: {flag_reason(flag, playbook)}"
            extra = {"flag": flag}
            if flag == playbook.routing.unparseable_mrr_flag:
                reason += f" ({mrr_field} is {str(raw)!r} in Salesforce)"
                extra["mrr_raw"] = str(raw)
            problems.append(Problem(f"intake:{flag}:{account}", account, reason, base | extra))
        stale += [f"intake:{flag}:{account}" for flag in old_flags - set(r.flags)]
    log.info("open_cases: %d case(s) re-routed on the accounts/users as Salesforce has them now: %s",
             len(rerouted), [c["case_key"] for c, _ in rerouted])  # fmt: skip
    if dry_run:
        return
    ledger.record_case_status(case_rows)
    ledger.record_step_status(step_rows)
    ledger.resolve_quarantine(stale)
    for problem in problems:
        ledger.quarantine(**problem.row())


def plan_open(pending: list[dict], alerts: list[dict], owners: Owners, playbook) -> OpenPlan:
    """The Case rows to create (owner resolved) and the Cases already in Salesforce (pure)."""
    plan = OpenPlan(pending, alerts, owners, playbook.username(playbook.people.data_quality_owner))
    for case in pending:
        if case.get("sf_case_id"):
            plan.case_ids[case["case_key"]] = case["sf_case_id"]
            continue
        owner_id = owners.id_for(case["plan"]["owner_username"], case["case_key"])
        if owner_id:
            plan.case_rows.append({**case["plan"]["case"], "OwnerId": owner_id})
    return plan


def _signed_draft(plan_json: Mapping, planned: Mapping, user: dict | None, playbook, calendar) -> dict:
    """A step whose Description carries a draft email, rendered again signed with the name and title of
    the Salesforce user who owns the Task (unknown at planning time); nothing for the other steps."""
    step = next((s for s in playbook.steps if s.key == planned["step"]), None)
    if step is None or not step.template or not user or "context" not in plan_json:
        return {}
    ctx = signed(context_from_json(plan_json), user)
    anchor = date.fromisoformat(plan_json["received_on"])
    return {"Description": render_step(step.key, ctx, anchor, playbook, calendar).description}


def step_task_rows(plan: OpenPlan, case_ids: Mapping[str, str], playbook=None, calendar=None) -> list[dict]:
    """The planned step Tasks of every pending case that has a Salesforce id (owners resolved; with the
    playbook and calendar, drafts signed with their owner's Salesforce name and title)."""
    rows = []
    for case in plan.pending:
        case_id = case_ids.get(case["case_key"])
        if not case_id:
            continue
        for step in case["pending_steps"]:
            planned = case["plan"]["steps"].get(step["step_key"])
            if planned is None:  # a step another pipeline added: it writes its own Task
                continue
            owner_id = plan.owners.id_for(planned["owner_username"], step["step_key"])
            if not owner_id:
                continue
            row = {**planned["fields"], "OwnerId": owner_id, "WhatId": case_id}
            if playbook is not None:
                user = plan.owners.user_for(planned["owner_username"])
                row |= _signed_draft(case["plan"], planned, user, playbook, calendar)
            if case.get("contact_id"):
                row["WhoId"] = case["contact_id"]
            rows.append(row)
    return rows


def apply_open(sf_hook, ledger, plan: OpenPlan, playbook, calendar, today: date, summary) -> None:
    """Create the Cases, then their step Tasks and the data-quality Tasks (``create_records_once``: a
    replay updates what exists without its Status, Priority or Owner); record all in the ledger."""
    opened_at = datetime.combine(today, time.min, tzinfo=UTC)  # the logical day, never the wall clock
    case_ids = dict(plan.case_ids)
    ext = playbook.salesforce.case.external_id
    for res in create_records_once(sf_hook, "Case", ext, plan.case_rows, playbook):
        if res.ok:
            ledger.mark_case_created(res.key, res.id, opened_at=opened_at)
            case_ids[res.key] = res.id
            summary.cases_created += res.created
            summary.cases_updated += not res.created
        else:
            summary.failures += 1
            payload = {"case_key": res.key, "code": res.code}
            reason = f"Salesforce refused the Case: {res.error}"
            plan.owners.problems.append(Problem(f"salesforce:case:{res.key}", res.key, reason, payload))
    task_rows = step_task_rows(plan, case_ids, playbook, calendar)
    written = {f"salesforce:case:{k}" for k in case_ids}  # refused earlier, written now: no alarm
    plan.alerts = [a for a in plan.alerts if a["q_key"] not in written]
    alert_keys = alert_rows(ledger, plan, playbook, calendar.add_business_days(today, 1), task_rows)
    created, reported = _write_tasks(sf_hook, task_rows, alert_keys, plan, playbook, summary)
    summary.owner_fallbacks += plan.owners.fallbacks
    ledger.mark_steps_created(created, created_at=opened_at)
    ledger.mark_quarantine_reported(reported)
    done = [f"salesforce:case:{k}" for k in case_ids] + [f"salesforce:task:{k}" for k in created]
    summary.alerts_closed = close_fixed_alerts(sf_hook, ledger, done, playbook)
    ledger.resolve_quarantine(done)
    for problem in {p.q_key: p for p in plan.owners.problems}.values():
        ledger.quarantine(**problem.row(SF_SOURCE))


def _write_tasks(sf_hook, task_rows, alert_keys, plan: OpenPlan, playbook, summary):
    """Create the Tasks and record failures; returns ``({step key: Task id}, [reported alert keys])``."""
    created: dict[str, str] = {}
    reported: list[str] = []
    ext = playbook.salesforce.task.external_id
    for res in create_records_once(sf_hook, "Task", ext, task_rows, playbook):
        if res.key in alert_keys:
            if res.ok:
                reported.append(alert_keys[res.key])
                summary.alerts_sent += 1
            else:
                log.warning("data-quality Task %s refused by Salesforce: %s", res.key, res.code)
        elif res.ok:
            created[res.key] = res.id
            summary.tasks_created += res.created
            summary.tasks_updated += not res.created
        else:
            summary.failures += 1
            payload = {"case_key": res.key.split(":")[0], "code": res.code}
            reason = f"Salesforce refused the Task: {res.error}"
            plan.owners.problems.append(Problem(f"salesforce:task:{res.key}", res.key, reason, payload))
    return created, reported


def update_completed_partials(sf_hook, ledger, playbook, dry_run: bool = False) -> int:
    """Write the stored fields of Cases whose partial response was completed later to the same Salesforce
    Case (upsert by external id: Subject, Description, Priority; status and owner stay as the LP left
    them). Returns how many were updated."""
    keys = ledger.case_updates_pending()
    rows = []
    ext = playbook.salesforce.case.external_id
    for key in keys:
        case = ledger.get_case(key)
        if case and case.get("sf_case_id") and case.get("plan"):
            fields = case["plan"]["case"]
            rows.append({ext: key, **{k: fields[k] for k in ("Subject", "Description", "Priority")}})
    if dry_run or not rows:
        return len(rows)
    done = 0
    for res in upsert_cases(sf_hook, rows, ext):
        if res.ok:
            ledger.mark_case_update_done(res.key)
            done += 1
    log.info("open_cases: %d case(s) updated with their completed response", done)
    return done
