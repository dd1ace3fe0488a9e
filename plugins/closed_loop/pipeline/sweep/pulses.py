"""Step 3 of the sweep: the recovery pulse survey to the contact of each case closed with documentation."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from closed_loop.pipeline.surveys import carry_over_when_budget_exhausted, require_survey_id
from closed_loop.pipeline.sweep.common import _with_calls
from closed_loop.playbook import Playbook
from closed_loop.survey_messages import render_message

log = logging.getLogger(__name__)


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
    rows = []
    for case, contact in ledger.closed_cases_without_send(since, recovery_key("")):
        row = {
            "send_key": recovery_key(case["case_key"]),
            "kind": "recovery",
            "account_id": case["account_id"],
            "contact_id": case["contact_id"],
            "due_date": today,
            "case_key": case["case_key"],
        }
        if not (contact.get("email") or "").strip():
            row |= {"status": "skipped", "reason": "no contact email"}
        elif contact.get("opted_out"):
            row |= {"status": "opted_out", "reason": "contact opted out of email"}
        rows.append(row)
    return rows


@carry_over_when_budget_exhausted
def send_recovery_pulses(
    sm, ledger, playbook: Playbook, today: dt.date, run_id: str | None = None, dry_run: bool = False
) -> dict:
    """Send the recovery pulse to the contact of every case closed with documentation, once per case.

    Crash-safe like the invites: send rows (natural key ``recovery:<case_key>``, carrying ``case_key``)
    are claimed (intent, with the message id) before recipients are added; a retry reconciles intents
    against the message's recipients. One collector per sweep date.
    """
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
    out["reconciled"] = _reconcile(sm, ledger, pending, today)
    due = ledger.sends_due(today, kind="recovery")
    if due:
        out["sent"], out["rejected"] = _send_due(sm, ledger, playbook, due, today, run_id)
    out["api_calls"] = _with_calls(sm) - start
    log.debug("send_recovery_pulses %s: %s", today, out)
    return out


def _reconcile(sm, ledger, pending: list[dict], today: dt.date) -> int:
    """Finish the pulses a crashed run claimed (intents against their message's recipients); intents
    without a message are released. Returns how many were sent."""
    from closed_loop.pipeline.dispatch import complete_message  # the invites' crash-safe send

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in pending:
        groups[(row["collector_id"], row["message_id"])].append(row)
    reconciled = 0
    for (collector_id, message_id), rows in groups.items():
        if not (collector_id and message_id):
            ledger.release_intents([r["send_key"] for r in rows])
            continue
        contacts = ledger.contact_addresses([r["contact_id"] for r in rows])
        sent, _ = complete_message(sm, ledger, collector_id, message_id, rows, contacts, today, fresh=False)
        reconciled += sent
    return reconciled


def _send_due(sm, ledger, playbook: Playbook, due: list[dict], today: dt.date, run_id) -> tuple[int, int]:
    """One message on the day's collector for the due pulses, claimed before recipients are added.
    Returns (sent, rejected)."""
    from closed_loop.pipeline.dispatch import complete_message  # the invites' crash-safe send

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
    contacts = ledger.contact_addresses([r["contact_id"] for r in intents])
    return complete_message(sm, ledger, collector_id, message["id"], intents, contacts, today, fresh=True)
