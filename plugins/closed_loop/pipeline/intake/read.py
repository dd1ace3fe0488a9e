"""Read step of intake: the responses to score, the survey details (drift checked) and the ledger rows
they join (sends, accounts, contacts, existing cases, the case a recovery pulse follows up)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import exists, select

from closed_loop.hooks.errors import SurveyMonkeyNotFound
from closed_loop.ledger.models import (
    Account,
    Case,
    Contact,
    Response,
    SurveySend,
)
from closed_loop.pipeline.intake.common import RECOVERY_PREFIX, Problem
from closed_loop.pipeline.intake.fetch import fetch_abandoned, fetch_changed, with_ids
from closed_loop.pipeline.surveys import resolve_survey_id

log = logging.getLogger(__name__)


@dataclass
class IntakeInputs:
    """What one intake run reads: new/changed responses (+ survey details) and the ledger rows they join."""

    main_id: str
    main_raw: list[dict]
    main_mark: str | None
    pulse_id: str | None = None
    pulse_raw: list[dict] = field(default_factory=list)
    pulse_mark: str | None = None
    fetched: int = 0
    recovery_fetched: int = 0
    malformed: list[Problem] = field(default_factory=list)
    replanned: int = 0
    main_details: dict | None = None
    pulse_details: dict | None = None
    sends: dict[str, dict | None] = field(default_factory=dict)  # response id -> its survey send
    accounts: dict[str, dict] = field(default_factory=dict)
    contacts: dict[str, dict] = field(default_factory=dict)
    existing_cases: set[str] = field(default_factory=set)
    recovery_cases: dict[str, str | None] = field(default_factory=dict)  # pulse response id -> case
    abandoned: set[str] = field(default_factory=set)  # partials past the grace period (ids)
    partial_mark: str | None = None
    from_partial: dict[str, dict] = field(default_factory=dict)  # cases opened from a partial


def read_intake(
    sm_hook, ledger, playbook, today: date, dry_run: bool = False, now: datetime | None = None
) -> IntakeInputs:
    """The responses changed since the watermarks (the pulse survey only while a pulse sent within
    ``recovery.answer_window_days`` is unanswered), negatives a crashed run left without a case, the
    survey details, and the ledger rows they join."""
    overlap = playbook.intake.watermark_overlap_minutes
    main_id = resolve_survey_id(sm_hook, ledger, playbook.surveys.main, dry_run)
    if main_id is None:
        raise LookupError(f"no SurveyMonkey survey titled {playbook.surveys.main.title!r}")
    problems: list[Problem] = []
    try:
        main_raw, main_mark = fetch_changed(sm_hook, ledger, main_id, overlap, problems)
    except SurveyMonkeyNotFound:  # the cached id went stale (survey replaced): look it up again once
        main_id = resolve_survey_id(sm_hook, ledger, playbook.surveys.main, dry_run, refresh=True)
        main_raw, main_mark = fetch_changed(sm_hook, ledger, main_id, overlap, problems)
    got = IntakeInputs(main_id, main_raw, main_mark)
    if now is not None:
        abandoned_raw, got.partial_mark = fetch_abandoned(
            sm_hook, ledger, main_id, now, playbook.intake.partial_grace_hours
        )
        got.abandoned = {str(r.get("id")) for r in abandoned_raw}
        got.main_raw = [
            r for r in main_raw if not isinstance(r, dict) or str(r.get("id")) not in got.abandoned
        ]
        got.main_raw += abandoned_raw
    window_start = datetime.combine(today - timedelta(days=playbook.recovery.answer_window_days), time(), UTC)
    if _recovery_outstanding(ledger, window_start):
        got.pulse_id = resolve_survey_id(sm_hook, ledger, playbook.surveys.recovery_pulse, dry_run)
        if got.pulse_id:
            got.pulse_raw, got.pulse_mark = fetch_changed(sm_hook, ledger, got.pulse_id, overlap, problems)
    got.fetched, got.recovery_fetched = len(got.main_raw) + len(got.pulse_raw), len(got.pulse_raw)
    got.main_raw, bad = with_ids(got.main_raw, main_id)
    got.pulse_raw, bad_pulse = with_ids(got.pulse_raw, got.pulse_id or "")
    got.malformed = problems + bad + bad_pulse
    orphans = _unplanned_negatives(ledger, {str(r["id"]) for r in got.main_raw})
    got.replanned = len(orphans)
    got.main_raw += orphans
    _join_ledger(ledger, got)
    if got.main_raw:
        got.main_details = sm_hook.survey_details(main_id)
        got.malformed += _drift_problems(got.main_details, main_id, playbook, main=True)
    if got.pulse_raw:
        got.pulse_details = sm_hook.survey_details(got.pulse_id)
        got.malformed += _drift_problems(got.pulse_details, got.pulse_id, playbook, main=False)
    return got


def _join_ledger(ledger, got: IntakeInputs) -> None:
    """The sends (by recipient id), accounts, contacts, existing cases and pulse cases of the responses."""
    everything = got.main_raw + got.pulse_raw
    recipients = [str(r["recipient_id"]) for r in everything if r.get("recipient_id")]
    sends = ledger.send_by_recipient(recipients) if recipients else {}
    got.sends = {str(r["id"]): sends.get(str(r.get("recipient_id"))) for r in everything}
    known = [s for s in got.sends.values() if s]
    got.accounts = _rows_by_id(ledger, Account, {s["account_id"] for s in known if s.get("account_id")})
    got.contacts = _rows_by_id(ledger, Contact, (s.get("contact_id") for s in known))
    got.existing_cases = _existing_cases(ledger, [str(r["id"]) for r in got.main_raw])
    got.from_partial = _partial_cases(ledger, got.existing_cases)
    got.recovery_cases = {
        str(r["id"]): _case_for_recovery(ledger, got.sends[str(r["id"])]) for r in got.pulse_raw
    }


def _recovery_outstanding(ledger, since: datetime) -> bool:
    """Whether a recovery pulse sent since ``since`` (the answer window) is still unanswered; else the
    pulse survey is not polled (bounded: one unanswered pulse never makes the poll permanent)."""
    answered = exists().where(Response.send_key == SurveySend.send_key)
    stmt = select(SurveySend.send_key).where(
        SurveySend.kind == "recovery", SurveySend.status == "sent", SurveySend.sent_at >= since, ~answered
    )
    with ledger.session() as s:
        return s.execute(stmt.limit(1)).first() is not None


def _unplanned_negatives(ledger, skip: set[str]) -> list[dict]:
    """Raw JSON of main-survey negatives recorded without a case (a crash before planning)."""
    has_case = exists().where(Case.case_key == Response.response_id)
    stmt = select(Response.response_id, Response.raw).where(
        Response.negative.is_(True), Response.is_recovery.is_(False), Response.account_id.is_not(None),
        ~has_case,
    )  # fmt: skip
    with ledger.session() as s:
        return [raw for rid, raw in s.execute(stmt) if rid not in skip and isinstance(raw, dict)]


def _rows_by_id(ledger, model, ids: Iterable[str | None]) -> dict[str, dict]:
    ids = sorted({i for i in ids if i})
    if not ids:
        return {}
    with ledger.session() as s:
        rows = s.scalars(select(model).where(model.sf_id.in_(ids)))
        return {r.sf_id: {c.key: getattr(r, c.key) for c in model.__table__.columns} for r in rows}


def _existing_cases(ledger, keys: Iterable[str]) -> set[str]:
    keys = list(keys)
    if not keys:
        return set()
    with ledger.session() as s:
        return set(s.scalars(select(Case.case_key).where(Case.case_key.in_(keys))))


def _case_for_recovery(ledger, send: Mapping | None) -> str | None:
    """The case a pulse follows up: from the recovery send's key, else the contact's latest case."""
    if not send:
        return None
    if send.get("case_key"):
        return send["case_key"]
    key = send.get("send_key") or ""
    if key.startswith(RECOVERY_PREFIX):
        return key[len(RECOVERY_PREFIX) :]
    if not send.get("contact_id"):
        return None
    stmt = select(Case.case_key).where(Case.contact_id == send["contact_id"]).order_by(Case.created_at.desc())
    with ledger.session() as s:
        return s.scalars(stmt.limit(1)).first()


def _partial_cases(ledger, keys: Iterable[str]) -> dict[str, dict]:
    """Plans of the given cases that were opened from an abandoned partial response."""
    keys = list(keys)
    if not keys:
        return {}
    with ledger.session() as s:
        rows = s.execute(select(Case.case_key, Case.plan).where(Case.case_key.in_(keys))).all()
    return {k: p for k, p in rows if isinstance(p, dict) and p.get("from_partial")}


def _drift_problems(details: Mapping, survey_id: str, playbook, main: bool) -> list[Problem]:
    """One problem per playbook text the survey just read does not have (a reworded question or a typo
    in the playbook silently turns a trigger off); keyed by survey, key path and text, so it is
    alerted once per drift, not once per run."""
    from closed_loop.domain.drift import main_survey_drift, pulse_survey_drift
    from closed_loop.domain.survey import SurveyDetailsError, parse_survey_details

    try:
        index = parse_survey_details(details)
    except SurveyDetailsError:
        return []  # scoring reports a malformed details document itself
    found = (main_survey_drift if main else pulse_survey_drift)(index, playbook)
    if found:
        log.warning("intake: %d playbook/survey mismatch(es) on survey %s", len(found), survey_id)
    problems = []
    for m in found:
        digest = hashlib.sha256(f"{m.key}\n{m.text}\n{m.problem}".encode()).hexdigest()[:16]
        problems.append(Problem(
            f"intake:drift:{survey_id}:{digest}", survey_id,
            f"playbook/survey drift: {m} - the rule cannot fire until the playbook or the survey is fixed",
            {"survey_id": survey_id, "key": m.key, "text": m.text, "problem": m.problem},
        ))  # fmt: skip
    return problems
