"""Send-once email through the ledger: intent row -> SMTP -> mark sent.

Choice (at most once): ``send_once`` writes the ledger intent (natural key) before the SMTP call.
- SMTP raised: the server did not accept the message, so the intent is deleted and a retry sends it.
- Hard crash after the server accepted it but before the ledger mark: the intent stays. It is never
  resent automatically (a duplicate customer email is worse than a missing one); the next ops digest
  lists it as "unconfirmed" and marks it so, and a human checks the mail log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import delete, select, update

from closed_loop.ledger.models import Email
from closed_loop.ledger.types import utcnow

log = logging.getLogger(__name__)

KEY_HEADER = "X-Closed-Loop-Key"
UNCONFIRMED = "unconfirmed"


def build_message(
    email_key: str, to: Iterable[str], subject: str, text: str, html: str | None = None
) -> EmailMessage:
    """A plain-text message with an optional HTML alternative, tagged with its ledger key."""
    msg = EmailMessage()
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="closed-loop.local")
    msg[KEY_HEADER] = email_key
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def recipients(message: EmailMessage) -> list[str]:
    return [a.strip() for h in ("To", "Cc", "Bcc") for a in (message.get(h) or "").split(",") if a.strip()]


def send_once(
    ledger,
    sender,
    email_key: str,
    message: EmailMessage,
    kind: str,
    run_id: str | None,
    dry_run: bool = False,
) -> str:
    """Send ``message`` once per ``email_key``. Returns "sent", "already_sent", "unconfirmed" (an
    earlier intent never confirmed: not resent), "planned" (dry run) or "failed" (SMTP raised; the
    intent was cleared so a retry sends it)."""
    if dry_run:
        existing = ledger.get_email(email_key)
        return "planned" if existing is None else _state(existing)
    if not ledger.email_intent(email_key, kind, recipients(message), str(message["Subject"]), run_id):
        return _state(ledger.get_email(email_key))
    try:
        sender.send_message(message)
    except Exception as exc:  # not accepted: clear the intent so the task's retry sends it
        with ledger.session() as s:
            s.execute(delete(Email).where(Email.email_key == email_key, Email.status == "intent"))
        log.warning("email %s (%s) not accepted: %s", email_key, kind, type(exc).__name__)
        return "failed"
    ledger.mark_email_sent(email_key)
    return "sent"


def _state(row: dict | None) -> str:
    return "already_sent" if row and row["status"] == "sent" else "unconfirmed"


def unconfirmed_emails(ledger, older_than: dt.timedelta = dt.timedelta(minutes=10)) -> list[dict]:
    """Intents never marked sent (a crash between SMTP and the ledger), older than ``older_than`` so a
    send in flight elsewhere is not reported."""
    cutoff = utcnow() - older_than
    with ledger.session() as s:
        rows = s.scalars(
            select(Email).where(Email.status == "intent", Email.created_at < cutoff).order_by(Email.email_key)
        )
        return [{"email_key": r.email_key, "kind": r.kind, "created_at": r.created_at} for r in rows]


def mark_unconfirmed(ledger, keys: Iterable[str]) -> int:
    """Mark reported intents "unconfirmed" (still never resent; no longer listed)."""
    keys = list(keys)
    with ledger.session() as s:
        stmt = update(Email).where(Email.email_key.in_(keys), Email.status == "intent")
        return s.execute(stmt.values(status=UNCONFIRMED)).rowcount
