"""Survey sends: plan -> claim intent -> call SurveyMonkey -> record the outcome; reminders likewise."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from sqlalchemy import and_, exists, or_, select, update

from .core import LedgerCore, as_dict
from .models import Response, SurveySend, Watermark
from .types import UTC, to_date, utcnow
from .upsert import insert_if_absent

SEND_STATUSES = {"planned", "intent", "sent", "skipped", "bounced", "opted_out", "invalid", "existing"}
# Which current statuses each reported outcome may replace: a sent row is never re-sent or re-planned.
_OUTCOME_FROM = {
    "sent": {"planned", "intent"},
    "skipped": {"planned", "intent"},
    "invalid": {"planned", "intent"},
    "existing": {"planned", "intent"},
    "bounced": {"planned", "intent", "sent"},
    "opted_out": {"planned", "intent", "sent"},
}
_T = SurveySend.__table__


class SendsMixin(LedgerCore):
    def plan_sends(self, rows: Iterable[Mapping]) -> dict:
        """Insert planned sends that are absent (a row may carry another initial status, e.g. skipped).

        An existing row still planned/intent whose go-live or due date differs gets them updated; a sent
        (or otherwise final) row is never touched. A new invite supersedes the same contact's other
        still-planned invites for the same account (status skipped, reason "superseded by <key>").
        Returns ``{"inserted": [keys], "moved": [keys], "superseded": [keys]}``.
        """
        rows = [dict(r) for r in rows]
        for row in rows:
            row.setdefault("status", "planned")
            if row["status"] not in SEND_STATUSES:
                raise ValueError(f"unknown send status {row['status']!r}")
        moved: list[str] = []
        superseded: list[str] = []
        with self.session() as s:
            inserted = {k for (k,) in insert_if_absent(s, SurveySend, rows, ["send_key"])}
            for row in rows:
                key = row["send_key"]
                if key not in inserted and ("go_live_date" in row or "due_date" in row):
                    moved += self._move_planned(s, key, row)
                if key in inserted and row.get("kind") == "invite" and row["status"] == "planned":
                    superseded += self._supersede(s, row)
        return {"inserted": sorted(inserted), "moved": moved, "superseded": superseded}

    @staticmethod
    def _move_planned(s, key: str, row: Mapping) -> list[str]:
        new = {c: to_date(row[c]) for c in ("go_live_date", "due_date") if c in row}
        changed = or_(*(_T.c[c].is_distinct_from(v) for c, v in new.items()))
        stmt = (
            update(_T)
            .where(_T.c.send_key == key, _T.c.status.in_(("planned", "intent")), changed)
            .values(**new)
            .returning(_T.c.send_key)
        )
        return list(s.scalars(stmt))

    @staticmethod
    def _supersede(s, row: Mapping) -> list[str]:
        stmt = (
            update(_T)
            .where(
                _T.c.kind == "invite",
                _T.c.status == "planned",
                _T.c.contact_id == row.get("contact_id"),
                _T.c.account_id == row.get("account_id"),
                _T.c.send_key != row["send_key"],
            )
            .values(status="skipped", reason=f"superseded by {row['send_key']}")
            .returning(_T.c.send_key)
        )
        return list(s.scalars(stmt))

    def mark_send_intent(
        self,
        keys: Iterable[str],
        run_id: str,
        message_id: str | None = None,
        collector_id: str | None = None,
        survey_id: str | None = None,
    ) -> list[str]:
        """Claim planned sends before calling SurveyMonkey (planned -> intent). Returns the keys this call
        claimed; a key already claimed (by any run or a concurrent session) is not returned."""
        values = {"status": "intent", "run_id": run_id, "intent_at": utcnow()}
        values |= {k: v for k, v in (("message_id", message_id), ("collector_id", collector_id),
                                     ("survey_id", survey_id)) if v is not None}  # fmt: skip
        stmt = (
            update(_T)
            .where(_T.c.send_key.in_(list(keys)), _T.c.status == "planned")
            .values(**values)
            .returning(_T.c.send_key)
        )
        with self.session() as s:
            return sorted(s.scalars(stmt))

    def pending_intents(self, run_id: str | None = None) -> list[dict]:
        """Sends claimed but not resolved (a crash happened after the claim): reconcile these first."""
        stmt = select(SurveySend).where(SurveySend.status == "intent")
        if run_id is not None:
            stmt = stmt.where(SurveySend.run_id == run_id)
        return self._sends(stmt)

    def release_intents(self, keys: Iterable[str]) -> int:
        """Return claimed sends to planned (reconciliation showed SurveyMonkey never got them)."""
        stmt = (
            update(_T)
            .where(_T.c.send_key.in_(list(keys)), _T.c.status == "intent")
            .values(status="planned", run_id=None, intent_at=None, message_id=None)
        )
        with self.session() as s:
            return s.execute(stmt).rowcount

    def set_planned_reasons(self, reasons: Mapping[str, str | None]) -> int:
        """Record why each still-planned send waits (``{send_key: reason}``, None clears it)."""
        n = 0
        with self.session() as s:
            for key, reason in reasons.items():
                stmt = update(_T).where(_T.c.send_key == key, _T.c.status == "planned").values(reason=reason)
                n += s.execute(stmt).rowcount
        return n

    def record_recipients(self, mapping: Mapping[str, str]) -> int:
        """Store SurveyMonkey recipient ids on claimed intents ``{send_key: recipient_id}``."""
        n = 0
        with self.session() as s:
            for key, recipient_id in mapping.items():
                stmt = (
                    update(_T)
                    .where(_T.c.send_key == key, _T.c.status == "intent")
                    .values(recipient_id=recipient_id)
                )
                n += s.execute(stmt).rowcount
        return n

    def mark_sent(self, results: Iterable[Mapping]) -> int:
        """Record outcomes: each ``{send_key, status="sent"|"bounced"|"opted_out"|"invalid"|"skipped"|
        "existing", recipient_id?, message_id?, collector_id?, survey_id?, reason?, sent_at?}``.

        A sent row never goes back; bounced/opted_out may follow sent. Returns the rows changed.
        """
        changed = 0
        now = utcnow()
        with self.session() as s:
            for result in results:
                result = dict(result)
                status = result.setdefault("status", "sent")
                if status not in _OUTCOME_FROM:
                    raise ValueError(f"not an outcome status: {status!r}")
                if status == "sent":
                    result.setdefault("sent_at", now)
                key = result.pop("send_key")
                stmt = (
                    update(_T)
                    .where(_T.c.send_key == key, _T.c.status.in_(_OUTCOME_FROM[status]))
                    .values(**result)
                )
                changed += s.execute(stmt).rowcount
        return changed

    def sends_due(
        self, on_date: dt.date, kind: str | None = None, not_before: dt.date | None = None
    ) -> list[dict]:
        """Planned sends due on or before ``on_date`` (and on or after ``not_before``), by due date."""
        stmt = select(SurveySend).where(SurveySend.status == "planned", SurveySend.due_date <= on_date)
        if kind:
            stmt = stmt.where(SurveySend.kind == kind)
        if not_before:
            stmt = stmt.where(SurveySend.due_date >= not_before)
        return self._sends(stmt.order_by(SurveySend.due_date, SurveySend.send_key))

    def sends_for_contacts(self, contact_ids: Iterable[str]) -> list[dict]:
        """Every send to these contacts (for re-survey quarantine and never-twice checks)."""
        stmt = select(SurveySend).where(SurveySend.contact_id.in_(list(contact_ids)))
        return self._sends(stmt.order_by(SurveySend.contact_id, SurveySend.send_key))

    def planned_sends(self, kind: str | None = None) -> list[dict]:
        """Every send still planned (any due date), by send key."""
        stmt = select(SurveySend).where(SurveySend.status == "planned")
        if kind:
            stmt = stmt.where(SurveySend.kind == kind)
        return self._sends(stmt.order_by(SurveySend.send_key))

    def invite_collectors_known(self, marker_prefix: str) -> set[str]:
        """SurveyMonkey collectors the ledger knows as invite batches: those its invite sends name, and
        those marked by a watermark ``<marker_prefix><collector_id>`` (created or reconciled)."""
        with self.session() as s:
            stmt = select(SurveySend.collector_id).where(
                SurveySend.kind == "invite", SurveySend.collector_id.is_not(None)
            )
            known = set(s.scalars(stmt.distinct()))
            marked = s.scalars(select(Watermark.name).where(Watermark.name.startswith(marker_prefix)))
            return known | {name.removeprefix(marker_prefix) for name in marked}

    def get_send(self, send_key: str) -> dict | None:
        with self.session() as s:
            obj = s.get(SurveySend, send_key)
            return as_dict(obj) if obj else None

    def send_by_recipient(self, recipient_ids: Iterable[str]) -> dict[str, dict]:
        """Sends keyed by SurveyMonkey recipient id (joins responses back to account/contact)."""
        stmt = select(SurveySend).where(SurveySend.recipient_id.in_(list(recipient_ids)))
        return {row["recipient_id"]: row for row in self._sends(stmt)}

    # -- reminders ----------------------------------------------------------------------------
    def sends_needing_reminder(self, on_date: dt.date, delay_days: int, kind: str = "invite") -> list[dict]:
        """Sent at least ``delay_days`` before ``on_date``, not yet reminded, and with no response."""
        cutoff = dt.datetime.combine(on_date - dt.timedelta(days=delay_days - 1), dt.time(), UTC)
        responded = exists().where(
            or_(
                Response.send_key == SurveySend.send_key,
                and_(SurveySend.recipient_id.is_not(None), Response.recipient_id == SurveySend.recipient_id),
            )
        )
        stmt = select(SurveySend).where(
            SurveySend.kind == kind,
            SurveySend.status == "sent",
            SurveySend.sent_at < cutoff,
            SurveySend.reminder_key.is_(None),
            ~responded,
        )
        return self._sends(stmt.order_by(SurveySend.sent_at, SurveySend.send_key))

    def claim_reminders(self, keys: Iterable[str], reminder_key: str) -> list[str]:
        """Claim sends for a reminder before sending it (sets reminder_key once). Returns claimed keys."""
        stmt = (
            update(_T)
            .where(_T.c.send_key.in_(list(keys)), _T.c.status == "sent", _T.c.reminder_key.is_(None))
            .values(reminder_key=reminder_key)
            .returning(_T.c.send_key)
        )
        with self.session() as s:
            return sorted(s.scalars(stmt))

    def collectors_done_with_reminders(self, marker_prefix: str) -> set[str]:
        """Collectors whose reminder is claimed or sent, plus those marked as needing none (a watermark
        ``<marker_prefix><collector_id>``: everybody answered, or the reminder was withheld)."""
        with self.session() as s:
            stmt = select(SurveySend.collector_id).where(SurveySend.reminder_key.is_not(None))
            done = set(s.scalars(stmt))
            marked = s.scalars(select(Watermark.name).where(Watermark.name.startswith(marker_prefix)))
            return done | {name.removeprefix(marker_prefix) for name in marked}

    def record_reminder_message(self, keys: Iterable[str], message_id: str) -> int:
        """Store the reminder's message id on claimed sends not yet recorded as reminded."""
        stmt = (
            update(_T)
            .where(_T.c.send_key.in_(list(keys)), _T.c.reminder_sent_at.is_(None))
            .values(reminder_message_id=message_id)
        )
        with self.session() as s:
            return s.execute(stmt).rowcount

    def reminded_without_lp_task(self) -> list[dict]:
        """Reminded invites whose Lead Person reminder Task is not recorded yet, by send key."""
        stmt = select(SurveySend).where(
            SurveySend.reminder_sent_at.is_not(None),
            SurveySend.lp_reminder_task_id.is_(None),
            SurveySend.kind == "invite",
        )
        return self._sends(stmt.order_by(SurveySend.send_key))

    def pending_reminders(self) -> list[dict]:
        """Reminders claimed but not recorded as sent (reconcile after a crash)."""
        stmt = select(SurveySend).where(
            SurveySend.reminder_key.is_not(None), SurveySend.reminder_sent_at.is_(None)
        )
        return self._sends(stmt)

    def mark_reminders_sent(
        self, keys: Iterable[str], reminder_message_id: str | None, sent_at: dt.datetime | None = None
    ) -> int:
        stmt = (
            update(_T)
            .where(_T.c.send_key.in_(list(keys)), _T.c.reminder_sent_at.is_(None))
            .values(reminder_message_id=reminder_message_id, reminder_sent_at=sent_at or utcnow())
        )
        with self.session() as s:
            return s.execute(stmt).rowcount

    def set_lp_reminder_tasks(self, mapping: Mapping[str, str]) -> int:
        """Record the Salesforce Task asking the LP to remind the biller: {send_key: task_id}."""
        n = 0
        with self.session() as s:
            for key, task_id in mapping.items():
                stmt = update(_T).where(_T.c.send_key == key).values(lp_reminder_task_id=task_id)
                n += s.execute(stmt).rowcount
        return n

    def _sends(self, stmt) -> list[dict]:
        with self.session() as s:
            return [as_dict(r) for r in s.scalars(stmt)]
