"""What the SLA sweep and the recovery escalation ask of the ledger, each method named for what it answers."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping

from sqlalchemy import literal, select, update

from .core import LedgerCore, as_dict
from .models import Case, CaseStep, Contact, Response, SlaEvent, SurveySend, Trigger
from .upsert import insert_if_absent

TRIGGER_FIELDS = ("kind", "question_id", "heading", "row", "answer", "rule", "severity")


class SweepMixin(LedgerCore):
    def cases_closed_since(self, since: dt.date) -> list[dict]:
        """Cases the ledger closed on or after ``since`` (with a Salesforce id), each with its ``steps``
        (ordered by due date, then key)."""
        cutoff = dt.datetime.combine(since, dt.time.min, tzinfo=dt.UTC)
        closed = (Case.status == "closed") & (Case.closed_at >= cutoff) & Case.sf_case_id.is_not(None)
        with self.session() as s:
            cases = [as_dict(c) for c in s.scalars(select(Case).where(closed).order_by(Case.case_key))]
            steps: dict[str, list[dict]] = defaultdict(list)
            if cases:
                query = select(CaseStep).where(CaseStep.case_key.in_([c["case_key"] for c in cases]))
                for step in s.scalars(query.order_by(CaseStep.due_date, CaseStep.step_key)):
                    steps[step.case_key].append(as_dict(step))
        return [c | {"steps": steps[c["case_key"]]} for c in cases]

    def read_back_targets(self, closed_since: dt.date) -> list[dict]:
        """What the sweep read-back tracks, with only the columns it uses (not the stored ``plan``, ~56 KB
        a case): the cases not closed that have a Salesforce id (by key), then those closed on or after
        ``closed_since`` (by key); each with ``steps`` that have a Salesforce id and are not completed (by
        due date, then key). Cases: case_key, sf_case_id, status, sf_status, account_id; steps:
        step_key, sf_task_id, status, sf_status."""
        cutoff = dt.datetime.combine(closed_since, dt.time.min, tzinfo=dt.UTC)
        cols = (Case.case_key, Case.sf_case_id, Case.status, Case.sf_status, Case.account_id)
        tracked = Case.sf_case_id.is_not(None)
        closed = (Case.status == "closed") & (Case.closed_at >= cutoff)
        with self.session() as s:
            cases = [
                r._asdict()
                for where in (Case.status != "closed", closed)
                for r in s.execute(select(*cols).where(tracked & where).order_by(Case.case_key))
            ]
            steps: dict[str, list[dict]] = defaultdict(list)
            stmt = (
                select(CaseStep.case_key, CaseStep.step_key, CaseStep.sf_task_id, CaseStep.status,
                       CaseStep.sf_status)
                .join(Case, Case.case_key == CaseStep.case_key)
                .where(tracked & ((Case.status != "closed") | closed))
                .where(CaseStep.sf_task_id.is_not(None), CaseStep.status != "completed")
                .order_by(CaseStep.due_date, CaseStep.step_key)
            )  # fmt: skip
            for r in s.execute(stmt):
                row = r._asdict()
                steps[row.pop("case_key")].append(row)
        return [c | {"steps": steps.get(c["case_key"], [])} for c in cases]

    def cases_by_key(self, keys: Iterable[str]) -> dict[str, dict]:
        """``{case_key: case}`` for the keys the ledger holds."""
        keys = list(keys)
        if not keys:
            return {}
        with self.session() as s:
            return {c.case_key: as_dict(c) for c in s.scalars(select(Case).where(Case.case_key.in_(keys)))}

    def triggers_of_cases(self, case_keys: Iterable[str]) -> dict[str, list[dict]]:
        """``{case_key: [trigger fields]}``: the triggers recorded for each case's response."""
        out: dict[str, list[dict]] = defaultdict(list)
        with self.session() as s:
            for t in s.scalars(select(Trigger).where(Trigger.response_id.in_(list(case_keys)))):
                out[t.response_id].append({f: getattr(t, f) for f in TRIGGER_FIELDS})
        return dict(out)

    def contact_first_names(self, contact_ids: Iterable[str]) -> dict[str, str | None]:
        """``{contact id: first name}`` for the contacts the ledger holds."""
        with self.session() as s:
            stmt = select(Contact.sf_id, Contact.first_name).where(Contact.sf_id.in_(list(contact_ids)))
            return dict(s.execute(stmt).all())

    def contact_addresses(self, contact_ids: Iterable[str]) -> dict[str, dict]:
        """``{contact id: {email, first_name, last_name}}`` for the contacts the ledger holds."""
        with self.session() as s:
            rows = s.scalars(select(Contact).where(Contact.sf_id.in_(list(contact_ids))))
            return {c.sf_id: {"email": c.email, "first_name": c.first_name, "last_name": c.last_name}
                    for c in rows}  # fmt: skip

    def closed_cases_without_send(self, since: dt.datetime, send_key_prefix: str) -> list[tuple[dict, dict]]:
        """(case, its contact or ``{}``) for each case closed at or after ``since`` with no survey send
        keyed ``<send_key_prefix><case_key>`` yet, by case key."""
        stmt = (
            select(Case, Contact)
            .outerjoin(SurveySend, SurveySend.send_key == literal(send_key_prefix).concat(Case.case_key))
            .outerjoin(Contact, Contact.sf_id == Case.contact_id)
            .where(Case.status == "closed", Case.closed_at >= since, SurveySend.send_key.is_(None))
            .order_by(Case.case_key)
        )
        with self.session() as s:
            return [(as_dict(case), as_dict(contact) if contact else {}) for case, contact in s.execute(stmt)]

    def start_dissatisfied_episodes(
        self, episodes: Mapping[str, tuple[str, Callable[[int], Mapping]]]
    ) -> list[str]:
        """``{case_key: (event key prefix, build)}``: for each case not flagged dissatisfied yet, its
        escalation event ``build(n)`` (``n`` = 1 + the case's events already under the prefix, so a
        second episode gets its own key) and the flag, all in one transaction with the cases locked.
        Returns the case keys whose episode started."""
        if not episodes:
            return []
        with self.session() as s:
            calm = (Case.case_key.in_(list(episodes))) & Case.dissatisfied.is_(False)
            todo = sorted(s.scalars(select(Case.case_key).where(calm).with_for_update()))
            if not todo:
                return []
            seen = Counter(
                ck
                for ck, key in s.execute(select(SlaEvent.case_key, SlaEvent.event_key).where(
                    SlaEvent.case_key.in_(todo)))
                if key.startswith(episodes[ck][0])
            )  # fmt: skip
            insert_if_absent(s, SlaEvent, [episodes[ck][1](1 + seen[ck]) for ck in todo], ["event_key"])
            s.execute(update(Case.__table__).where(Case.case_key.in_(todo)).values(dissatisfied=True))
        return todo

    def flag_doc_missing(self, events: Iterable[Mapping], flagged_at: dt.datetime) -> list[str]:
        """Insert the documentation-missing events whose key is new and stamp their cases
        ``doc_missing_flagged_at``, in one transaction. Returns the case keys newly flagged."""
        events = list(events)
        if not events:
            return []
        with self.session() as s:
            inserted = {k for (k,) in insert_if_absent(s, SlaEvent, events, ["event_key"])}
            keys = sorted({e["case_key"] for e in events if e["event_key"] in inserted})
            if keys:
                stmt = update(Case.__table__).where(Case.case_key.in_(keys))
                s.execute(stmt.values(doc_missing_flagged_at=flagged_at))
        return keys

    def negative_recovery_pulses(self) -> list[tuple[str, str]]:
        """(pulse response id, case key) of every negative recovery pulse, by response id."""
        stmt = select(Response.response_id, Response.case_key).where(
            Response.is_recovery.is_(True), Response.negative.is_(True), Response.case_key.is_not(None)
        )
        with self.session() as s:
            return [(rid, ck) for rid, ck in s.execute(stmt.order_by(Response.response_id))]

    def record_reopening_escalations(self, events: Iterable[Mapping]) -> list[str]:
        """Insert escalation events (new keys only) and reopen their cases, flagged dissatisfied, in one
        transaction. Returns the event keys inserted."""
        events = list(events)
        if not events:
            return []
        with self.session() as s:
            inserted = [k for (k,) in insert_if_absent(s, SlaEvent, events, ["event_key"])]
            keys = sorted({e["case_key"] for e in events})
            s.execute(
                update(Case.__table__).where(Case.case_key.in_(keys)).values(status="open", dissatisfied=True)
            )
        return inserted
