"""Accounts and contacts synced from Salesforce."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import select

from .core import LedgerCore, as_dict
from .models import Account, Contact
from .types import utcnow
from .upsert import upsert


class SyncMixin(LedgerCore):
    def upsert_accounts(self, rows: Iterable[Mapping]) -> int:
        """Insert or update accounts by ``sf_id``; stamps ``synced_at``. Returns the row count."""
        return self._upsert_synced(Account, rows)

    def upsert_contacts(self, rows: Iterable[Mapping]) -> int:
        """Insert or update contacts by ``sf_id``; stamps ``synced_at``. Returns the row count."""
        return self._upsert_synced(Contact, rows)

    def _upsert_synced(self, model, rows: Iterable[Mapping]) -> int:
        now = utcnow()
        rows = [{**row, "synced_at": now} for row in rows]
        with self.session() as s:
            return upsert(s, model, rows, ["sf_id"])

    def get_account(self, sf_id: str) -> dict | None:
        with self.session() as s:
            obj = s.get(Account, sf_id)
            return as_dict(obj) if obj else None

    def contacts_for_accounts(self, account_ids: Iterable[str]) -> list[dict]:
        ids = list(account_ids)
        with self.session() as s:
            rows = s.scalars(select(Contact).where(Contact.account_id.in_(ids)).order_by(Contact.sf_id))
            return [as_dict(r) for r in rows]
