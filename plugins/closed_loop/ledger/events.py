"""SLA events, outgoing emails, data-quality quarantine and API usage: each recorded once per key."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from sqlalchemy import select, update

from .core import LedgerCore, as_dict
from .models import ApiUsage, Email, Quarantine, SlaEvent
from .types import utcnow
from .upsert import insert_if_absent, update_rows, upsert


class EventsMixin(LedgerCore):
    # -- SLA events ---------------------------------------------------------------------------
    def add_sla_event(self, event: Mapping) -> bool:
        """Insert ``{event_key, kind, case_key, step_key?, occurred_on, details?}`` if its key is new.
        Returns True only for the call that inserted it (so only that caller escalates)."""
        with self.session() as s:
            return bool(insert_if_absent(s, SlaEvent, [event], ["event_key"]))

    def add_sla_events(self, events: Iterable[Mapping]) -> list[str]:
        """Insert the events whose key is new, in one transaction. Returns the keys inserted."""
        events = list(events)
        if not events:
            return []
        with self.session() as s:
            return [k for (k,) in insert_if_absent(s, SlaEvent, events, ["event_key"])]

    def set_sla_event_task(self, event_key: str, sf_task_id: str) -> int:
        """Record the Salesforce Task created for an event (escalation, reminder)."""
        return self._update(SlaEvent, SlaEvent.event_key == event_key, sf_task_id=sf_task_id)

    def set_sla_event_tasks(self, tasks: Mapping[str, str]) -> int:
        """Record the Salesforce Tasks created for events, ``{event_key: sf_task_id}``, in one statement."""
        rows = [{"event_key": k, "sf_task_id": v} for k, v in tasks.items()]
        if not rows:
            return 0
        with self.session() as s:
            return update_rows(s, SlaEvent.__table__, "event_key", rows)

    def sla_events(self, case_key: str | None = None, kind: str | None = None) -> list[dict]:
        stmt = select(SlaEvent).order_by(SlaEvent.occurred_on, SlaEvent.event_key)
        if case_key is not None:
            stmt = stmt.where(SlaEvent.case_key == case_key)
        if kind is not None:
            stmt = stmt.where(SlaEvent.kind == kind)
        return self._rows(stmt)

    def sla_events_since(self, since: dt.date) -> list[dict]:
        """Every event that occurred on or after ``since``, by key."""
        return self._rows(select(SlaEvent).where(SlaEvent.occurred_on >= since).order_by(SlaEvent.event_key))

    def event_keys_of_cases(self, case_keys: Iterable[str]) -> set[str]:
        """The keys of every event recorded for these cases."""
        with self.session() as s:
            stmt = select(SlaEvent.event_key).where(SlaEvent.case_key.in_(list(case_keys)))
            return set(s.scalars(stmt))

    def existing_event_keys(self, event_keys: Iterable[str]) -> set[str]:
        """Which of these event keys are recorded."""
        keys = list(event_keys)
        if not keys:
            return set()
        with self.session() as s:
            return set(s.scalars(select(SlaEvent.event_key).where(SlaEvent.event_key.in_(keys))))

    def events_without_task(self, kinds: Iterable[str]) -> list[dict]:
        """Events of these kinds whose Salesforce Task is not recorded yet (create after a crash)."""
        stmt = select(SlaEvent).where(SlaEvent.kind.in_(list(kinds)), SlaEvent.sf_task_id.is_(None))
        return self._rows(stmt.order_by(SlaEvent.event_key))

    # -- emails -------------------------------------------------------------------------------
    def email_intent(
        self, email_key: str, kind: str, to: list[str], subject: str, run_id: str | None = None
    ) -> bool:
        """Record the intent to send an email before sending it. True only for the call that created it;
        an existing key (sent, or claimed by another run) returns False: do not send."""
        row = {"email_key": email_key, "kind": kind, "to": list(to), "subject": subject, "run_id": run_id}
        with self.session() as s:
            return bool(insert_if_absent(s, Email, [row], ["email_key"]))

    def mark_email_sent(self, email_key: str, sent_at: dt.datetime | None = None) -> int:
        return self._update(
            Email,
            (Email.email_key == email_key) & (Email.status == "intent"),
            status="sent",
            sent_at=sent_at or utcnow(),
        )

    def unsent_emails(self) -> list[dict]:
        """Emails claimed but never marked sent (a crash between the claim and the SMTP call)."""
        return self._rows(select(Email).where(Email.status == "intent").order_by(Email.email_key))

    def recorded_email_keys(self, email_keys: Iterable[str]) -> set[str]:
        """Which of these emails the ledger holds (claimed, sent or carried), in a few reads."""
        keys, found = sorted(set(email_keys)), set()
        with self.session() as s:
            for i in range(0, len(keys), 5000):
                stmt = select(Email.email_key).where(Email.email_key.in_(keys[i : i + 5000]))
                found |= set(s.scalars(stmt))
        return found

    def get_email(self, email_key: str) -> dict | None:
        rows = self._rows(select(Email).where(Email.email_key == email_key))
        return rows[0] if rows else None

    # -- quarantine ---------------------------------------------------------------------------
    def quarantine(self, q_key: str, source: str, record_id: str | None, reason: str, payload=None) -> bool:
        """Set a record aside for a human (never blocks the batch). True if newly quarantined."""
        row = {"q_key": q_key, "source": source, "record_id": record_id, "reason": reason, "payload": payload}
        with self.session() as s:
            return bool(insert_if_absent(s, Quarantine, [row], ["q_key"]))

    def quarantine_all(self, rows: Iterable[Mapping]) -> list[str]:
        """``quarantine`` for many ``{q_key, source, record_id, reason, payload}`` rows in one statement.
        Returns the keys newly quarantined."""
        rows = list(rows)
        if not rows:
            return []
        with self.session() as s:
            return [k for (k,) in insert_if_absent(s, Quarantine, rows, ["q_key"])]

    def unreported_quarantine(self) -> list[dict]:
        stmt = select(Quarantine).where(Quarantine.reported_at.is_(None), Quarantine.resolved_at.is_(None))
        return self._rows(stmt.order_by(Quarantine.created_at, Quarantine.q_key))

    def reported_open_quarantine(self, keys: Iterable[str]) -> list[str]:
        """The given quarantine keys already reported to a human and not resolved yet (sorted)."""
        stmt = select(Quarantine.q_key).where(
            Quarantine.q_key.in_(list(keys)),
            Quarantine.resolved_at.is_(None),
            Quarantine.reported_at.is_not(None),
        )
        with self.session() as s:
            return sorted(s.scalars(stmt))

    def mark_quarantine_reported(self, keys: Iterable[str], at: dt.datetime | None = None) -> int:
        cond = Quarantine.q_key.in_(list(keys)) & Quarantine.reported_at.is_(None)
        return self._update(Quarantine, cond, reported_at=at or utcnow())

    def resolve_quarantine(self, keys: Iterable[str], at: dt.datetime | None = None) -> int:
        cond = Quarantine.q_key.in_(list(keys)) & Quarantine.resolved_at.is_(None)
        return self._update(Quarantine, cond, resolved_at=at or utcnow())

    # -- API usage ----------------------------------------------------------------------------
    def record_api_usage(self, run_id: str, system: str, calls: int) -> None:
        """Set the call count of ``system`` for ``run_id`` (a retry overwrites, never double counts)."""
        row = {"run_id": run_id, "system": system, "calls": int(calls), "recorded_at": utcnow()}
        with self.session() as s:
            upsert(s, ApiUsage, [row], ["run_id", "system"])

    # -- helpers ------------------------------------------------------------------------------
    def _update(self, model, condition, **values) -> int:
        with self.session() as s:
            return s.execute(update(model.__table__).where(condition).values(**values)).rowcount

    def _rows(self, stmt) -> list[dict]:
        with self.session() as s:
            return [as_dict(r) for r in s.scalars(stmt)]
