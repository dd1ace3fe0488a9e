"""The sweep's emails: one LP notice per LP and day, dissatisfied escalations to their owner, documentation
flags to the LP; a notice stays owed until sent or expired (``sla.notice_expiry_days``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from closed_loop.domain.plan import (
    lead_words,
    signed,
)
from closed_loop.domain.wording import describe_trigger, field_labels
from closed_loop.pipeline import outbox
from closed_loop.pipeline.salesforce_writes import UserDirectory
from closed_loop.pipeline.sweep.common import _case_url, _title, email_key
from closed_loop.pipeline.sweep.plan import _triggers, step_context
from closed_loop.playbook import Playbook
from closed_loop.templating import render

NOTICE_KINDS = ("escalation", "reminder", "doc_missing")


def owed_since(playbook: Playbook, today: dt.date) -> dt.date:
    """The first day whose unsent notices are still owed today (``sla.notice_expiry_days``)."""
    return today - dt.timedelta(days=playbook.sla.notice_expiry_days)


def _owed(ledger, events: Iterable[Mapping], cases: Mapping[str, dict], today: dt.date) -> list:
    """The notice events no email has reported yet: not on their own day (the mail server was down or
    refused: the failed send left no row) and not carried into today's notice (one ledger read)."""
    notices = [e for e in events if e["kind"] in NOTICE_KINDS and e["occurred_on"] <= today]
    keys = [(_notice_key(e, cases, e["occurred_on"]), _notice_key(e, cases, today)) for e in notices]
    recorded = ledger.recorded_email_keys({k for pair in keys for k in pair})
    return [e for e, (own, todays) in zip(notices, keys, strict=True) if not {own, todays} & recorded]


def _notice_key(event: Mapping, cases: Mapping[str, dict], today: dt.date) -> str:
    """The email that reports ``event``: the LP's daily notice for breaches and reminders, else its own."""
    if event["kind"] == "reminder" or (event["details"] or {}).get("reason") == "overdue":
        return email_key("lp_notice", today, cases[event["case_key"]]["lp_username"])
    return event["event_key"]


def _email_of(users: UserDirectory, username: str | None) -> str | None:
    return (users.record(username) or {}).get("Email")


def _first_name(users: UserDirectory, username: str | None, fallback: str) -> str:
    """How to greet a user: their first name in Salesforce, else their full name, else ``fallback``."""
    user = users.record(username) or {}
    return user.get("FirstName") or user.get("Name") or fallback


def _dissatisfied_context(sf, ledger, case: Mapping, playbook, users) -> dict:
    """What management needs to decide: the answers that fired, the comments, MRR and the lead."""
    ctx = step_context(
        case,
        playbook,
        _case_url(sf, case["sf_case_id"]),
        _triggers(ledger, [case["case_key"]]).get(case["case_key"], ()),
    )
    ctx = signed(ctx, users.record(case.get("lp_username")))
    return {
        "why": [describe_trigger(t, playbook) for t in ctx.triggers],
        "comments": list(ctx.comments),
        "mrr": ctx.mrr,
        "lead": lead_words(ctx, playbook),
        "response_url": ctx.response_url or None,
    }


def _lp_lines(e: Mapping, url: str, cases: Mapping[str, dict], playbook: Playbook, today: dt.date) -> list:
    """The LP notice's lines for a reminder or an overdue escalation (one per step it lists)."""
    d = e["details"] or {}
    listed = d.get("steps") or [{"step": d.get("step"), "step_title": d.get("step_title"),
                                 "due_date": d.get("due_date")}]  # fmt: skip
    carried = _notice_key(e, cases, e["occurred_on"]) if e["occurred_on"] < today else None
    return [
        {
            "account_name": d.get("account_name"),
            "subject": st.get("step_title") or playbook.step(st["step"]).title,
            "due_date": st.get("due_date"),
            "case_url": url,
            "overdue": e["kind"] == "escalation",
            "_carried": carried,
        }
        for st in listed
    ]


def _dissatisfied_notice(sf, ledger, e: Mapping, case: Mapping, url: str, playbook, users) -> tuple:
    """(to, subject, template, context) of a dissatisfied escalation's email to its owner."""
    d = e["details"] or {}
    owner = playbook.username(d["owner_role"])
    ctx = {
        "company": playbook.company.name,
        "reason": "dissatisfied",
        "owner_name": _first_name(users, owner, d.get("owner_title") or ""),
        "account_name": d.get("account_name"),
        "case_subject": _case_subject(d),
        "case_url": url,
        "owner_title": d.get("owner_title"),
        "late_steps": [],
    } | _dissatisfied_context(sf, ledger, case, playbook, users)
    subject = f"Escalation: {d.get('account_name')} is still dissatisfied"
    return _email_of(users, owner), subject, "escalation_notice", ctx


def _doc_missing_notice(e: Mapping, case: Mapping, url: str, playbook, users) -> tuple:
    """(to, subject, template, context) of a documentation flag's email to the LP."""
    d = e["details"] or {}
    ctx = {
        "company": playbook.company.name,
        "lp_name": _first_name(users, case["lp_username"], _title(case.get("lp_role"), playbook)),
        "account_name": d.get("account_name"),
        "case_subject": _case_subject(d),
        "case_url": url,
        "missing": field_labels(playbook.sla.documentation_fields),
    }
    subject = f"Please document the closed case: {d.get('account_name')}"
    return _email_of(users, case["lp_username"]), subject, "doc_missing_notice", ctx


def _case_subject(details: Mapping) -> str:
    return f"Post-implementation feedback needs follow-up: {details.get('account_name')}"


def _send_notices(sf, sender, ledger, playbook, today, run_id, events, cases, users) -> Counter:
    """LP notices (one per LP per day: breaches + reminders), dissatisfied escalations to the owner,
    documentation flags to the LP. Each keyed in the ledger; a missing address is quarantined."""
    with outbox.one_connection(sender):  # one SMTP connection for the sweep's notices
        return _send_each(sf, sender, ledger, playbook, today, run_id, events, cases, users)


def _send_each(sf, sender, ledger, playbook, today, run_id, events, cases, users) -> Counter:
    outcomes: Counter = Counter()
    by_lp: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        case = cases[e["case_key"]]
        url = _case_url(sf, case["sf_case_id"])
        if e["kind"] == "reminder" or (e["details"] or {}).get("reason") == "overdue":
            by_lp[case["lp_username"]] += _lp_lines(e, url, cases, playbook, today)
            continue
        if e["kind"] == "escalation":  # dissatisfied: the escalation owner
            to, subject, tpl, ctx = _dissatisfied_notice(sf, ledger, e, case, url, playbook, users)
        else:  # doc_missing: the LP
            to, subject, tpl, ctx = _doc_missing_notice(e, case, url, playbook, users)
        outcomes[_send(ledger, sender, e["event_key"], to, subject, tpl, ctx, e["kind"], run_id)] += 1
    for lp, steps in sorted(by_lp.items()):
        outcomes[_send_lp_notice(ledger, sender, lp, steps, cases, playbook, users, today, run_id)] += 1
    return outcomes


def _send_lp_notice(ledger, sender, lp: str, steps: list, cases, playbook, users, today, run_id) -> str:
    """One LP's notice of the day (overdue steps and reminders); carries the notices owed from earlier."""
    role = next((c.get("lp_role") for c in cases.values() if c.get("lp_username") == lp), None)
    ctx = {"company": playbook.company.name, "lp_name": _first_name(users, lp, _title(role, playbook)),
           "steps": steps}  # fmt: skip
    n = sum(s["overdue"] for s in steps)
    subject = f"{n} overdue follow-up step(s)" if n else "Follow-up steps due soon"
    key = email_key("lp_notice", today, lp)  # == _notice_key of each of these events
    outcome = _send(
        ledger, sender, key, _email_of(users, lp), subject, "lp_overdue_notice", ctx, "lp_notice", run_id
    )
    if outcome in ("sent", "unconfirmed"):  # notices owed from an earlier day went out in this one
        outbox.carry(ledger, {s["_carried"] for s in steps if s["_carried"]}, key)
    return outcome


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


def _owed_notices(ledger, playbook: Playbook, today: dt.date) -> list[dict]:
    """Notices still owed after today's sends (the mail server down or refusing), with the day each
    expires (``sla.notice_expiry_days`` after its event): listed in the digest until sent or expired."""
    events = [e for e in ledger.sla_events_since(owed_since(playbook, today)) if e["kind"] in NOTICE_KINDS]
    cases = ledger.cases_by_key({e["case_key"] for e in events})
    owed = _owed(ledger, [e for e in events if e["case_key"] in cases], cases, today)
    expiry = dt.timedelta(days=playbook.sla.notice_expiry_days)
    return [
        {
            "kind": e["kind"],
            "account_name": (e["details"] or {}).get("account_name"),
            "since": e["occurred_on"].isoformat(),
            "expires": (e["occurred_on"] + expiry).isoformat(),
        }
        for e in owed
    ]
