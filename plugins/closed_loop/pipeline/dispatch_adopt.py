"""Before a batch goes out, the ledger is checked against SurveyMonkey: a ledger restored from a backup
(or failed over to a stale replica) has forgotten the batches sent since, and would send them again.

One call on the normal path: the main survey's collectors (one page of up to 1,000). Every invite batch is
an email collector named ``closed-loop invites <logical date>``; one the ledger has never recorded (no
send carries its id, no batch registry names it, it was not adopted before) was made by a run the ledger
lost. Only then are its messages and their recipients read, and each still-planned send whose address is
among them is adopted: recorded sent with that message's recipient id (an invite message nobody sent yet
is finished, as after a crash), and its reminder too if the collector has one. Today's collector, if it
exists, becomes today's batch, so no second collector of the same name is created.
"""

from __future__ import annotations

import datetime as dt
import logging

from closed_loop.ledger.types import to_date
from closed_loop.pipeline.dispatch_send import complete_message, day_start

log = logging.getLogger(__name__)

BATCH_PREFIX = "closed-loop invites "
CHECKED = "survey_dispatch.collector_checked."  # + collector id: reconciled once, never read again


def batch_name(today: dt.date) -> str:
    return f"{BATCH_PREFIX}{today.isoformat()}"


def reconcile_with_surveymonkey(sm, ledger, survey_id: str, today: dt.date, contacts, *, run_id) -> dict:
    """Adopt what SurveyMonkey sent that the ledger does not know. Returns ``{"today_collector": id or
    None, "adopted": n, "collectors": unknown collectors read}``."""
    batches = [
        c for c in sm.paginate(f"/surveys/{survey_id}/collectors", {"include": "type,status"}, per_page=1000)
        if (c.get("name") or "").startswith(BATCH_PREFIX) and c.get("type", "email") == "email"
    ]  # fmt: skip
    todays = next(
        (c["id"] for c in batches if c["name"] == batch_name(today) and c.get("status", "open") != "closed"),
        None,
    )
    known = ledger.invite_collectors_known(CHECKED)
    unknown = [c for c in batches if c["id"] not in known]
    adopted = 0
    if unknown:
        by_email = _planned_by_email(ledger, contacts)
        for collector in unknown:
            adopted += _adopt_collector(
                sm, ledger, survey_id, collector["id"], by_email, contacts, today, run_id
            )
            ledger.set_watermark(CHECKED + collector["id"], today.isoformat())
        log.warning(
            "send_invites %s: %d invite batch(es) in SurveyMonkey unknown to the ledger (restored from a "
            "backup?): %d planned invite(s) found already sent and adopted, not sent again",
            today, len(unknown), adopted,
        )  # fmt: skip
    return {"today_collector": todays, "adopted": adopted, "collectors": len(unknown)}


def _planned_by_email(ledger, contacts) -> dict[str, dict]:
    out = {}
    for row in ledger.planned_sends(kind="invite"):
        email = (contacts.get(row["contact_id"], {}).get("email") or "").strip().lower()
        if email:
            out.setdefault(email, row)
    return out


def _adopt_collector(sm, ledger, survey_id, collector_id, by_email, contacts, today, run_id) -> int:
    """Adopt the planned sends found in this collector's invite messages; then its reminder."""
    messages = list(sm.paginate(f"/collectors/{collector_id}/messages", per_page=1000))
    adopted: list[str] = []
    for message in (m for m in messages if m.get("type") == "invite"):
        recipients = sm.list_message_recipients(collector_id, message["id"], include="")
        sent_on = to_date(message.get("date_created")) or today
        emails = {(r.get("email") or "").lower() for r in recipients}
        rows = [by_email.pop(e) for e in sorted(emails) if _sent_for(by_email.get(e), sent_on)]
        claimed = set(ledger.mark_send_intent(
            [r["send_key"] for r in rows], run_id, message_id=message["id"], collector_id=collector_id,
            survey_id=survey_id,
        ))  # fmt: skip
        intents = [r for r in rows if r["send_key"] in claimed]
        if intents:
            complete_message(sm, ledger, collector_id, message["id"], intents, contacts, sent_on, fresh=False)
            adopted += [r["send_key"] for r in intents]
    _adopt_reminder(ledger, collector_id, messages, adopted)
    return len(adopted)


def _sent_for(row: dict | None, sent_on: dt.date) -> bool:
    """Whether a message of ``sent_on`` can be this planned send's: an invite goes out on or after its
    due date (a day's slack for time zones), so an older survey of the same person is not taken for it."""
    due = row and to_date(row.get("due_date"))
    return bool(row) and (due is None or sent_on >= due - dt.timedelta(days=1))


def _adopt_reminder(ledger, collector_id: str, messages: list[dict], keys: list[str]) -> None:
    """A reminder the collector already sent is recorded on the adopted sends (never sent twice)."""
    from closed_loop.pipeline.dispatch_reminders import reminder_key

    sent = [m for m in messages if m.get("type") == "reminder" and m.get("status") != "not_sent"]
    if not (sent and keys):
        return
    claimed = ledger.claim_reminders(keys, reminder_key(collector_id))
    sent_on = to_date(sent[0].get("date_created"))
    ledger.mark_reminders_sent(claimed, sent[0]["id"], sent_at=day_start(sent_on) if sent_on else None)
