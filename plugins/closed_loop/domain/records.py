"""Salesforce Task and Case records: the one place their field dicts are built.

Standard field names are Salesforce's own (Task and Case objects, API v61.0); the custom ones (the
external ids) come from the playbook's ``salesforce`` map. Text is cut to the field lengths Salesforce
documents, so a long account name or comment never turns a write into ``STRING_TOO_LONG``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from closed_loop.playbook import Playbook

SUBJECT_MAX = 255  # Task.Subject and Case.Subject: string(255)
DESCRIPTION_MAX = 32_000  # Task.Description (textarea 32,000) and Case.Description (long text 32,000)


def task_record(
    playbook: Playbook,
    *,
    key: str,
    subject: str,
    description: str,
    due: dt.date,
    owner_id: str | None = None,
    what_id: str | None = None,
    who_id: str | None = None,
    priority: str = "Normal",
    status: str | None = None,
) -> dict[str, Any]:
    """A Task keyed by the playbook's ``salesforce.task.external_id``; ``status`` defaults to the
    playbook's open status; ids that are ``None`` are left out (the caller resolves them)."""
    status = status or playbook.salesforce.task.open_status
    record = _keyed(playbook.salesforce.task.external_id, key, subject, description, priority, status)
    return record | {"ActivityDate": due.isoformat()} | _ids(OwnerId=owner_id, WhatId=what_id, WhoId=who_id)


def case_record(
    playbook: Playbook,
    *,
    key: str,
    subject: str,
    description: str,
    priority: str,
    status: str,
    account_id: str,
    contact_id: str | None = None,
    owner_id: str | None = None,
    origin: str | None = None,
) -> dict[str, Any]:
    """A Case keyed by the playbook's ``salesforce.case.external_id`` (the survey response id);
    ``origin`` defaults to the playbook's ``salesforce.case.origin``."""
    record = _keyed(playbook.salesforce.case.external_id, key, subject, description, priority, status)
    record |= {"Origin": origin or playbook.salesforce.case.origin, "AccountId": account_id}
    return record | _ids(ContactId=contact_id, OwnerId=owner_id)


def without_fields_kept_on_replay(playbook: Playbook, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` without the fields a replayed create must not overwrite on an existing record
    (``salesforce.kept_on_replay``: by default Status, Priority and OwnerId, the LP's own work)."""
    kept = set(playbook.salesforce.kept_on_replay)
    return {k: v for k, v in record.items() if k not in kept}


def _keyed(external_id: str, key: str, subject: str, description: str, priority: str, status: str) -> dict:
    return {
        external_id: key,
        "Subject": subject[:SUBJECT_MAX],
        "Description": description[:DESCRIPTION_MAX],
        "Priority": priority,
        "Status": status,
    }


def _ids(**ids: str | None) -> dict[str, str]:
    return {name: value for name, value in ids.items() if value}
