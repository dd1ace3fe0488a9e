"""Ledger tables as pandas DataFrames for the quarterly report."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Date, Numeric, and_, func, or_, select

from .core import LedgerCore
from .models import TABLES, Answer, Case, CaseStep, Email, Quarantine, Response, SlaEvent, SurveySend
from .types import UTC, IsoDate, UTCDateTime


def _bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.combine(start, dt.time(), UTC), dt.datetime.combine(end, dt.time(), UTC)


class FramesMixin(LedgerCore):
    def read_frame(self, table, where=None) -> pd.DataFrame:
        """All columns of ``table`` (name or model), optionally filtered by a SQLAlchemy condition.
        Timestamps are tz-aware UTC ``datetime64``, dates naive ``datetime64``, money ``float``."""
        model = TABLES[table] if isinstance(table, str) else table
        cols = list(model.__table__.columns)
        stmt = select(*cols)
        if where is not None:
            stmt = stmt.where(where)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        frame = pd.DataFrame.from_records(rows, columns=[c.key for c in cols])
        for col in cols:
            if isinstance(col.type, UTCDateTime):
                frame[col.key] = pd.to_datetime(frame[col.key], utc=True)
            elif isinstance(col.type, IsoDate | Date):
                frame[col.key] = pd.to_datetime(frame[col.key])
            elif isinstance(col.type, Numeric):
                frame[col.key] = pd.to_numeric(frame[col.key], errors="coerce").astype("float64")
        return frame

    def frames(self, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, pd.DataFrame]:
        """Every table as a DataFrame; with ``start``/``end`` (end exclusive) the activity tables hold the
        rows of that period: sends sent (or, unsent, due) in it, responses created in it with their answers
        and triggers, cases active in it (opened before end, not closed before start) with their steps,
        SLA events, emails and quarantine created in it. accounts, contacts, watermarks, api_usage: all."""
        if start is None or end is None:
            return {name: self.read_frame(model) for name, model in TABLES.items()}
        lo, hi = _bounds(start, end)
        opened = func.coalesce(Case.opened_at, Case.created_at)
        case_in = and_(opened < hi, or_(Case.closed_at.is_(None), Case.closed_at >= lo))
        conditions = {
            "survey_sends": or_(
                and_(SurveySend.sent_at >= lo, SurveySend.sent_at < hi),
                and_(SurveySend.sent_at.is_(None), SurveySend.due_date >= start, SurveySend.due_date < end),
            ),
            "responses": and_(Response.date_created >= lo, Response.date_created < hi),
            "cases": case_in,
            "sla_events": and_(SlaEvent.occurred_on >= start, SlaEvent.occurred_on < end),
            "emails": and_(Email.created_at >= lo, Email.created_at < hi),
            "quarantine": and_(Quarantine.created_at >= lo, Quarantine.created_at < hi),
        }
        response_ids = select(Response.response_id).where(conditions["responses"])
        conditions["answers"] = Answer.response_id.in_(response_ids)
        conditions["triggers"] = TABLES["triggers"].response_id.in_(response_ids)
        conditions["case_steps"] = CaseStep.case_key.in_(select(Case.case_key).where(case_in))
        return {name: self.read_frame(model, conditions.get(name)) for name, model in TABLES.items()}
