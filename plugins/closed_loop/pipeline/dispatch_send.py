"""One SurveyMonkey invite message brought to "sent" with exactly its claimed intents as recipients, and
recorded: shared by survey_dispatch's batches and the sweep's recovery pulses."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

BULK_CHUNK = 500  # contacts per recipients/bulk call
_REJECTS = {"invalids": "invalid", "bounced": "bounced", "opted_out": "opted_out", "existing": "existing"}


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC of the logical date: what the ledger records as a send's time."""
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def complete_message(
    sm, ledger, collector_id, message_id, intents, contacts, today, *, fresh
) -> tuple[int, int]:
    """Bring one invite message (survey invite or recovery pulse) to "sent" with exactly its intents as
    recipients, and record it. Shared by survey_dispatch and the sweep's recovery pulses.

    ``fresh``: the message was created in this run (not sent, no recipients: skip the GETs).
    A message already sent cannot gain recipients: intents missing from it return to planned.
    Returns (recorded sent, rejected or skipped).
    """
    by_email, no_email = _by_email(ledger, intents, contacts)
    message = _Message(collector_id, message_id, today)
    present: dict[str, str] = {}
    if not fresh:
        status = sm.request("GET", f"/collectors/{collector_id}/messages/{message_id}").get("status")
        present = {
            (r.get("email") or "").lower(): r["id"]
            for r in sm.list_message_recipients(collector_id, message_id, include="")
        }
        if status != "not_sent":  # went out already: record who was in it, the others wait for a batch
            found = {e: r for e, r in by_email.items() if e in present}
            ledger.release_intents([r["send_key"] for e, r in by_email.items() if e not in present])
            _mark_outcomes(ledger, found, present, no_email, message)
            return len(found), len(no_email)
    rejected = _add_missing(sm, ledger, message, by_email, present, contacts)
    accepted = {e: r for e, r in by_email.items() if e in present}
    if accepted:
        sm.send_message(collector_id, message_id)
    _mark_outcomes(ledger, accepted, present, no_email, message)
    return len(accepted), len(rejected) + len(no_email)


@dataclass(frozen=True)
class _Message:
    collector_id: str
    message_id: str
    today: dt.date


def _by_email(ledger, intents, contacts) -> tuple[dict[str, dict], list[str]]:
    """Intents by lower-cased address, and the keys without one. A second intent to an address already in
    the message (the same person on another account) is deferred to the next batch."""
    by_email: dict[str, dict] = {}
    no_email, later = [], []
    for row in intents:
        email = (contacts.get(row["contact_id"], {}).get("email") or "").strip().lower()
        if not email:
            no_email.append(row["send_key"])
        elif email in by_email:  # the same person on another account: its own send, in the next batch
            later.append(row["send_key"])
        else:
            by_email[email] = row
    if later:
        _defer_same_person(ledger, later)
    return by_email, no_email


def _add_missing(sm, ledger, message: _Message, by_email, present: dict[str, str], contacts) -> dict:
    """Add the intents not yet on the message in bulk (``present`` gains the accepted ones, their recipient
    ids recorded) and record each one SurveyMonkey rejected. Returns ``{email: rejection status}``."""
    missing = [e for e in by_email if e not in present]
    rejected: dict[str, str] = {}
    if missing:
        people = [_recipient(contacts[by_email[e]["contact_id"]], by_email[e]) for e in missing]
        result = sm.add_recipients_bulk(message.collector_id, message.message_id, people, chunk=BULK_CHUNK)
        present |= {(r.get("email") or "").lower(): r["id"] for r in result["succeeded"]}
        rejected = _rejections(result)
        keys = {e: row["send_key"] for e, row in by_email.items()}
        ledger.record_recipients({keys[e]: rid for e, rid in present.items() if e in keys})
    ledger.mark_sent(
        {"send_key": by_email[e]["send_key"], "status": s, "reason": f"SurveyMonkey: {s}",
         "collector_id": message.collector_id, "message_id": message.message_id}
        for e, s in rejected.items() if e in by_email
    )  # fmt: skip
    return rejected


def _rejections(result: Mapping) -> dict[str, str]:
    """``{email: status}`` of the addresses a bulk add did not take (lists hold addresses or objects)."""
    rejected = {}
    for field, status in _REJECTS.items():
        for item in result.get(field) or []:
            rejected[(item.get("email") if isinstance(item, dict) else str(item)).lower()] = status
    return rejected


def _recipient(contact: Mapping, row: Mapping) -> dict:
    return {
        "email": contact["email"],
        "first_name": contact.get("first_name") or "",
        "last_name": contact.get("last_name") or "",
    }  # no custom_fields: they overwrite the customer's address book; responses join by recipient id


def _mark_outcomes(ledger, accepted, present, no_email, message: _Message) -> None:
    ledger.mark_sent(
        [
            {"send_key": row["send_key"], "status": "sent", "recipient_id": present[email],
             "collector_id": message.collector_id, "message_id": message.message_id,
             "sent_at": day_start(message.today)}
            for email, row in accepted.items()
        ]
        + [{"send_key": key, "status": "skipped", "reason": "missing email address"}
           for key in no_email]
    )  # fmt: skip


SAME_PERSON = (
    "the same email address is in this batch for another account: a collector holds an address once, "
    "so this account's survey goes out in the next batch (one survey per account, SOP)"
)


def _defer_same_person(ledger, keys: list[str]) -> None:
    """Return same-person intents to planned with the reason: tomorrow's batch (a new collector) sends
    them, so each account's flagged contact is surveyed as its own send, never skipped silently."""
    ledger.release_intents(keys)
    ledger.set_planned_reasons(dict.fromkeys(keys, SAME_PERSON))
    log.info(
        "send batch: %d send(s) to an address already in the batch deferred to the next batch", len(keys)
    )
