"""Salesforce record lifecycle shared by the API, the seed and the simulated users: defaults, audit
fields, derived fields (Name, IsClosed, CompletedDateTime, ClosedDate, CaseNumber)."""

from __future__ import annotations

from typing import Any

from sandbox.sf_schema import CLOSED_TASK_STATUSES, SCHEMA
from sandbox.state import SandboxState, sf_datetime


def create(state: SandboxState, sobject: str, values: dict[str, Any], by: str | None = None) -> dict:
    """Insert a record (values already validated) and return it."""
    now = sf_datetime(state.now)
    record = {name: spec.default for name, spec in SCHEMA[sobject].items()}
    record.update(values)
    record_id = state.new_sf_id(sobject)
    user = by or state.data.get("api_user_id")
    record.update(
        Id=record_id,
        CreatedDate=now,
        LastModifiedDate=now,
        SystemModstamp=now,
        CreatedById=user,
        LastModifiedById=user,
    )
    if "OwnerId" in record and not record["OwnerId"]:
        record["OwnerId"] = user
    if sobject == "Case":
        record["CaseNumber"] = f"{state._next('CaseNumber') + 1000:08d}"
    _derive(state, sobject, record, previous=None)
    state.data["sf"].setdefault(sobject, {})[record_id] = record
    return record


def update(
    state: SandboxState, sobject: str, record: dict, values: dict[str, Any], by: str | None = None
) -> None:
    previous = dict(record)
    record.update(values)
    now = sf_datetime(state.now)
    record.update(
        LastModifiedDate=now, SystemModstamp=now, LastModifiedById=by or state.data.get("api_user_id")
    )
    _derive(state, sobject, record, previous)


def _derive(state: SandboxState, sobject: str, record: dict, previous: dict | None) -> None:
    now = sf_datetime(state.now)
    if sobject in ("Contact", "User"):
        record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
    if sobject == "Task":
        closed = record.get("Status") in CLOSED_TASK_STATUSES
        if closed and not (previous or {}).get("IsClosed"):
            record["CompletedDateTime"] = now
        if not closed:
            record["CompletedDateTime"] = None
        record["IsClosed"] = closed
    if sobject == "Case":
        closed = record.get("Status") == "Closed"
        if closed and not (previous or {}).get("IsClosed"):
            record["ClosedDate"] = now
        if not closed:
            record["ClosedDate"] = None
        record["IsClosed"] = closed
