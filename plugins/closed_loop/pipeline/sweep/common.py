"""Shared by the sweep's steps: dates in the business time zone, email keys, titles, links, and the
ledger reads every step needs (SLA events, cases by key)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from closed_loop.domain.plan import (
    TSM_TITLE,
)
from closed_loop.domain.records import task_record
from closed_loop.ledger.types import to_utc
from closed_loop.playbook import Playbook


def local_date(value, playbook: Playbook) -> dt.date | None:
    """The calendar date of a timestamp in the playbook's business time zone."""
    ts = to_utc(value)
    return ts.astimezone(ZoneInfo(playbook.calendar.timezone)).date() if ts else None


def email_key(kind: str, *parts: object) -> str:
    return ":".join([kind, *(str(p) for p in parts)])


def _title(role: str | None, playbook: Playbook) -> str:
    if role in playbook.people.roles:
        return playbook.people.roles[role].title
    return TSM_TITLE


def _case_url(sf, sf_case_id: str | None) -> str:
    instance = getattr(sf.get_conn(), "sf_instance", "") if sf is not None else ""
    return f"https://{instance}/lightning/r/Case/{sf_case_id}/view" if instance else str(sf_case_id)


def _is_documented(record: Mapping, playbook: Playbook) -> bool:
    return all(str(record.get(f) or "").strip() for f in playbook.sla.documentation_fields)


def _with_calls(hook) -> int:
    return getattr(hook, "calls_made", 0)


def _step_title(step: str, playbook: Playbook) -> str:
    return playbook.step(step).title if step in _step_keys(playbook) else step


def _step_keys(playbook: Playbook) -> set[str]:
    return {s.key for s in playbook.steps}


def stored_task_record(playbook: Playbook, task: Mapping, owner_id, what_id, who_id) -> dict:
    """The Task to write for one recorded in an SLA event's details (its fields, plus ``_owner``), with
    its owner, Case and contact ids (``task_record``: the one place Task records are built)."""
    return task_record(
        playbook,
        key=task[playbook.salesforce.task.external_id],
        subject=task["Subject"],
        description=task.get("Description") or "",
        due=dt.date.fromisoformat(task["ActivityDate"]),
        priority=task["Priority"],
        status=task.get("Status"),
        owner_id=owner_id,
        what_id=what_id,
        who_id=who_id,
    )
