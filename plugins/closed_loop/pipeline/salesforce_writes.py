"""Salesforce writes shared by the pipelines: owner lookup and idempotent upserts by external id.

Every write is an upsert on an external id (the playbook's ``salesforce.case/task.external_id``), so a
rerun after a crash between Salesforce and the ledger updates the same records instead of duplicating
them. Per-record failures come back as results (never raised); only a whole-call failure raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

USER_QUERY = (
    "SELECT Id, Username, Name, FirstName, Title FROM User WHERE IsActive = true AND Username IN {values}"
)


@dataclass(frozen=True)
class WriteResult:
    """One record's outcome: ``key`` is its external id value; ``error`` is "CODE: message" on failure."""

    key: str
    ok: bool
    id: str | None = None
    created: bool = False
    error: str | None = None
    code: str | None = None


def resolve_users(sf_hook, usernames: Iterable[str | None]) -> dict[str, dict]:
    """``{username: User record (Id, Name, FirstName, Title)}`` for the active users among ``usernames``,
    with one escaped SOQL query (``Username IN (...)``; more only past ~300 names). Usernames match
    case-insensitively, as in Salesforce; unknown or inactive usernames are simply absent."""
    wanted = sorted({u for u in usernames if u})
    if not wanted:
        return {}
    found = {row["Username"].casefold(): row for row in sf_hook.query_in_chunks(USER_QUERY, wanted)}
    return {u: found[u.casefold()] for u in wanted if u.casefold() in found}


def resolve_user_ids(sf_hook, usernames: Iterable[str | None]) -> dict[str, str]:
    """``{username: User Id}`` for the active users among ``usernames`` (see ``resolve_users``)."""
    return {u: rec["Id"] for u, rec in resolve_users(sf_hook, usernames).items()}


def upsert_by_external_id(
    sf_hook, sobject: str, external_id: str, rows: Sequence[Mapping]
) -> list[WriteResult]:
    """Upsert ``rows`` (field dicts that each carry ``external_id``) through sObject Collections,
    200 per collection and 5 collections per Composite call; one WriteResult per row, in order."""
    rows = list(rows)
    if not rows:
        return []
    results = sf_hook.upsert_records(sobject, external_id, rows)
    out = []
    for row, res in zip(rows, results, strict=True):
        first = (res.get("errors") or [{}])[0]
        code = first.get("statusCode")
        error = None if res["success"] else f"{code}: {first.get('message')}"
        out.append(
            WriteResult(
                key=str(row[external_id]),
                ok=bool(res["success"]),
                id=res.get("id"),
                created=bool(res.get("created")),
                error=error,
                code=None if res["success"] else code,
            )
        )
    return out


def upsert_cases(sf_hook, case_rows: Sequence[Mapping], external_id: str):
    """Upsert Cases by their external id (``ceil(n/1000)`` calls). Returns WriteResults."""
    return upsert_by_external_id(sf_hook, "Case", external_id, case_rows)


def upsert_tasks(sf_hook, task_rows: Sequence[Mapping], external_id: str):
    """Upsert Tasks by their external id (``ceil(n/1000)`` calls). Returns WriteResults."""
    return upsert_by_external_id(sf_hook, "Task", external_id, task_rows)
