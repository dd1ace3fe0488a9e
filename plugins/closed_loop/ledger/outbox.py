"""The send-once email outbox beyond the intent/sent pair: cleared intents, uncertain outcomes, carried
notices, and what one task wrote (the task summary's ledger facts)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import delete, or_, select, update

from .core import LedgerCore
from .models import Account, Case, Email, Quarantine, SlaEvent, SurveySend
from .upsert import insert_if_absent


class OutboxMixin(LedgerCore):
    def clear_email_intent(self, email_key: str) -> int:
        """Delete an unsent intent (the mail server did not take the message: a retry sends it)."""
        with self.session() as s:
            stmt = delete(Email).where(Email.email_key == email_key, Email.status == "intent")
            return s.execute(stmt).rowcount

    def set_email_status(self, email_key: str, status: str) -> int:
        with self.session() as s:
            return s.execute(update(Email).where(Email.email_key == email_key).values(status=status)).rowcount

    def carry_emails(self, keys: Iterable[str], into: str, status: str) -> int:
        """Rows for owed emails ``keys`` whose content went out inside the email ``into``; existing rows are
        left alone. Returns how many were inserted."""
        rows = [
            {
                "email_key": k,
                "kind": "carried",
                "to": [into],
                "subject": f"carried into {into}",
                "status": status,
            }
            for k in sorted(set(keys))
        ]
        if not rows:
            return 0
        with self.session() as s:
            return len(insert_if_absent(s, Email, rows, ["email_key"]))

    def uncertain_emails(self, intent_before: dt.datetime, statuses: Iterable[str]) -> list[dict]:
        """Intents older than ``intent_before`` never marked sent, and emails in ``statuses``, by key."""
        stale = (Email.status == "intent") & (Email.created_at < intent_before)
        stmt = select(Email).where(or_(stale, Email.status.in_(list(statuses)))).order_by(Email.email_key)
        with self.session() as s:
            return [
                {"email_key": r.email_key, "kind": r.kind, "created_at": r.created_at}
                for r in s.scalars(stmt)
            ]

    def mark_emails(self, keys: Iterable[str], from_statuses: Iterable[str], status: str) -> int:
        """Set ``status`` on the emails ``keys`` currently in ``from_statuses``."""
        stmt = update(Email).where(Email.email_key.in_(list(keys)), Email.status.in_(list(from_statuses)))
        with self.session() as s:
            return s.execute(stmt.values(status=status)).rowcount

    # -- the task summary ---------------------------------------------------------------------
    def written_since(self, since: dt.datetime, case_keys: Iterable[str] = ()) -> dict:
        """What was written since ``since``: quarantine ``(source, reason)`` pairs, the cases created or
        given an SLA event (plus ``case_keys``), and the accounts synced, surveyed or behind those cases."""
        with self.session() as s:
            quarantined = [
                tuple(r)
                for r in s.execute(
                    select(Quarantine.source, Quarantine.reason).where(Quarantine.created_at >= since)
                )
            ]
            case_rows = list(
                s.execute(select(Case.case_key, Case.account_id).where(Case.created_at >= since))
            )
            event_cases = set(s.scalars(select(SlaEvent.case_key).where(SlaEvent.created_at >= since)))
            synced = set(s.scalars(select(Account.sf_id).where(Account.synced_at >= since)))
            sent = set(s.scalars(select(SurveySend.account_id).where(SurveySend.intent_at >= since)))
            cases = {k for k, _ in case_rows} | event_cases | set(case_keys)
            more = cases - {k for k, _ in case_rows}
            accounts = {a for _, a in case_rows} | synced | sent
            if more:
                accounts |= set(s.scalars(select(Case.account_id).where(Case.case_key.in_(sorted(more)))))
        return {"quarantined": quarantined, "cases": cases, "accounts": accounts}
