"""Follow-up cases and their SOP steps, mirrored from (and to) Salesforce."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import func, select

from .core import LedgerCore, as_dict
from .models import Case, CaseStep, Watermark
from .types import utcnow
from .upsert import insert_if_absent, update_rows

_C = Case.__table__
_S = CaseStep.__table__
CASE_FIELDS = {c.key for c in _C.columns} - {"case_key"}
STEP_FIELDS = {c.key for c in _S.columns} - {"step_key", "case_key", "step"}
CASE_UPDATE_PREFIX = "intake:case_update:"  # + case key (a watermark): "pending" until the Case is updated


class CasesMixin(LedgerCore):
    def upsert_case(self, case: Mapping) -> bool:
        """Insert the case if its ``case_key`` is new (status "planned"); an existing case is left as it
        is, so reruns never clobber what Salesforce or the sweep recorded. Returns True if inserted."""
        with self.session() as s:
            return bool(insert_if_absent(s, Case, [case], ["case_key"]))

    def upsert_case_steps(self, rows: Iterable[Mapping]) -> list[str]:
        """Insert steps whose ``step_key`` is new (status "planned"). Returns the keys inserted."""
        with self.session() as s:
            return sorted(k for (k,) in insert_if_absent(s, CaseStep, rows, ["step_key"]))

    def insert_planned_cases(self, cases: Iterable[Mapping], steps: Iterable[Mapping]) -> None:
        """Insert new cases and their steps in one transaction; existing keys are left as they are."""
        with self.session() as s:
            insert_if_absent(s, Case, cases, ["case_key"])
            insert_if_absent(s, CaseStep, steps, ["step_key"])

    def existing_case_keys(self, case_keys: Iterable[str]) -> set[str]:
        """The given case keys the ledger holds."""
        keys = list(case_keys)
        if not keys:
            return set()
        with self.session() as s:
            return set(s.scalars(select(Case.case_key).where(Case.case_key.in_(keys))))

    def case_plans(self, case_keys: Iterable[str]) -> dict[str, dict | None]:
        """``{case_key: plan}`` of the given cases."""
        keys = list(case_keys)
        if not keys:
            return {}
        with self.session() as s:
            return dict(s.execute(select(Case.case_key, Case.plan).where(Case.case_key.in_(keys))).all())

    def latest_case_of_contact(self, contact_id: str) -> str | None:
        """The key of the contact's most recently created case."""
        stmt = select(Case.case_key).where(Case.contact_id == contact_id).order_by(Case.created_at.desc())
        with self.session() as s:
            return s.scalars(stmt.limit(1)).first()

    def salesforce_case_ids(self, case_keys: Iterable[str]) -> dict[str, str]:
        """``{case_key: Salesforce Case id}`` of the given cases that have one."""
        keys = sorted({k for k in case_keys if k})
        if not keys:
            return {}
        stmt = select(Case.case_key, Case.sf_case_id).where(
            Case.case_key.in_(keys), Case.sf_case_id.is_not(None)
        )
        with self.session() as s:
            return dict(s.execute(stmt).all())

    def mark_case_update_pending(self, case_key: str) -> None:
        """The Case's stored fields changed (a partial completed later): Salesforce is to be updated."""
        self.set_watermark(CASE_UPDATE_PREFIX + case_key, "pending")

    def mark_case_update_done(self, case_key: str) -> None:
        self.set_watermark(CASE_UPDATE_PREFIX + case_key, "done")

    def case_updates_pending(self) -> list[str]:
        """Keys of the cases whose Salesforce Case still awaits the update of its stored fields."""
        stmt = select(Watermark.name).where(
            Watermark.name.startswith(CASE_UPDATE_PREFIX), Watermark.value == "pending"
        )
        with self.session() as s:
            return sorted(n.removeprefix(CASE_UPDATE_PREFIX) for n in s.scalars(stmt))

    def mark_case_created(self, case_key: str, sf_case_id: str, opened_at=None) -> bool:
        """Record the Salesforce Case id (planned -> open). Idempotent; False if already recorded
        with the same id. Raises if the ledger holds a different id (a duplicate Case in Salesforce)."""
        with self.session() as s:
            case = s.get(Case, case_key, with_for_update=True)
            if case is None:
                raise KeyError(case_key)
            if case.sf_case_id == sf_case_id:
                return False
            if case.sf_case_id is not None:
                raise ValueError(f"case {case_key} already linked to {case.sf_case_id}, not {sf_case_id}")
            case.sf_case_id = sf_case_id
            case.opened_at = opened_at or case.opened_at or utcnow()
            if case.status == "planned":
                case.status = "open"
            return True

    def mark_steps_created(self, mapping: Mapping[str, str], created_at=None) -> int:
        """Record Task ids ``{step_key: sf_task_id}`` (planned -> created). Returns rows changed."""
        now = created_at or utcnow()
        rows = [
            {"step_key": k, "sf_task_id": v, "status": "created", "created_at": now}
            for k, v in mapping.items()
        ]
        with self.session() as s:
            return update_rows(s, _S, "step_key", rows, where=lambda t: t.c.sf_task_id.is_(None))

    def cases_needing_salesforce(self, case_keys: Iterable[str] | None = None) -> list[dict]:
        """Cases without a Salesforce id, or with steps lacking a Task id (only those of ``case_keys``
        when given); each has ``pending_steps``."""
        keys = None if case_keys is None else list(case_keys)
        with self.session() as s:
            stmt = select(CaseStep).where(CaseStep.sf_task_id.is_(None))
            if keys is not None:
                stmt = stmt.where(CaseStep.case_key.in_(keys))
            pending: dict[str, list[dict]] = {}
            for step in s.scalars(stmt.order_by(CaseStep.step_key)):
                pending.setdefault(step.case_key, []).append(as_dict(step))
            stmt = select(Case).where(
                (Case.sf_case_id.is_(None) & (Case.status != "closed")) | Case.case_key.in_(list(pending))
            )
            if keys is not None:
                stmt = stmt.where(Case.case_key.in_(keys))
            return [as_dict(c) | {"pending_steps": pending.get(c.case_key, [])}
                    for c in s.scalars(stmt.order_by(Case.case_key))]  # fmt: skip

    def case_keys_needing_salesforce(self) -> list[str]:
        """Keys of the cases ``cases_needing_salesforce`` returns (sorted), without loading them."""
        unwritten = select(CaseStep.case_key).where(CaseStep.sf_task_id.is_(None))
        stmt = select(Case.case_key).where(
            (Case.sf_case_id.is_(None) & (Case.status != "closed")) | Case.case_key.in_(unwritten)
        )
        with self.session() as s:
            return list(s.scalars(stmt.order_by(Case.case_key)))

    def open_cases_and_steps(self) -> list[dict]:
        """Every case not closed, each with all its ``steps`` (ordered by due date, then key)."""
        with self.session() as s:
            cases = [
                as_dict(c)
                for c in s.scalars(select(Case).where(Case.status != "closed").order_by(Case.case_key))
            ]
            keys = [c["case_key"] for c in cases]
            steps: dict[str, list[dict]] = {k: [] for k in keys}
            stmt = (
                select(CaseStep)
                .where(CaseStep.case_key.in_(keys))
                .order_by(CaseStep.due_date, CaseStep.step_key)
            )
            for step in s.scalars(stmt):
                steps[step.case_key].append(as_dict(step))
        return [c | {"steps": steps[c["case_key"]]} for c in cases]

    def open_case_for_account(self, account_id: str) -> dict | None:
        """The account's oldest case that is not closed, if any (holds back new surveys)."""
        with self.session() as s:
            stmt = (
                select(Case)
                .where(Case.account_id == account_id, Case.status != "closed")
                .order_by(Case.created_at, Case.case_key)
                .limit(1)
            )
            case = s.scalars(stmt).first()
            return as_dict(case) if case else None

    def get_case(self, case_key: str) -> dict | None:
        with self.session() as s:
            case = s.get(Case, case_key)
            return as_dict(case) if case else None

    def record_case_status(self, updates: Iterable[Mapping]) -> int:
        """Apply read-back case fields ``{case_key, sf_status?, status?, dissatisfied?, closed_at?,
        root_cause?, actions_taken?, outcome?, doc_missing_flagged_at?, ...}``. Returns rows changed."""
        return self._apply(_C, "case_key", CASE_FIELDS, updates)

    def record_step_status(self, updates: Iterable[Mapping]) -> int:
        """Apply read-back step fields ``{step_key, sf_status?, status?, completed_at?, due_date?,
        owner_username?}``. A completed step keeps its first completion time. Returns rows changed."""
        first_wins = {"completed_at": lambda p: func.coalesce(_S.c.completed_at, p)}
        rows = [dict(u) for u in updates]
        for row in rows:
            _check({k: v for k, v in row.items() if k != "step_key"}, STEP_FIELDS)
        completing = [r for r in rows if r.get("completed_at") is not None]
        others = [r for r in rows if r.get("completed_at") is None]  # an explicit None clears it
        with self.session() as s:
            n = update_rows(s, _S, "step_key", completing, expressions=first_wins)
            return n + update_rows(s, _S, "step_key", others)

    def _apply(self, table, key_col: str, allowed: set[str], updates: Iterable[Mapping]) -> int:
        rows = [dict(u) for u in updates]
        for row in rows:
            _check({k: v for k, v in row.items() if k != key_col}, allowed)
        with self.session() as s:
            return update_rows(s, table, key_col, rows)


def _check(values: Mapping, allowed: set[str]) -> None:
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
