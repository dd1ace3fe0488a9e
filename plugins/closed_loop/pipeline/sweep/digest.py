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
        e for e in ledger.sla_events_since(min(missed, default=today)) if e["occurred_on"] in {*missed, today}
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
