"""Accounts and contacts synced from Salesforce."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from sqlalchemy import select

from .core import LedgerCore, as_dict
from .models import Account, Case, Contact, SurveySend, Watermark
from .types import utcnow
from .upsert import upsert


class SyncMixin(LedgerCore):
    def upsert_accounts(
        self, rows: Iterable[Mapping], watermark: tuple[str, dt.datetime] | None = None
    ) -> int:
        """Insert or update accounts by ``sf_id``; stamps ``synced_at``. ``watermark`` ``(name, value)``
        advances in the same transaction (the sync's high-water mark). Returns the row count."""
        return self._upsert_synced(Account, rows, watermark)

    def upsert_contacts(
        self, rows: Iterable[Mapping], watermark: tuple[str, dt.datetime] | None = None
    ) -> int:
        """Insert or update contacts by ``sf_id``; stamps ``synced_at``; ``watermark`` as for accounts."""
        return self._upsert_synced(Contact, rows, watermark)

    def _upsert_synced(self, model, rows: Iterable[Mapping], watermark=None) -> int:
        now = utcnow()
        rows = [{**row, "synced_at": now} for row in rows]
        with self.session() as s:
            count = upsert(s, model, rows, ["sf_id"])
            if watermark is not None and watermark[1] is not None:
                name, value = watermark
                upsert(
                    s, Watermark, [{"name": name, "value": value.isoformat(), "updated_at": now}], ["name"]
                )
            return count

    def get_account(self, sf_id: str) -> dict | None:
        with self.session() as s:
            obj = s.get(Account, sf_id)
            return as_dict(obj) if obj else None

    def contacts_for_accounts(self, account_ids: Iterable[str]) -> list[dict]:
        ids = list(account_ids)
        with self.session() as s:
            rows = s.scalars(select(Contact).where(Contact.account_id.in_(ids)).order_by(Contact.sf_id))
            return [as_dict(r) for r in rows]

    def get_contacts(self, contact_ids: Iterable[str]) -> dict[str, dict]:
        """Contacts by ``sf_id`` (absent ids are left out)."""
        ids = list(contact_ids)
        with self.session() as s:
            return {c.sf_id: as_dict(c) for c in s.scalars(select(Contact).where(Contact.sf_id.in_(ids)))}

    def get_accounts(self, account_ids: Iterable[str]) -> dict[str, dict]:
        """Accounts by ``sf_id`` (absent ids are left out)."""
        ids = list(account_ids)
        with self.session() as s:
            return {a.sf_id: as_dict(a) for a in s.scalars(select(Account).where(Account.sf_id.in_(ids)))}

    def accounts_to_survey(self, first_go_live: dt.date, last_go_live: dt.date) -> list[dict]:
        """Accounts whose go-live falls in ``[first_go_live, last_go_live]`` (survey due in the window) or
        that still have a planned invite (so a moved go-live or an unflagged contact is decided too)."""
        with self.session() as s:
            in_window = s.scalars(
                select(Account.sf_id).where(
                    Account.go_live_date >= first_go_live, Account.go_live_date <= last_go_live
                )
            ).all()
            planned = s.scalars(
                select(SurveySend.account_id).where(
                    SurveySend.kind == "invite", SurveySend.status == "planned"
                )
            ).all()
            ids = sorted(set(in_window) | set(planned))
            return [as_dict(a) for a in s.scalars(select(Account).where(Account.sf_id.in_(ids)))]

    def accounts_with_open_cases(self) -> set[str]:
        """Accounts with a follow-up Case the ledger has not closed (their survey waits)."""
        with self.session() as s:
            return set(s.scalars(select(Case.account_id).where(Case.status != "closed")).all())

    def opted_out_contacts(self, contact_ids: Iterable[str]) -> set[str]:
        """Those of ``contact_ids`` opted out of email in Salesforce (as last synced)."""
        ids = list(contact_ids)
        with self.session() as s:
            stmt = select(Contact.sf_id).where(Contact.sf_id.in_(ids), Contact.opted_out.is_(True))
            return set(s.scalars(stmt))
