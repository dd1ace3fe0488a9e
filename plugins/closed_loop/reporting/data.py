"""The ledger as pandas frames: one frame per table, with a fixed, typed set of columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import pandas as pd

TS = "datetime64[ns, UTC]"  # UTC timestamps
DAY = "datetime64[ns]"  # calendar dates (midnight, naive)
STR = "object"
BOOL = "boolean"
INT = "Int64"
FLOAT = "float64"

SCHEMA: dict[str, dict[str, str]] = {
    "accounts": {"sf_id": STR, "name": STR, "mrr": FLOAT},
    "survey_sends": {
        "send_key": STR,
        "kind": STR,
        "account_id": STR,
        "contact_id": STR,
        "go_live_date": DAY,
        "due_date": DAY,
        "status": STR,
        "sent_at": TS,
        "reminder_sent_at": TS,
    },
    "responses": {
        "response_id": STR,
        "recipient_id": STR,
        "send_key": STR,
        "account_id": STR,
        "contact_id": STR,
        "response_status": STR,
        "date_created": TS,
        "date_modified": TS,
        "negative": BOOL,
        "severity": STR,
        "topics": STR,
        "is_recovery": BOOL,
        "case_key": STR,
        "nps": INT,
    },
    "answers": {
        "response_id": STR,
        "question_id": STR,
        "heading": STR,
        "row_id": STR,
        "row_text": STR,
        "choice_id": STR,
        "choice_text": STR,
        "other_text": STR,
        "text": STR,
        "topic": STR,
    },
    "triggers": {
        "response_id": STR,
        "kind": STR,
        "question_id": STR,
        "heading": STR,
        "row": STR,
        "answer": STR,
        "rule": STR,
        "severity": STR,
    },
    "cases": {
        "case_key": STR,
        "sf_case_id": STR,
        "account_id": STR,
        "lp_role": STR,
        "lp_username": STR,
        "tier": STR,
        "severity": STR,
        "topics": STR,
        "status": STR,
        "opened_at": TS,
        "received_on": DAY,  # the SOP clock's start: the day the response was received (cases.plan)
        "dissatisfied": BOOL,
        "closed_at": TS,
        "root_cause": STR,
        "actions_taken": STR,
        "outcome": STR,
    },
    "case_steps": {
        "step_key": STR,
        "case_key": STR,
        "step": STR,
        "owner_username": STR,
        "due_date": DAY,
        "status": STR,
        "created_at": TS,
        "completed_at": TS,
    },
    "sla_events": {
        "event_key": STR,
        "case_key": STR,
        "step_key": STR,
        "kind": STR,
        "occurred_on": DAY,
        "reason": STR,  # details.reason (an escalation's "overdue" / "dissatisfied")
    },
}


def _typed(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == TS:
        return pd.to_datetime(series, utc=True).astype(TS)
    if dtype == DAY:
        days = pd.to_datetime(series)
        if isinstance(days.dtype, pd.DatetimeTZDtype):
            days = days.dt.tz_convert("UTC").dt.tz_localize(None)
        return days.dt.normalize().astype(DAY)
    if dtype == BOOL:
        return series.astype("object").where(series.notna(), False).astype(bool).astype(BOOL)
    if dtype == INT:
        return pd.to_numeric(series, errors="coerce").astype(INT)
    if dtype == FLOAT:
        return pd.to_numeric(series, errors="coerce").astype(FLOAT)
    return series.astype(STR).where(series.notna(), None)


def _missing(n: int, dtype: str) -> pd.Series:
    if dtype == BOOL:
        return pd.Series([False] * n, dtype=BOOL)
    if dtype == STR:
        return pd.Series([None] * n, dtype=STR)
    if dtype == FLOAT:
        return pd.Series([float("nan")] * n, dtype=FLOAT)
    return pd.Series([pd.NA] * n, dtype=dtype) if dtype == INT else pd.Series([pd.NaT] * n, dtype=dtype)


def conform(frame: pd.DataFrame | None, table: str) -> pd.DataFrame:
    """``frame`` with exactly the table's columns, typed; missing frame or columns become empty/NA."""
    columns = SCHEMA[table]
    frame = pd.DataFrame() if frame is None else frame.reset_index(drop=True)
    out = {}
    for name, dtype in columns.items():
        if name in frame.columns:
            out[name] = _typed(frame[name], dtype)
        else:
            out[name] = _missing(len(frame), dtype)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


@dataclass
class ReportData:
    """The ledger tables the quarterly report reads; any table may be omitted (an empty ledger works)."""

    survey_sends: pd.DataFrame = field(default=None)  # type: ignore[assignment]
    accounts: pd.DataFrame = field(default=None)  # type: ignore[assignment]
    responses: pd.DataFrame = field(default=None)  # type: ignore[assignment]
    answers: pd.DataFrame = field(default=None)  # type: ignore[assignment]
    triggers: pd.DataFrame = field(default=None)  # type: ignore[assignment]
    cases: pd.DataFrame = field(default=None)  # type: ignore[assignment]
    case_steps: pd.DataFrame = field(default=None)  # type: ignore[assignment]
    sla_events: pd.DataFrame = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for f in fields(self):
            setattr(self, f.name, conform(getattr(self, f.name), f.name))

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame | None]) -> ReportData:
        """Build from ``{table name: frame}``; unknown table names are an error (typo guard)."""
        unknown = set(frames) - set(SCHEMA)
        if unknown:
            raise KeyError(f"unknown ledger tables: {sorted(unknown)}")
        return cls(**frames)


def _json_key(values: pd.Series, key: str) -> pd.Series:
    return values.map(lambda d: d.get(key) if isinstance(d, Mapping) else None)


def from_ledger_frames(frames: Mapping[str, pd.DataFrame]) -> ReportData:
    """ReportData from ``Ledger.frames()``: the case's received day from its stored plan, an event's reason
    from its details."""
    cases = frames.get("cases")
    if cases is not None and "plan" in cases:
        cases = cases.assign(received_on=_json_key(cases["plan"], "received_on"))
    events = frames.get("sla_events")
    if events is not None and "details" in events:
        events = events.assign(reason=_json_key(events["details"], "reason"))
    picked = {name: frames.get(name) for name in SCHEMA}
    return ReportData.from_frames({**picked, "cases": cases, "sla_events": events})
