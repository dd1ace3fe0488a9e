"""Read step of intake: the responses to score, the survey details (drift checked) and the ledger rows
they join (sends, accounts, contacts, existing cases, the case a recovery pulse follows up)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from closed_loop.hooks.errors import SurveyMonkeyNotFound
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
    if ledger.recovery_pulse_unanswered_since(window_start):
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
    got.accounts = ledger.get_accounts({s["account_id"] for s in known if s.get("account_id")})
    got.contacts = ledger.contacts_by_id(s.get("contact_id") for s in known)
    got.existing_cases = ledger.existing_case_keys([str(r["id"]) for r in got.main_raw])
    got.from_partial = _partial_cases(ledger, got.existing_cases)
    got.recovery_cases = {
        str(r["id"]): _case_for_recovery(ledger, got.sends[str(r["id"])]) for r in got.pulse_raw
    }


def _unplanned_negatives(ledger, skip: set[str]) -> list[dict]:
    """Raw JSON of main-survey negatives recorded without a case (a crash before planning)."""
    return ledger.raw_responses(rid for rid in ledger.negatives_without_case() if rid not in skip)


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
    return ledger.latest_case_of_contact(send["contact_id"])


def _partial_cases(ledger, keys: Iterable[str]) -> dict[str, dict]:
    """Plans of the given cases that were opened from an abandoned partial response."""
    plans = ledger.case_plans(keys)
    return {k: p for k, p in plans.items() if isinstance(p, dict) and p.get("from_partial")}


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
