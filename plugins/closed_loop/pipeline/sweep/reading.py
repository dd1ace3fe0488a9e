"""Step 1 of the sweep: read the tracked Cases and step Tasks back from Salesforce into the ledger."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.ledger.types import to_utc
from closed_loop.pipeline.read_back_queries import read_tracked, save_marks
from closed_loop.pipeline.sweep.common import _is_documented, _with_calls
from closed_loop.playbook import Playbook

log = logging.getLogger(__name__)


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
    cases = ledger.read_back_targets(today - dt.timedelta(days=playbook.sla.reopen_lookback_days))
    steps = [s for c in cases for s in c["steps"]]  # with a Salesforce id, not completed
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
    ledger.quarantine_all(
        {
            "q_key": f"sla_sweep:{kind}:{key}",
            "source": "sla_sweep",
            "record_id": sf_id,
            "reason": f"{kind.replace('_', ' ')} in Salesforce (deleted?)",
            "payload": {"key": key},
        }
        for kind, key, sf_id in got.missing
    )
