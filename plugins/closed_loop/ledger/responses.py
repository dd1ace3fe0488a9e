"""Survey responses, their flattened answers, scores and triggers, recorded with their watermark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from sqlalchemy import delete, exists, select

from .core import LedgerCore, as_dict
from .models import Answer, Case, Response, SurveyDetails, SurveySend, Trigger
from .types import utcnow
from .upsert import update_rows, upsert

SCORE_COLUMNS = ("negative", "severity", "topics")
ID_CHARS = Response.__table__.c.response_id.type.length  # every SurveyMonkey id column is varchar(64)
STATUS_CHARS = Response.__table__.c.response_status.type.length


class ResponsesMixin(LedgerCore):
    def record_responses(
        self,
        responses: Iterable[Mapping],
        scores: Mapping[str, Mapping] | None = None,
        answers: Mapping[str, Iterable[Mapping]] | None = None,
        triggers: Mapping[str, Iterable[Mapping]] | None = None,
        watermark_name: str | None = None,
        watermark_value: str | None = None,
    ) -> int:
        """Record a batch in ONE transaction: responses upserted by ``response_id``; ``scores``
        ``{response_id: {negative, severity, topics}}`` (stamps scored_at); ``answers`` and ``triggers``
        ``{response_id: [rows]}`` replace that response's rows wholesale; then the watermark advances.
        If anything fails, nothing (data or watermark) is kept. Returns the number of responses.
        """
        now = utcnow()
        scored = {
            rid: {k: sc.get(k) for k in SCORE_COLUMNS} | {"scored_at": now}
            for rid, sc in (scores or {}).items()
        }
        responses = [{**r, **scored.get(r.get("response_id"), {})} for r in responses]  # scores folded in
        recorded = {r.get("response_id") for r in responses}
        with self.session() as s:
            upsert(s, Response, responses, ["response_id"])
            rescored = [{"response_id": rid, **v} for rid, v in scored.items() if rid not in recorded]
            update_rows(s, Response.__table__, "response_id", rescored)
            self._replace_children(s, Answer, answers)
            self._replace_children(s, Trigger, triggers)
            if watermark_name is not None:
                if watermark_value is None:
                    raise ValueError("watermark_value is required with watermark_name")
                self._set_watermark(s, watermark_name, watermark_value)
        return len(responses)

    @staticmethod
    def _replace_children(s, model, by_response: Mapping[str, Iterable[Mapping]] | None) -> None:
        """Replace the rows of each response with the given ones (one dict per row, all of one shape)."""
        if not by_response:
            return
        columns = [c.key for c in model.__table__.columns if c.key not in ("id", "response_id")]
        allowed = {*columns, "id", "response_id"}
        rows = []
        for rid, group in by_response.items():
            for row in group:
                if unknown := row.keys() - allowed:
                    raise ValueError(f"{model.__tablename__}: unknown columns {sorted(unknown)}")
                out = {c: row.get(c) for c in columns}
                out["response_id"] = rid
                rows.append(out)
        s.execute(delete(model).where(model.response_id.in_(list(by_response))))
        if rows:
            s.execute(model.__table__.insert(), rows)

    def get_response(self, response_id: str) -> dict | None:
        """The response with its ``answers`` and ``triggers`` lists."""
        with self.session() as s:
            obj = s.get(Response, response_id)
            if obj is None:
                return None
            out = as_dict(obj)
            for name, model in (("answers", Answer), ("triggers", Trigger)):
                stmt = select(model).where(model.response_id == response_id).order_by(model.id)
                out[name] = [as_dict(r) for r in s.scalars(stmt)]
            return out

    def responses_to_score(self) -> list[dict]:
        """Responses recorded but not yet scored."""
        with self.session() as s:
            stmt = select(Response).where(Response.scored_at.is_(None)).order_by(Response.response_id)
            return [as_dict(r) for r in s.scalars(stmt)]

    def response_versions(self, response_ids: Iterable[str]) -> dict[str, dt.datetime | None]:
        """``{response_id: date_modified}`` of the given responses the ledger already holds."""
        ids = list(response_ids)
        if not ids:
            return {}
        stmt = select(Response.response_id, Response.date_modified).where(Response.response_id.in_(ids))
        with self.session() as s:
            return dict(s.execute(stmt).all())

    def recovery_pulse_unanswered_since(self, since: dt.datetime) -> bool:
        """Whether a recovery pulse sent since ``since`` has no response yet."""
        answered = exists().where(Response.send_key == SurveySend.send_key)
        stmt = select(SurveySend.send_key).where(
            SurveySend.kind == "recovery", SurveySend.status == "sent", SurveySend.sent_at >= since, ~answered
        )
        with self.session() as s:
            return s.execute(stmt.limit(1)).first() is not None

    def negatives_without_case(self) -> list[str]:
        """Ids of main-survey negatives of a known account recorded without a case (a crash before
        planning), oldest id first."""
        has_case = exists().where(Case.case_key == Response.response_id)
        stmt = select(Response.response_id).where(
            Response.negative.is_(True), Response.is_recovery.is_(False), Response.account_id.is_not(None),
            ~has_case,
        )  # fmt: skip
        with self.session() as s:
            return list(s.scalars(stmt.order_by(Response.response_id)))

    def raw_responses(self, response_ids: Iterable[str]) -> list[dict]:
        """The raw JSON kept for the given responses (those that are JSON objects)."""
        ids = list(response_ids)
        if not ids:
            return []
        stmt = select(Response.raw).where(Response.response_id.in_(ids)).order_by(Response.response_id)
        with self.session() as s:
            return [raw for raw in s.scalars(stmt) if isinstance(raw, dict)]

    def survey_details_kept(self, survey_id: str) -> tuple[str | None, dict] | None:
        """``(date_modified, details)`` of the survey's /details document as last read, if kept."""
        with self.session() as s:
            row = s.get(SurveyDetails, survey_id)
            return (row.date_modified, row.details) if row else None

    def keep_survey_details(self, survey_id: str, date_modified: str | None, details: dict) -> None:
        """Keep the survey's /details document with the survey's ``date_modified`` (replaces the last)."""
        row = {
            "survey_id": survey_id,
            "date_modified": date_modified,
            "details": details,
            "fetched_at": utcnow(),
        }
        with self.session() as s:
            upsert(s, SurveyDetails, [row], ["survey_id"])
