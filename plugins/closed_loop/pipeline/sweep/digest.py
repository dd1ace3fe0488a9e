"""Step 4 of the sweep: one email to ops with the day's breaches, escalations and quarantines."""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

from closed_loop.pipeline import outbox
from closed_loop.pipeline.sweep.common import email_key
from closed_loop.pipeline.sweep.notices import _owed_notices, owed_since
from closed_loop.playbook import Playbook
from closed_loop.templating import render

log = logging.getLogger(__name__)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from ``first`` up to the day before ``last``."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days)]


def _missed_days(ledger, playbook: Playbook, today: dt.date) -> list[dt.date]:
    """The days since the notices' expiry whose digest never went out (carried into today's)."""
    days = _days(owed_since(playbook, today), today)
    return [d for d in days if ledger.get_email(email_key("digest", d)) is None]


def _breach_line(d: dict) -> dict:
    outcome = d.get("escalated_to") or (
        f"completed late on {d['completed_on']}" if d.get("completed_on") else "case already closed"
    )
    return {"account_name": d.get("account_name"), "step_title": d.get("step_title"),
            "due_date": d.get("due_date"), "owner_title": outcome}  # fmt: skip


def _digest_lines(events: list[dict]) -> tuple[list, list, list]:
    """(breaches, dissatisfied customers, documentation gaps) among the events; an overdue escalation
    is listed through its breaches."""
    breaches, sad, gaps = [], [], []
    for e in events:
        d = e["details"] or {}
        if e["kind"] == "breach":
            breaches.append(_breach_line(d))
        elif e["kind"] == "escalation" and d.get("reason") != "overdue":
            sad.append({"account_name": d.get("account_name"), "owner_title": d.get("owner_title")})
        elif e["kind"] == "doc_missing":
            gaps.append({"account_name": d.get("account_name")})
    return breaches, sad, gaps


def _digest_context(ledger, playbook: Playbook, today: dt.date, missed: list[dt.date]) -> tuple[dict, list]:
    """Everything the digest lists: the day's (and the missed days') events, quarantines not reported
    yet, unconfirmed emails and owed notices, with their totals; and the quarantined rows listed."""
    days = {*missed, today}
    events = [e for e in ledger.sla_events_since(min(missed, default=today)) if e["occurred_on"] in days]
    breaches, sad, gaps = _digest_lines(events)
    quarantined = ledger.unreported_quarantine()
    groups = Counter((q["source"], q["reason"][:120]) for q in quarantined)
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
    ctx = {
        "company": playbook.company.name,
        "day": today.isoformat(),
        "breaches": breaches,
        "dissatisfied": sad,
        "doc_gaps": gaps,
        "quarantines": [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(groups.items())],
        "unconfirmed": unconfirmed,
        "owed": owed,
        "carried_days": [d.isoformat() for d in missed],
        "totals": totals,
    }
    return ctx, quarantined


def ops_digest(
    sender, ledger, playbook: Playbook, today: dt.date, run_id: str | None = None, dry_run: bool = False
) -> dict:
    """One email to ops with today's breaches, dissatisfied customers, documentation gaps, unreported
    quarantines and unconfirmed emails; nothing when all are empty. Account names only, no PII."""
    missed = _missed_days(ledger, playbook, today)
    ctx, quarantined = _digest_context(ledger, playbook, today, missed)
    out = dict(ctx["totals"], dry_run=dry_run, outcome="nothing")
    if not any(ctx["totals"].values()):
        log.info("ops_digest %s: nothing to report", today)
        return out
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
        outbox.mark_unconfirmed(ledger, [u["email_key"] for u in ctx["unconfirmed"]])
    if out["outcome"] in ("sent", "unconfirmed"):  # the digests of the missed days went out in this one
        outbox.carry(ledger, [email_key("digest", d) for d in missed], key)
    log.debug("ops_digest %s: %s", today, out)
    if out["outcome"] == "failed":
        raise RuntimeError("the ops digest was not accepted by the SMTP server; retry sends it")
    return out
