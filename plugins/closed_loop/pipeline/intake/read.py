"""Read step of intake: the responses to score, the survey details (drift checked) and the ledger rows
they join (sends, accounts, contacts, existing cases, the case a recovery pulse follows up)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from closed_loop.hooks.errors import SurveyMonkeyNotFound
from closed_loop.pipeline.intake import fetch
from closed_loop.pipeline.intake.common import RECOVERY_PREFIX, Problem, as_text, parse_ts
from closed_loop.pipeline.intake.fetch import (
    abandoned_chunks,
    abandoned_window,
    changed_chunks,
    with_ids,
)
from closed_loop.pipeline.surveys import resolve_survey_id

log = logging.getLogger(__name__)


@dataclass
class IntakeInputs:
    """One chunk of an intake run: new/changed responses of one survey (+ its details), the watermark
    to record with them, and the ledger rows they join."""

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


@dataclass
class _Versions:
    """Every survey's ``date_modified``, listed at most once per run (when a kept copy is checked)."""

    found: dict[str, str | None] | None = None

    def of(self, sm_hook, survey_id: str) -> str | None:
        if self.found is None:
            self.found = sm_hook.survey_versions()
        return self.found.get(survey_id)


@dataclass
class _Survey:
    """One polled survey: its id and its details, read once per run (on its first response)."""

    ref: object
    main: bool
    versions: _Versions
    dry_run: bool = False
    id: str | None = None
    details: dict | None = None

    def details_for(self, sm_hook, ledger, playbook, problems: list[Problem]) -> dict:
        if self.details is None:
            self.details = current_details(sm_hook, ledger, self.id, self.versions, self.dry_run)
            problems += _drift_problems(self.details, self.id, playbook, main=self.main)
        return self.details


def current_details(sm_hook, ledger, survey_id: str, versions: _Versions, dry_run: bool = False) -> dict:
    """The survey's /details document: the ledger's copy while the surveys list shows the survey's
    ``date_modified`` unchanged (one list call per run covers every survey), else read again and kept.
    Editing a survey (a reworded question) moves its ``date_modified``, so drift checks see every change."""
    kept = ledger.survey_details_kept(survey_id)
    if kept and _same_time(kept[0], versions.of(sm_hook, survey_id)):
        return kept[1]
    details = sm_hook.survey_details(survey_id)
    if not dry_run and isinstance(details, dict):
        ledger.keep_survey_details(survey_id, as_text(details.get("date_modified")), details)
    return details


def _same_time(kept: str | None, listed: str | None) -> bool:
    return parse_ts(kept) is not None and parse_ts(kept) == parse_ts(listed)


def read_chunks(
    sm_hook, ledger, playbook, today: date, dry_run: bool = False, now: datetime | None = None
) -> Iterator[IntakeInputs]:
    """The responses changed since the watermarks, chunk by chunk (record each before the next): the
    main survey's, its abandoned partials (with ``now``), the pulse survey's while a pulse sent within
    ``recovery.answer_window_days`` is unanswered, then negatives a crashed run left without a case."""
    versions = _Versions()
    main = _Survey(playbook.surveys.main, main=True, versions=versions, dry_run=dry_run)
    main.id = resolve_survey_id(sm_hook, ledger, main.ref, dry_run)
    if main.id is None:
        raise LookupError(f"no SurveyMonkey survey titled {playbook.surveys.main.title!r}")
    seen: set[str] = set()  # main-survey response ids read this run (never replanned from the ledger)
    yield from _main_chunks(sm_hook, ledger, playbook, main, dry_run, seen)
    if now is not None:
        yield from _abandoned(sm_hook, ledger, playbook, main, now)
    window_start = datetime.combine(today - timedelta(days=playbook.recovery.answer_window_days), time(), UTC)
    if ledger.recovery_pulse_unanswered_since(window_start):
        pulse = _Survey(playbook.surveys.recovery_pulse, main=False, versions=versions, dry_run=dry_run)
        pulse.id = resolve_survey_id(sm_hook, ledger, pulse.ref, dry_run)
        if pulse.id:
            yield from _changed(sm_hook, ledger, playbook, pulse, set())
    yield from _orphans(sm_hook, ledger, playbook, main, seen)


def _main_chunks(sm_hook, ledger, playbook, main: _Survey, dry_run: bool, seen: set[str]):
    """The main survey's changed responses; a stale cached survey id (the survey was replaced) is looked
    up again once, before anything was read."""
    started = False
    try:
        for chunk in _changed(sm_hook, ledger, playbook, main, seen):
            started = True
            yield chunk
    except SurveyMonkeyNotFound:
        if started:
            raise
        main.id = resolve_survey_id(sm_hook, ledger, main.ref, dry_run, refresh=True)
        yield from _changed(sm_hook, ledger, playbook, main, seen)


def _changed(sm_hook, ledger, playbook, survey: _Survey, seen: set[str]) -> Iterator[IntakeInputs]:
    overlap = playbook.intake.watermark_overlap_minutes
    for raws, mark, problems in changed_chunks(sm_hook, ledger, survey.id, overlap):
        good, bad = with_ids(raws, survey.id)
        seen.update(str(r["id"]) for r in good)
        yield _chunk(sm_hook, ledger, playbook, survey, good, mark, problems + bad, fetched=len(raws))


def _abandoned(sm_hook, ledger, playbook, main: _Survey, now: datetime) -> Iterator[IntakeInputs]:
    """Partial negatives left past ``intake.partial_grace_hours``; the last chunk carries the cutoff."""
    window = abandoned_window(ledger, main.id, now, playbook.intake.partial_grace_hours)
    if window is None:
        return
    for raws in abandoned_chunks(sm_hook, ledger, main.id, window):
        good, bad = with_ids(raws, main.id)
        got = _chunk(sm_hook, ledger, playbook, main, good, None, bad, fetched=len(raws))
        got.abandoned = {str(r["id"]) for r in good}
        yield got
    yield IntakeInputs(main.id, [], None, partial_mark=window[1].isoformat())


def _orphans(sm_hook, ledger, playbook, main: _Survey, seen: set[str]) -> Iterator[IntakeInputs]:
    """Main-survey negatives recorded without a case (a crash before planning), re-scored from the raw
    JSON kept in the ledger."""
    ids = [rid for rid in ledger.negatives_without_case() if rid not in seen]
    for start in range(0, len(ids), fetch.CHUNK):
        raws = ledger.raw_responses(ids[start : start + fetch.CHUNK])
        got = _chunk(sm_hook, ledger, playbook, main, raws, None, [], fetched=0)
        got.replanned = len(raws)
        yield got


def _chunk(sm_hook, ledger, playbook, survey: _Survey, raws, mark, problems, fetched: int) -> IntakeInputs:
    """One chunk's inputs: the survey's details (first chunk with responses) and the joined ledger rows."""
    if survey.main:
        got = IntakeInputs(survey.id, raws, mark, fetched=fetched)
        got.main_details = survey.details_for(sm_hook, ledger, playbook, problems) if raws else None
    else:
        got = IntakeInputs("", [], None, pulse_id=survey.id, pulse_raw=raws, pulse_mark=mark)
        got.fetched = got.recovery_fetched = fetched
        got.pulse_details = survey.details_for(sm_hook, ledger, playbook, problems) if raws else None
    got.malformed = problems
    _join_ledger(ledger, got)
    return got


def _join_ledger(ledger, got: IntakeInputs) -> None:
    """The sends (by recipient id), accounts, contacts, existing cases and pulse cases of the responses."""
    everything = got.main_raw + got.pulse_raw
    recipients = [str(r["recipient_id"]) for r in everything if r.get("recipient_id")]
    sends = ledger.send_by_recipient(recipients) if recipients else {}
    got.sends = {str(r["id"]): sends.get(str(r.get("recipient_id"))) for r in everything}
    known = [s for s in got.sends.values() if s]
    got.accounts = ledger.get_accounts({s["account_id"] for s in known if s.get("account_id")})
    got.contacts = ledger.get_contacts({s["contact_id"] for s in known if s.get("contact_id")})
    got.existing_cases = ledger.existing_case_keys([str(r["id"]) for r in got.main_raw])
    got.from_partial = _partial_cases(ledger, got.existing_cases)
    got.recovery_cases = {
        str(r["id"]): _case_for_recovery(ledger, got.sends[str(r["id"])]) for r in got.pulse_raw
    }


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
