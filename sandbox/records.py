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
    _note(state, sobject, record, record)
    return record


def find_by(
    state: SandboxState, sobject: str, name: str, value: Any, exclude: str | None = None
) -> dict | None:
    """The first live-or-deleted record of ``sobject`` whose ``name`` equals ``value`` (other than
    ``exclude``), through an in-memory index (external ids at 100x volume would otherwise be O(n) scans)."""
    store = state.data["sf"].get(sobject, {})
    entry = state.indexes.get((sobject, name))
    if entry is None or entry["store"] is not store:  # first use, or the store was replaced (rollback)
        values: dict[Any, dict[str, None]] = {}  # value -> ordered set of record ids
        for record_id, record in store.items():
            values.setdefault(record.get(name), {})[record_id] = None
        entry = state.indexes[(sobject, name)] = {"store": store, "values": values}
    for record_id in entry["values"].get(value, ()):
        record = store.get(record_id)
        if record is not None and record.get(name) == value and record_id != exclude:
            return record
    return None


def _note(state: SandboxState, sobject: str, record: dict, values: dict[str, Any]) -> None:
    """Keep the indexes of ``sobject`` current for the fields just written (stale entries are skipped
    on lookup, so only additions are needed)."""
    for (indexed, name), entry in state.indexes.items():
        if indexed == sobject and name in values and entry["store"] is state.data["sf"].get(sobject):
            entry["values"].setdefault(record.get(name), {})[record["Id"]] = None


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
    _note(state, sobject, record, values)


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
