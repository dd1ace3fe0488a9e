"""The one Salesforce writer of the pipelines: the username -> User lookup, creates that survive a replay,
and upserts by external id for intended changes.

Every record carries an external id (the playbook's ``salesforce.case/task.external_id``), so a rerun
after a crash between Salesforce and the ledger, or a ledger restored from backup, finds the records it
already wrote instead of duplicating them. What the plan *creates* goes through ``create_records_once``:
an existing record keeps the fields the LP works with (``salesforce.kept_on_replay``). What the plan
*changes* on purpose (a Case escalated, a data-quality Task closed) goes through ``upsert_cases`` /
``upsert_tasks``. Per-record failures come back as results (never raised); only a whole-call failure
raises. Record payloads are built by ``closed_loop.domain.records``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from closed_loop.domain.records import without_fields_kept_on_replay

USER_QUERY = (
    "SELECT Id, Username, Name, FirstName, Email, Title, IsActive FROM User WHERE Username IN {values}"
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


@dataclass(frozen=True)
class UserDirectory:
    """Salesforce Users by username, matched case-insensitively as Salesforce does."""

    by_username: Mapping[str, dict] = field(default_factory=dict)  # casefolded username -> User record

    def record(self, username: str | None) -> dict | None:
        """The User (active or not), or None when Salesforce has no such username."""
        return self.by_username.get(username.casefold()) if username else None

    def active(self, username: str | None) -> dict | None:
        """The User if it exists and is active, else None."""
        user = self.record(username)
        return user if user and user.get("IsActive") else None

    def id(self, username: str | None) -> str | None:
        """The active User's Id, else None."""
        user = self.active(username)
        return user["Id"] if user else None


def lookup_users(sf_hook, usernames: Iterable[str | None]) -> UserDirectory:
    """The Users named by ``usernames`` (Id, Username, Name, FirstName, Email, Title, IsActive) with one
    escaped SOQL query (``Username IN (...)``; more only past ~300 names); unknown names are absent."""
    wanted = sorted({u for u in usernames if u})
    if not wanted:
        return UserDirectory()
    rows = sf_hook.query_in_chunks(USER_QUERY, wanted)
    return UserDirectory({row["Username"].casefold(): row for row in rows})


def resolve_users(sf_hook, usernames: Iterable[str | None]) -> dict[str, dict]:
    """``{username: User record}`` for the active users among ``usernames`` (see ``lookup_users``),
    keyed by the username as given."""
    names = {u for u in usernames if u}
    users = lookup_users(sf_hook, names)
    return {u: users.active(u) for u in sorted(names) if users.active(u)}


def resolve_user_ids(sf_hook, usernames: Iterable[str | None]) -> dict[str, str]:
    """``{username: User Id}`` for the active users among ``usernames`` (see ``lookup_users``)."""
    return {u: rec["Id"] for u, rec in resolve_users(sf_hook, usernames).items()}


def create_records_once(
    sf_hook, sobject: str, external_id: str, rows: Sequence[Mapping], playbook
) -> list[WriteResult]:
    """Create ``rows`` (each carrying ``external_id``); a row whose external id Salesforce already has
    (``DUPLICATE_VALUE``: a replay after a crash or a restored ledger) updates that record instead,
    without the playbook's ``salesforce.kept_on_replay`` fields. One WriteResult per row, in order;
    ``created`` tells which rows are new. The same calls as an upsert, one more per 1,000 replayed rows."""
    rows = list(rows)
    if not rows:
        return []
    created = sf_hook.create_records(sobject, rows, unique_key=external_id)  # safe to retry: keyed
    results = _results(rows, created, external_id)
    replayed = [i for i, r in enumerate(results) if _already_exists(r, external_id)]
    if replayed:
        again = [without_fields_kept_on_replay(playbook, rows[i]) for i in replayed]
        for i, res in zip(replayed, upsert_by_external_id(sf_hook, sobject, external_id, again), strict=True):
            results[i] = res
    return results


def _already_exists(result: WriteResult, external_id: str) -> bool:
    return result.code == "DUPLICATE_VALUE" and external_id in (result.error or "")


def upsert_by_external_id(
    sf_hook, sobject: str, external_id: str, rows: Sequence[Mapping]
) -> list[WriteResult]:
    """Upsert ``rows`` (field dicts that each carry ``external_id``) through sObject Collections,
    200 per collection and 5 collections per Composite call; one WriteResult per row, in order."""
    rows = list(rows)
    if not rows:
        return []
    return _results(rows, sf_hook.upsert_records(sobject, external_id, rows), external_id)


def _results(rows: Sequence[Mapping], results: Sequence[Mapping], external_id: str) -> list[WriteResult]:
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
