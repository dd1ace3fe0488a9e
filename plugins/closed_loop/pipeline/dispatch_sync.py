"""survey_dispatch step 1: Accounts and flagged Contacts from Salesforce into the ledger, incrementally.

One Composite call carries both incremental SOQL queries; each object's rows are stored with its watermark
in the same transaction."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from closed_loop.ledger.types import to_date, to_utc

log = logging.getLogger(__name__)

ACCOUNT_WATERMARK = "survey_dispatch.accounts.system_modstamp"
CONTACT_WATERMARK = "survey_dispatch.contacts.system_modstamp"
SF_PAGE = 2000  # records per SOQL page


def account_soql(playbook, incremental: bool) -> str:
    """The Account query template: changed since the watermark, or go-live inside the horizon."""
    f = playbook.salesforce.account
    rel = f.tsm_relationship
    fields = (
        f"Id, Name, {f.go_live_date}, {f.mrr}, {f.tsm_lookup}, {rel}.Username, {rel}.IsActive, "
        f"{f.at_risk}, SystemModstamp"
    )
    horizon = f"({f.go_live_date} >= {{first}} AND {f.go_live_date} <= {{last}})"
    where = f"SystemModstamp > {{since}} OR {horizon}" if incremental else horizon
    return f"SELECT {fields} FROM Account WHERE {where} ORDER BY SystemModstamp"


def contact_soql(playbook, incremental: bool) -> str:
    """Flagged contacts of accounts inside the horizon, plus every contact changed since the watermark
    (so one unflagged or opted out since is updated too and stops receiving)."""
    c, a = playbook.salesforce.contact, playbook.salesforce.account
    fields = f"Id, AccountId, FirstName, LastName, Email, {c.ipm_checkbox}, {c.opted_out}, SystemModstamp"
    horizon = (
        f"({c.ipm_checkbox} = true AND Account.{a.go_live_date} >= {{first}} "
        f"AND Account.{a.go_live_date} <= {{last}})"
    )
    where = f"SystemModstamp > {{since}} OR {horizon}" if incremental else horizon
    return f"SELECT {fields} FROM Contact WHERE {where} ORDER BY SystemModstamp"


def sync_horizon(playbook, today: dt.date) -> tuple[dt.date, dt.date]:
    """Go-live dates whose survey is due today or still inside the catch-up window."""
    rules = playbook.dispatch
    return today - dt.timedelta(days=rules.survey_delay_days + rules.catch_up_window_days), today


def sync_go_lives(
    sf, ledger, playbook, today: dt.date, *, dry_run: bool = False, overlap_minutes: int = 10
) -> dict:
    """Upsert changed/in-horizon Accounts and flagged Contacts into the ledger; advance both watermarks
    with the data they cover. Returns counts (no PII)."""
    from simple_salesforce import format_soql

    first, last = sync_horizon(playbook, today)
    out = {}
    objects = (
        (
            "accounts",
            ledger.upsert_accounts,
            account_soql,
            ACCOUNT_WATERMARK,
            lambda r: _account_row(r, playbook),
        ),
        (
            "contacts",
            ledger.upsert_contacts,
            contact_soql,
            CONTACT_WATERMARK,
            lambda r: _contact_row(r, playbook),
        ),
    )
    statements, marks = [], []
    for _, _, soql, watermark, _ in objects:
        since = to_utc(ledger.get_watermark(watermark))
        params = {"first": first, "last": last}
        if since is not None:
            params["since"] = since - dt.timedelta(minutes=overlap_minutes)
        statements.append(format_soql(soql(playbook, since is not None), **params))
        marks.append(since)
    # both queries in one Composite call (up to 5 query operations per call, next pages too)
    for (name, store, _, watermark, to_row), since, records in zip(
        objects, marks, sf.query_many(statements), strict=True
    ):
        rows = [to_row(r) for r in records]
        stamps = [row["system_modstamp"] for row in rows if row["system_modstamp"]]
        newest = max([*stamps, since] if since else stamps, default=None)
        if not dry_run and rows:
            store(rows, watermark=(watermark, newest))  # rows and their watermark in one transaction
        out[name] = len(rows)
    log.debug("sync_go_lives %s: %s (dry_run=%s)", today, out, dry_run)
    return out


def _account_row(record: Mapping, playbook) -> dict:
    from closed_loop.domain.routing import parse_mrr

    f = playbook.salesforce.account
    tsm = record.get(f.tsm_relationship) or {}
    mrr, _ = parse_mrr(record.get(f.mrr))
    return {
        "sf_id": record["Id"],
        "name": record.get("Name"),
        "go_live_date": _safe_date(record.get(f.go_live_date)),
        "mrr": mrr,
        "tsm_user_id": record.get(f.tsm_lookup),
        "tsm_username": tsm.get("Username"),
        "at_risk": bool(record.get(f.at_risk)),
        "system_modstamp": to_utc(record.get("SystemModstamp")),
    }


def _contact_row(record: Mapping, playbook) -> dict:
    c = playbook.salesforce.contact
    return {
        "sf_id": record["Id"],
        "account_id": record.get("AccountId"),
        "email": (record.get("Email") or "").strip() or None,
        "first_name": record.get("FirstName"),
        "last_name": record.get("LastName"),
        "is_impl_pm": bool(record.get(c.ipm_checkbox)),
        "opted_out": bool(record.get(c.opted_out)),
        "system_modstamp": to_utc(record.get("SystemModstamp")),
    }


def _safe_date(value) -> dt.date | None:
    try:
        return to_date(value)
    except (TypeError, ValueError):
        return None
