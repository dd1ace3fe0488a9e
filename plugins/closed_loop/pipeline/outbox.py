"""Send-once email through the ledger: intent row -> SMTP -> mark sent.

Choice (at most once): ``send_once`` writes the ledger intent (natural key) before the SMTP call.
- SMTP raised before the data phase: the server did not accept the message, so the intent is deleted
  and a retry sends it.
- The connection broke after the data was sent (a lost 250 reply, a timeout) or a hard crash after the
  server accepted it but before the ledger mark: it may have been delivered. It is never resent
  automatically (a duplicate customer email is worse than a missing one); the next ops digest lists it as
  "unconfirmed" and marks it so, and a human checks the mail log.
- The server refused some recipients (e.g. 550) and accepted the others: sent, and each refused address
  is quarantined (source "smtp") so the ops digest reports it. All refused with 5xx: "refused".
Header values (To, Subject) are made single-line: a CR/LF in an account name never breaks a message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import re
import smtplib
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from closed_loop.hooks.errors import SmtpOutcomeUnknown
from closed_loop.ledger.types import utcnow

log = logging.getLogger(__name__)

KEY_HEADER = "X-Closed-Loop-Key"
UNCONFIRMED = "unconfirmed"
UNKNOWN = "unknown"  # the server may have accepted it (no reply after the data): reported, never resent
CARRIED = "carried"  # never sent itself: its content went out in a later email (``to`` names it)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_value(value: object) -> str:
    """One line for a mail header: CR, LF and other control characters become a space."""
    return re.sub(r" {2,}", " ", _CONTROL.sub(" ", str(value))).strip()


def build_message(
    email_key: str, to: Iterable[str], subject: str, text: str, html: str | None = None
) -> EmailMessage:
    """A plain-text message (always) with an optional HTML alternative, dated (RFC 5322 requires a
    ``Date:``; some clients sort undated mail as 1970) and tagged with its ledger key."""
    if not (text or "").strip():
        raise ValueError(f"email {email_key}: every notification needs a plain-text part")
    msg = EmailMessage()
    msg["To"] = ", ".join(header_value(a) for a in to)
    msg["Subject"] = header_value(subject)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="closed-loop.local")
    msg[KEY_HEADER] = header_value(email_key)
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    return msg


def recipients(message: EmailMessage) -> list[str]:
    return [a.strip() for h in ("To", "Cc", "Bcc") for a in (message.get(h) or "").split(",") if a.strip()]


def one_connection(sender) -> contextlib.AbstractContextManager:
    """One SMTP connection for a batch of ``send_once`` calls when ``sender`` can keep one open
    (``ClosedLoopSmtpHook.batch``); the policy per message is unchanged (intent, SMTP, mark)."""
    batch = getattr(sender, "batch", None)
    return batch() if callable(batch) else contextlib.nullcontext(sender)


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
        refused = sender.send_message(message) or {}
    except SmtpOutcomeUnknown as exc:  # maybe delivered: keep it, never resend, report it
        _set_status(ledger, email_key, UNKNOWN)
        log.warning("email %s (%s): SMTP outcome unknown (%s); not resent, reported", email_key, kind, exc)
        return UNCONFIRMED
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused: nothing was sent
        _clear_intent(ledger, email_key)
        record_refused(ledger, email_key, kind, exc.recipients)
        permanent = all(int(code) >= 500 for code, _ in exc.recipients.values())
        return "refused" if permanent else "failed"
    except Exception as exc:  # not accepted: clear the intent so the task's retry sends it
        _clear_intent(ledger, email_key)
        log.warning("email %s (%s) not accepted: %s", email_key, kind, type(exc).__name__)
        return "failed"
    ledger.mark_email_sent(email_key)
    if refused:
        record_refused(ledger, email_key, kind, refused)
    return "sent"


def record_refused(ledger, email_key: str, kind: str, refused: Mapping[str, tuple]) -> int:
    """Quarantine each recipient the mail server refused (one row per address; the digest reports them)."""
    for address, (code, reply) in sorted(refused.items()):
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        digest = hashlib.sha256(address.casefold().encode()).hexdigest()[:16]
        ledger.quarantine(
            f"smtp:refused:{email_key}:{digest}",
            "smtp",
            email_key,
            f"mail server refused a recipient of the {kind} email: {code} {text}"[:500],
            {"email_key": email_key, "recipient": address, "code": int(code), "reply": text[:500]},
        )
    log.warning("email %s (%s): %d recipient(s) refused by the mail server", email_key, kind, len(refused))
    return len(refused)


def carry(ledger, keys: Iterable[str], into: str) -> int:
    """Record that the owed emails ``keys`` (never sent: the server was down) went out inside ``into``,
    so they are owed no more. Existing rows are left alone."""
    return ledger.carry_emails(keys, into, CARRIED)


def _clear_intent(ledger, email_key: str) -> None:
    ledger.clear_email_intent(email_key)


def _set_status(ledger, email_key: str, status: str) -> None:
    ledger.set_email_status(email_key, status)


def _state(row: dict | None) -> str:
    return "already_sent" if row and row["status"] == "sent" else "unconfirmed"


def unconfirmed_emails(ledger, older_than: dt.timedelta = dt.timedelta(minutes=10)) -> list[dict]:
    """Emails that may or may not have been delivered: intents never marked sent (a crash between SMTP
    and the ledger) older than ``older_than`` (a send in flight elsewhere is not reported), and every
    send whose reply was lost after the data phase."""
    return ledger.uncertain_emails(utcnow() - older_than, [UNKNOWN])


def mark_unconfirmed(ledger, keys: Iterable[str]) -> int:
    """Mark reported intents "unconfirmed" (still never resent; no longer listed)."""
    return ledger.mark_emails(keys, ("intent", UNKNOWN), UNCONFIRMED)
