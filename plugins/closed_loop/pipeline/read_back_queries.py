"""What the sweep reads back from Salesforce, incrementally (no Airflow import).

One batch of ``queryAll`` statements through the Composite resource (5 query operations per API call):

- Cases and Tasks changed since the last sweep (``SystemModstamp`` after the watermark, minus an overlap for
  transactions that commit late), filtered on the project's external ids; ``queryAll`` also returns the
  records deleted since (``IsDeleted = true``: the documented deletion detection for records in the
  Recycle Bin, REST API Developer Guide, "QueryAll");
- tracked records never read back yet, by ``Id IN`` (2,000 per statement): records created after the last
  sweep's read are caught even when a clock or a crash left them behind the watermark.

A full read by ``Id`` replaces the change queries when there is no watermark yet or the last sweep was longer
ago than the Recycle Bin keeps deleted records (15 days), since a purged record is returned by neither query.
A tracked record returned by neither query is unchanged; one asked for by ``Id`` but absent was purged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from simple_salesforce import format_soql

from closed_loop.ledger.types import to_utc

CASE_WATERMARK = "sla_sweep.read_back.case_modstamp"
TASK_WATERMARK = "sla_sweep.read_back.task_modstamp"
SWEPT_ON = "sla_sweep.read_back.swept_on"
RECYCLE_BIN_DAYS = 15
OVERLAP = dt.timedelta(minutes=10)
AUDIT = ("IsDeleted", "SystemModstamp")


@dataclass
class ReadBack:
    """Tracked records read (by Id), the tracked ids deleted or purged, and the new watermarks."""

    cases: dict[str, dict] = field(default_factory=dict)
    tasks: dict[str, dict] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    full: bool = False
    statements: int = 0
    marks: dict[str, str] = field(default_factory=dict)


def _select(fields: Sequence[str], sobject: str) -> str:
    return f"SELECT {', '.join(dict.fromkeys([*fields, *AUDIT]))} FROM {sobject}"


def _newest(records: Iterable[Mapping], previous: dt.datetime | None) -> dt.datetime | None:
    stamps = [ts for r in records if (ts := to_utc(r.get("SystemModstamp")))]
    return max([*stamps, previous] if previous else stamps, default=None)


def read_tracked(
    sf,
    ledger,
    *,
    case_fields: Sequence[str],
    task_fields: Sequence[str],
    case_external_id: str,
    task_external_id: str,
    cases: Sequence[Mapping],
    steps: Sequence[Mapping],
    today: dt.date,
) -> ReadBack:
    """Read the tracked ``cases`` (``sf_case_id``, ``sf_status``) and ``steps`` (``sf_task_id``,
    ``sf_status``) that changed or were never read, in as few Composite calls as the API allows."""
    since, full = _watermarks(ledger, today)
    tracked = {"Case": [c["sf_case_id"] for c in cases], "Task": [s["sf_task_id"] for s in steps]}
    unread = {"Case": _unread(cases, "sf_case_id", full), "Task": _unread(steps, "sf_task_id", full)}
    select_ = {"Case": _select(case_fields, "Case"), "Task": _select(task_fields, "Task")}
    external_ids = {"Case": case_external_id, "Task": task_external_id}
    statements = [] if full else _changed_statements(select_, external_ids, since)
    for sobject, ids in unread.items():
        sel = select_[sobject]
        statements += [(sobject, s) for s in sf.id_statements(f"{sel} WHERE Id IN {{values}}", ids)]
    rows = sf.query_many([s for _, s in statements], include_deleted=True) if statements else []
    out = ReadBack(full=full, statements=len(statements))
    seen = _collect(out, statements, rows, tracked)
    returned = {r["Id"] for recs in seen.values() for r in recs}
    out.gone |= {i for ids in unread.values() for i in ids} - returned  # asked by Id, not even deleted
    for name, sobject in ((CASE_WATERMARK, "Case"), (TASK_WATERMARK, "Task")):
        newest = _newest(seen[sobject], None if full else since[sobject])
        if newest is not None:
            out.marks[name] = newest.isoformat()
    out.marks[SWEPT_ON] = today.isoformat()
    return out


def _unread(records: Sequence[Mapping], id_field: str, full: bool) -> list[str]:
    """The ids to read by ``Id IN``: every tracked record on a full read, else those never read back."""
    return [r[id_field] for r in records if full or r.get("sf_status") is None]


def _watermarks(ledger, today: dt.date) -> tuple[dict, bool]:
    """The read-back watermarks by sobject, and whether this read must be full (no watermark yet, or the
    last sweep longer ago than the Recycle Bin keeps deleted records)."""
    since = {"Case": to_utc(ledger.get_watermark(CASE_WATERMARK)),
             "Task": to_utc(ledger.get_watermark(TASK_WATERMARK))}  # fmt: skip
    swept_on = ledger.get_watermark(SWEPT_ON)
    stale = swept_on is None or (today - dt.date.fromisoformat(swept_on)).days >= RECYCLE_BIN_DAYS
    return since, stale or None in since.values()


def _changed_statements(select_: Mapping, external_ids: Mapping, since: Mapping) -> list[tuple[str, str]]:
    """(sobject, SOQL) of the pipeline's Cases and Tasks changed since the watermarks (minus the overlap)."""
    where = "WHERE {ext} != null AND SystemModstamp > {{since}}"
    return [
        (s, format_soql(f"{select_[s]} {where.format(ext=external_ids[s])}", since=since[s] - OVERLAP))
        for s in ("Case", "Task")
    ]


def _collect(out: ReadBack, statements, rows, tracked: Mapping) -> dict[str, list[dict]]:
    """File the tracked records read into ``out`` (deleted ones into ``out.gone``); returns every record
    returned, by sobject (for the watermarks and the purge check)."""
    seen: dict[str, list[dict]] = {"Case": [], "Task": []}
    ids = {k: set(v) for k, v in tracked.items()}
    for (sobject, _), records in zip(statements, rows, strict=True):
        seen[sobject].extend(records)
        target = out.cases if sobject == "Case" else out.tasks
        for rec in records:
            if rec["Id"] not in ids[sobject]:
                continue  # another pipeline record (closed case, escalation task): not ours to update
            if rec.get("IsDeleted"):
                out.gone.add(rec["Id"])
            else:
                target[rec["Id"]] = rec
    return seen


def save_marks(ledger, read: ReadBack) -> None:
    """Advance the read-back watermarks (after the ledger recorded what was read)."""
    for name, value in read.marks.items():
        ledger.set_watermark(name, value)
