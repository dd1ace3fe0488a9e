"""Response intake: SurveyMonkey responses -> scored in the ledger -> planned cases -> Salesforce.

``ingest_responses`` pulls new and changed responses incrementally (ledger watermark minus an overlap),
joins them to account/contact through the ledger's sends, scores them, records everything with the
watermark in one ledger transaction and plans a Case (+ SOP step Tasks) for every new negative one.
``open_cases`` writes the planned Cases and Tasks to Salesforce by external-id upserts, then marks
them in the ledger, and sends the data-quality owner one Task per quarantined intake problem.

Crash safety: a response is recorded before its case is planned, and negatives without a case are
planned again on the next run from the raw JSON kept in the ledger; Salesforce writes are upserts, so
a crash between Salesforce and the ledger only makes the rerun update the same records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, select

from closed_loop.domain.plan import CasePlan, ContactFacts, StepContext, plan_case, render_step, signed
from closed_loop.domain.recovery import pulse_dissatisfaction
from closed_loop.domain.routing import AccountFacts, route
from closed_loop.domain.scoring import Trigger
from closed_loop.hooks.errors import SurveyMonkeyNotFound
from closed_loop.ledger.models import (
    Account,
    Case,
    CaseStep,
    Contact,
    Quarantine,
    Response,
    SurveySend,
    Watermark,
)
from closed_loop.ledger.types import to_utc, utcnow
from closed_loop.ledger.upsert import insert_if_absent
from closed_loop.pipeline.lead import ROLES_CHECKED, decide_leads, read_accounts
from closed_loop.pipeline.recovery import escalate_dissatisfied_pulses
from closed_loop.pipeline.salesforce_writes import resolve_users, upsert_cases, upsert_tasks
from closed_loop.pipeline.surveys import resolve_survey_id

log = logging.getLogger(__name__)

SOURCE = "intake"  # quarantine source of response problems (unknown respondent, bad answers, MRR/TSM)
SF_SOURCE = "intake_salesforce"  # quarantine source of Salesforce write failures
QUARANTINE_SOURCES = (SOURCE, SF_SOURCE)
RECOVERY_PREFIX = "recovery:"
RESPONSE_URL = "https://www.surveymonkey.com/analyze/browse/{survey_id}?respondent_id={response_id}"
ANSWER_FIELDS = ["question_id", "heading", "row_id", "row_text", "choice_id", "choice_text"]
ANSWER_FIELDS += ["other_text", "text", "topic"]
TRIGGER_FIELDS = ["kind", "question_id", "heading", "row", "answer", "rule", "severity"]
KEY_MAX = 255


def recovery_send_key(case_key: str) -> str:
    """The send_key of the recovery pulse following up ``case_key`` (how pulses find their case)."""
    return f"{RECOVERY_PREFIX}{case_key}"


def watermark_name(survey_id: str) -> str:
    return f"intake:responses:{survey_id}"


def partial_watermark_name(survey_id: str) -> str:
    return f"intake:abandoned_partials:{survey_id}"


CASE_UPDATE_PREFIX = "intake:case_update:"  # + case key: "pending" until the Case is updated
PARTIAL_POLL_EVERY = timedelta(hours=1)  # abandoned partials are looked for at most hourly (1 SM call)
PARTIAL_FIRST_LOOKBACK = timedelta(days=7)
PARTIAL_NOTE = (
    "This response was not completed: it carries a negative answer and was left partial for more than "
    "{hours} hours, so it is followed up as it stands (SOP: any question that receives a negative answer)."
)


# --- results ------------------------------------------------------------------------------------------


@dataclass
class IngestSummary:
    dry_run: bool = False
    fetched: int = 0
    recovery: int = 0
    recovery_dissatisfied: int = 0  # negative recovery pulses (escalated by open_cases)
    recorded: int = 0
    positives: int = 0
    negatives: int = 0
    replanned: int = 0  # negatives recorded by an earlier run that crashed before planning
    abandoned_partials: int = 0  # partial negatives past intake.partial_grace_hours: a Case each
    completed_later: int = 0  # ... completed afterwards: the same Case is updated
    unknown_respondents: int = 0
    answer_problems: int = 0
    quarantined: int = 0
    cases_planned: int = 0
    steps_planned: int = 0
    case_keys: list[str] = field(default_factory=list)
    sm_calls: int = 0

    def as_xcom(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "case_keys"}


@dataclass
class OpenSummary:
    dry_run: bool = False
    cases_pending: int = 0
    cases_created: int = 0
    cases_updated: int = 0
    tasks_created: int = 0
    tasks_updated: int = 0
    failures: int = 0
    alerts_sent: int = 0
    alerts_closed: int = 0  # data-quality Tasks completed because their record now exists
    owner_fallbacks: int = 0
    rerouted: int = 0  # Cases whose lead changed with the accounts/users as Salesforce has them now
    recovery_escalations: int = 0  # negative recovery pulses escalated (SOP 6)
    cases_completed: int = 0  # Cases opened from a partial, updated with the completed response
    sf_calls: int = 0
    case_keys: list[str] = field(default_factory=list)

    def as_xcom(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "case_keys"}


@dataclass
class _Problem:
    q_key: str
    record_id: str | None
    reason: str
    payload: dict

    def row(self, source: str = SOURCE) -> dict:
        return {"q_key": self.q_key[:KEY_MAX], "source": source, "record_id": self.record_id,
                "reason": self.reason, "payload": self.payload}  # fmt: skip


# --- plan (de)serialisation ---------------------------------------------------------------------------


def plan_to_json(plan: CasePlan, playbook) -> dict:
    """The CasePlan as stored on ``cases.plan``: exactly what is written to Salesforce, plus the step
    context (for steps planned later, e.g. the follow-up and escalations)."""
    return {
        "version": 1,
        "case": plan.case_fields(playbook),
        "owner_username": plan.owner_username,
        "received_on": plan.received_on.isoformat(),
        "steps": {
            s.key: {
                "step": s.step,
                "owner_username": s.owner_username,
                "owner_role": s.owner_role,
                "due_date": s.due_date.isoformat(),
                "fields": s.task_fields(playbook),
            }
            for s in plan.steps
        },
        "context": json.loads(json.dumps(dataclasses.asdict(plan.context), default=str)),
    }


def context_from_json(plan_json: Mapping) -> StepContext:
    """Rebuild the StepContext kept in ``cases.plan`` (for plan_activated_steps / plan_escalation)."""
    ctx = dict(plan_json["context"])
    ctx["triggers"] = tuple(Trigger(**t) for t in ctx.get("triggers") or ())
    ctx["comments"] = tuple(tuple(c) for c in ctx.get("comments") or ())
    for name in ("topics", "audience", "flags", "inactive_roles", "problems"):
        ctx[name] = tuple(ctx.get(name) or ())
    return StepContext(**ctx)


# --- ingest -------------------------------------------------------------------------------------------


def _parse_ts(value: Any) -> datetime | None:
    try:
        return to_utc(value) if value else None
    except (TypeError, ValueError):
        return None


FUTURE_SKEW = timedelta(minutes=5)  # clock skew tolerated between SurveyMonkey and this worker
PAGE = 100


def _fetch(
    sm_hook, ledger, survey_id: str, overlap_minutes: int, problems: list | None = None
) -> tuple[list[dict], str | None]:
    """Completed responses modified since the watermark minus the overlap (all when there is none),
    deduplicated by id (latest kept), and the new watermark value (never moves backwards).

    The watermark never passes the fetch time: a ``date_modified`` after it (plus a small skew) is
    impossible, reported in ``problems`` (the response is still recorded) and ignored for the watermark,
    so one bad timestamp cannot freeze intake."""
    fetched_at = utcnow()
    previous = _parse_ts(ledger.get_watermark(watermark_name(survey_id)))
    since = previous - timedelta(minutes=overlap_minutes) if previous else None
    by_id: dict[str, dict] = {}
    not_objects: list[Any] = []  # kept: _with_ids quarantines them (never dropped silently)
    newest = previous
    for raw in _read_since(sm_hook, survey_id, since):
        if not isinstance(raw, dict):
            not_objects.append(_storable(raw))
            continue
        raw = _storable(raw)
        by_id[str(raw.get("id"))] = raw
        modified = _parse_ts(raw.get("date_modified"))
        if modified and modified > fetched_at + FUTURE_SKEW:
            if problems is not None:
                problems.append(_future_problem(raw, modified, fetched_at))
            continue
        if modified and (newest is None or modified > newest):
            newest = modified
    fresh = _changed(ledger, list(by_id.values())) + not_objects
    return fresh, newest.isoformat() if newest and newest != previous else None


def _read_since(sm_hook, survey_id: str, since: datetime | None) -> Iterable[Any]:
    """Every response modified since ``since``, oldest first, read page by page from the last
    ``date_modified`` seen (keyset paging) instead of by page number: a response modified during the
    fetch moves to the end of the list and shifts later ones back, which made plain offset paging skip
    one response at each page boundary. Boundary items are read twice and deduplicated by the caller;
    a page whose items all share one second (no progress) falls back to offset paging from there."""
    start = since
    while True:
        pages = sm_hook.iter_responses(survey_id=survey_id, start_modified_at=start, per_page=PAGE)
        batch = []
        for raw in pages:
            batch.append(raw)
            if len(batch) == PAGE:
                break
        yield from batch
        if len(batch) < PAGE:
            return
        last = next((_parse_ts(r.get("date_modified")) for r in reversed(batch) if isinstance(r, dict)), None)
        last = last.replace(microsecond=0) if last else None  # SurveyMonkey filters to the second
        if last is None or (start is not None and last <= start):
            yield from pages  # no progress by time: the rest by page number (at worst a duplicate read)
            return
        start = last


def _future_problem(raw: Mapping, modified: datetime, fetched_at: datetime) -> _Problem:
    rid = str(raw.get("id"))[:64]
    return _Problem(
        f"intake:future_timestamp:{rid}:{modified.isoformat()}",
        rid,
        f"date_modified {modified.isoformat()} is after the fetch time "
        f"{fetched_at.isoformat(timespec='seconds')}: an impossible timestamp; the response is recorded, "
        "the watermark ignores it",
        {"response_id": rid, "date_modified": raw.get("date_modified")},
    )


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """The response with text every database stores: lone surrogates (non-UTF-8 bytes escaped in the
    JSON) become U+FFFD and NUL characters are dropped; otherwise one such comment fails the batch."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _changed(ledger, raws: list[dict]) -> list[dict]:
    """Drop responses the ledger already holds with the same date_modified (the overlap re-reads
    them): nothing to record or score, so an idle run costs no details call."""
    ids = [str(r.get("id")) for r in raws]
    if not ids:
        return raws
    with ledger.session() as s:
        seen = dict(s.execute(select(Response.response_id, Response.date_modified)
                              .where(Response.response_id.in_(ids))).all())  # fmt: skip
    return [r for r in raws if seen.get(str(r.get("id"))) is None
            or seen[str(r.get("id"))] != _parse_ts(r.get("date_modified"))]  # fmt: skip


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


def _answers_by_response(frame) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    if frame is None or frame.empty:
        return out
    rows = frame[["response_id", *ANSWER_FIELDS]].astype(object)
    rows = rows.where(rows.notna(), None)
    for row in rows.to_dict("records"):
        out[str(row.pop("response_id"))].append(row)
    return out


def _response_row(raw: dict, send: Mapping | None, recovery: bool, case_key: str | None) -> dict:
    return {
        "response_id": str(raw["id"]),
        "survey_id": _str(raw.get("survey_id")),
        "collector_id": _str(raw.get("collector_id")),
        "recipient_id": _str(raw.get("recipient_id")),
        "send_key": send.get("send_key") if send else None,
        "account_id": send.get("account_id") if send else None,
        "contact_id": send.get("contact_id") if send else None,
        "response_status": _str(raw.get("response_status")),
        "date_created": _parse_ts(raw.get("date_created")),
        "date_modified": _parse_ts(raw.get("date_modified")),
        "raw": raw,
        "is_recovery": recovery,
        "case_key": case_key,
    }


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _local_day(raw: Mapping, tz: ZoneInfo, today: date) -> date:
    when = _parse_ts(raw.get("date_modified")) or _parse_ts(raw.get("date_created"))
    return when.astimezone(tz).date() if when else today


def _response_url(raw: Mapping, survey_id: str) -> str:
    url = raw.get("analyze_url")
    if isinstance(url, str) and url.startswith("https://"):
        return url
    return RESPONSE_URL.format(survey_id=survey_id, response_id=raw["id"])


def _facts(send: Mapping, accounts: Mapping, contacts: Mapping) -> tuple[AccountFacts, ContactFacts, bool]:
    """Routing facts of the respondent's account/contact; the flag says the account is not synced."""
    account = accounts.get(send["account_id"])
    contact = contacts.get(send.get("contact_id")) or {}
    who = ContactFacts(send.get("contact_id"), contact.get("first_name"), contact.get("last_name"))
    if account is None:
        return AccountFacts(send["account_id"], "Unknown account"), who, True
    facts = AccountFacts(
        account_id=account["sf_id"],
        name=account.get("name") or account["sf_id"],
        mrr=account.get("mrr"),
        tsm_username=account.get("tsm_username"),
        at_risk=bool(account.get("at_risk")),
    )
    return facts, who, False


def _flag_reason(flag: str, playbook) -> str:
    lead = playbook.routing.missing_mrr.role.upper()
    return {
        playbook.routing.missing_mrr.flag: f"account has no MRR: the {lead} leads the follow-up",
        playbook.routing.unparseable_mrr_flag: f"account MRR is not a number: the {lead} leads",
        playbook.routing.missing_tsm.flag: "MRR is above the threshold but the account has no active "
        f"Transition Success Manager: the {playbook.routing.missing_tsm.role.upper()} leads",
        playbook.routing.inactive_user.flag: "a role user (Director of Implementations or Marketing "
        f"Specialist) is inactive in Salesforce: the {playbook.routing.inactive_user.role} user takes "
        "their part",
    }.get(flag, flag)


def _fetch_abandoned(sm_hook, ledger, survey_id: str, now: datetime, grace_hours: int):
    """Partial responses last changed in (previous cutoff, now - grace]: left unfinished past the grace
    period. At most one poll per ``PARTIAL_POLL_EVERY``; returns (responses not in the ledger yet, new
    watermark or None)."""
    cutoff = now - timedelta(hours=grace_hours)
    previous = _parse_ts(ledger.get_watermark(partial_watermark_name(survey_id)))
    if previous is not None and cutoff - previous < PARTIAL_POLL_EVERY:
        return [], None
    start = previous or cutoff - PARTIAL_FIRST_LOOKBACK
    raws = [_storable(r) for r in sm_hook.iter_responses(survey_id=survey_id, start_modified_at=start,
            end_modified_at=cutoff, status="partial", per_page=100) if isinstance(r, dict)]  # fmt: skip
    with ledger.session() as s:
        seen = set(s.scalars(select(Response.response_id).where(
            Response.response_id.in_([str(r.get("id")) for r in raws]))))  # fmt: skip
    return [r for r in raws if str(r.get("id")) not in seen], cutoff.isoformat()


def _partial_cases(ledger, keys: Iterable[str]) -> dict[str, dict]:
    """Plans of the given cases that were opened from an abandoned partial response."""
    keys = list(keys)
    if not keys:
        return {}
    with ledger.session() as s:
        rows = s.execute(select(Case.case_key, Case.plan).where(Case.case_key.in_(keys))).all()
    return {k: p for k, p in rows if isinstance(p, dict) and p.get("from_partial")}


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
    malformed: list[_Problem] = field(default_factory=list)
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
class IntakePlan:
    """What the run records: response rows with scores, answers and triggers, case plans, problems."""

    summary: IngestSummary
    responses: list[dict] = field(default_factory=list)
    scores: dict[str, dict] = field(default_factory=dict)
    answers: dict[str, list[dict]] = field(default_factory=dict)
    triggers: dict[str, list[dict]] = field(default_factory=dict)
    plans: list[CasePlan] = field(default_factory=list)
    problems: list[_Problem] = field(default_factory=list)
    updates: list[tuple[str, CasePlan]] = field(
        default_factory=list
    )  # cases opened from a partial, now completed
    partial_keys: set[str] = field(default_factory=set)


def ingest_responses(
    sm_hook, ledger, playbook, calendar, today: date, dry_run: bool = False, now: datetime | None = None
) -> IngestSummary:
    """Pull, score and record new/changed responses; plan a case for every new negative main response.

    SurveyMonkey calls: ``ceil(n/100)`` response pages per polled survey (one when nothing is new), one
    details call per survey that returned responses, one title lookup per survey ever (cached). The pulse
    survey is polled only while a recovery pulse sent within ``recovery.answer_window_days`` is unanswered.

    ``now`` (the run's logical time; None skips it) enables the abandoned-partial check: a partial
    response with a negative answer not completed within ``intake.partial_grace_hours`` opens its Case
    (one SM call, at most hourly); if it is completed later, that same Case is updated.
    """
    calls_before = sm_hook.calls_made
    inputs = read_intake(sm_hook, ledger, playbook, today, dry_run, now)
    plan = plan_intake(inputs, playbook, calendar, today)
    summary = plan.summary
    summary.dry_run = dry_run
    summary.sm_calls = sm_hook.calls_made - calls_before
    if dry_run:
        summary.quarantined = len(plan.problems)
        summary.recorded = len(plan.responses)
        log.info("DRY RUN intake plan: %s; cases %s; quarantine %s", summary.as_xcom(),
                 summary.case_keys, [p.q_key for p in plan.problems])  # fmt: skip
        return summary
    apply_intake(ledger, inputs, plan, playbook)
    log.debug("intake: %s; cases planned %s", summary.as_xcom(), summary.case_keys)
    return summary


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
    problems: list[_Problem] = []
    try:
        main_raw, main_mark = _fetch(sm_hook, ledger, main_id, overlap, problems)
    except SurveyMonkeyNotFound:  # the cached id went stale (survey replaced): look it up again once
        main_id = resolve_survey_id(sm_hook, ledger, playbook.surveys.main, dry_run, refresh=True)
        main_raw, main_mark = _fetch(sm_hook, ledger, main_id, overlap, problems)
    got = IntakeInputs(main_id, main_raw, main_mark)
    if now is not None:
        abandoned_raw, got.partial_mark = _fetch_abandoned(
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
            got.pulse_raw, got.pulse_mark = _fetch(sm_hook, ledger, got.pulse_id, overlap, problems)
    got.fetched, got.recovery_fetched = len(got.main_raw) + len(got.pulse_raw), len(got.pulse_raw)
    got.main_raw, bad = _with_ids(got.main_raw, main_id)
    got.pulse_raw, bad_pulse = _with_ids(got.pulse_raw, got.pulse_id or "")
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


def plan_intake(inputs: IntakeInputs, playbook, calendar, today: date) -> IntakePlan:
    """Score the responses and plan a case for every new negative main response (pure: no I/O)."""
    plan = IntakePlan(IngestSummary(fetched=inputs.fetched, recovery=inputs.recovery_fetched))
    plan.problems += inputs.malformed
    plan.summary.replanned = inputs.replanned
    plan.problems += _unknown_respondents(inputs, plan.summary)
    if inputs.main_raw:
        _plan_main(inputs, plan, playbook, calendar, today)
    if inputs.pulse_raw:
        _plan_pulse(inputs, plan, playbook)
    plan.summary.case_keys = [p.response_id for p in plan.plans]
    plan.summary.cases_planned = len(plan.plans)
    plan.summary.steps_planned = sum(len(p.steps) for p in plan.plans)
    plan.problems = list({p.q_key: p for p in plan.problems}.values())
    return plan


def _unknown_respondents(inputs: IntakeInputs, summary: IngestSummary) -> list[_Problem]:
    out = []
    for raw in inputs.main_raw + inputs.pulse_raw:
        if inputs.sends[str(raw["id"])] is None:
            summary.unknown_respondents += 1
            out.append(_Problem(
                f"intake:unknown_respondent:{raw['id']}", str(raw["id"]),
                "unknown respondent: the response's recipient id is not among the survey sends in the "
                "ledger, so it cannot be joined to an account; stored raw, no case opened",
                {"response_id": str(raw["id"]), "recipient_id": _str(raw.get("recipient_id"))},
            ))  # fmt: skip
    return out


def _plan_main(inputs: IntakeInputs, plan: IntakePlan, playbook, calendar, today: date) -> None:
    """Score the main survey's responses; a CasePlan for each new negative one of a known account."""
    from closed_loop.domain.scoring import score_responses  # pandas: imported when a batch runs

    send_of, summary = inputs.sends, plan.summary
    at_risk = {a: bool(row.get("at_risk")) for a, row in inputs.accounts.items()}
    respondent_account = {
        str(r["recipient_id"]): send_of[str(r["id"])]["account_id"]
        for r in inputs.main_raw
        if send_of[str(r["id"])] and r.get("recipient_id")
    }
    result = score_responses(inputs.main_details, inputs.main_raw, playbook, at_risk, respondent_account)
    plan.answers |= _answers_by_response(result.answers)
    raw_of = {str(r["id"]): r for r in inputs.main_raw}
    for score in result.scores:
        rid, raw, send = score.response_id, raw_of[score.response_id], send_of[score.response_id]
        if rid in inputs.abandoned and not score.negative:
            continue  # not final and nothing to follow up: recorded when completed
        plan.responses.append(_response_row(raw, send, False, None))
        plan.scores[rid] = {"negative": score.negative, "severity": score.severity,
                            "topics": list(score.topics)}  # fmt: skip
        plan.triggers[rid] = [{f: getattr(t, f) for f in TRIGGER_FIELDS} for t in score.triggers]
        summary.negatives += score.negative
        summary.positives += not score.negative
        if score.problems:
            summary.answer_problems += 1
            plan.problems.append(_Problem(
                f"intake:answers:{rid}", rid,
                f"{len(score.problems)} answer(s) could not be read (the rest was scored): "
                + "; ".join(score.problems),
                {"response_id": rid, "problems": list(score.problems)},
            ))  # fmt: skip
        completed_now = rid in inputs.from_partial and raw.get("response_status") == "completed"
        if not score.negative or (rid in inputs.existing_cases and not completed_now):
            continue
        if send and send.get("account_id"):
            case = _plan_case(inputs, plan, score, raw, send, playbook, calendar, today)
            _add_case(plan, case, rid, completed_now, rid in inputs.abandoned, playbook)


def _add_case(plan: IntakePlan, case: CasePlan, rid: str, completed_now: bool, abandoned: bool, playbook):
    """A new case; or, for a case opened from a partial that is now completed, an update of that case;
    a case opened from an abandoned partial carries a note saying so."""
    if completed_now:  # the same Case, now with every answer
        plan.summary.completed_later += 1
        plan.updates.append((rid, case))
        return
    if abandoned:
        plan.summary.abandoned_partials += 1
        note = PARTIAL_NOTE.format(hours=playbook.intake.partial_grace_hours)
        case = dataclasses.replace(case, description=f"{note}\n\n{case.description}")
        plan.partial_keys.add(rid)
    plan.plans.append(case)


def _plan_case(inputs, plan: IntakePlan, score, raw, send, playbook, calendar, today: date) -> CasePlan:
    """Route and plan one negative response; flags and an unsynced account become problems."""
    account, contact, unsynced = _facts(send, inputs.accounts, inputs.contacts)
    routing = route(account, score.topics, playbook)
    base = {"response_id": score.response_id, "account_id": account.account_id,
            "case_key": score.response_id}  # fmt: skip
    if unsynced:
        plan.problems.append(_Problem(
            f"intake:unknown_account:{account.account_id}", account.account_id,
            "the respondent's account is not in the ledger (not synced): routed as missing MRR",
            base,
        ))  # fmt: skip
    for flag in routing.flags:
        plan.problems.append(_Problem(
            f"intake:{flag}:{account.account_id}", account.account_id,
            f"{flag}: {_flag_reason(flag, playbook)}", base | {"flag": flag},
        ))  # fmt: skip
    received = _local_day(raw, ZoneInfo(playbook.calendar.timezone), today)
    url = _response_url(raw, inputs.main_id)
    return plan_case(score, account, contact, routing, playbook, calendar, received, url)


def _plan_pulse(inputs: IntakeInputs, plan: IntakePlan, playbook) -> None:
    """A pulse is recorded (it feeds the recovery figures), never a new case."""
    from closed_loop.domain.scoring import score_responses

    result = score_responses(inputs.pulse_details, inputs.pulse_raw, playbook)
    plan.answers |= _answers_by_response(result.answers)
    raw_of = {str(r["id"]): r for r in inputs.pulse_raw}
    for score in result.scores:  # a negative one escalates its case (SOP 6, open_cases)
        rid = score.response_id
        case_key = inputs.recovery_cases[rid]
        plan.responses.append(_response_row(raw_of[rid], inputs.sends[rid], True, case_key))
        fired = pulse_dissatisfaction(plan.answers.get(rid, []), playbook)
        plan.scores[rid] = {"negative": bool(fired), "severity": "high" if fired else None, "topics": []}
        plan.triggers[rid] = fired
        plan.summary.recovery_dissatisfied += bool(fired)


def apply_intake(ledger, inputs: IntakeInputs, plan: IntakePlan, playbook) -> None:
    """Quarantine first (idempotent keys: a crash after it re-fetches and finds them already there),
    then the responses with their watermark in one transaction per survey, then the planned cases."""
    summary = plan.summary
    summary.quarantined = sum(ledger.quarantine(**p.row()) for p in plan.problems)
    main_rows = [r for r in plan.responses if not r["is_recovery"]]
    pulse_rows = [r for r in plan.responses if r["is_recovery"]]
    for rows, survey_id, mark in (
        (main_rows, inputs.main_id, inputs.main_mark),
        (pulse_rows, inputs.pulse_id, inputs.pulse_mark),
    ):
        if rows or mark:
            ids = {r["response_id"] for r in rows}
            summary.recorded += ledger.record_responses(
                rows,
                {k: v for k, v in plan.scores.items() if k in ids},
                {k: plan.answers.get(k, []) for k in ids},
                {k: plan.triggers.get(k, []) for k in ids},
                watermark_name=watermark_name(survey_id) if mark else None,
                watermark_value=mark,
            )
    _store_plans(ledger, plan.plans, playbook, plan.partial_keys)
    _store_completions(ledger, plan.updates, playbook)
    if inputs.partial_mark:
        ledger.set_watermark(partial_watermark_name(inputs.main_id), inputs.partial_mark)


def _drift_problems(details: Mapping, survey_id: str, playbook, main: bool) -> list[_Problem]:
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
        problems.append(_Problem(
            f"intake:drift:{survey_id}:{digest}", survey_id,
            f"playbook/survey drift: {m} - the rule cannot fire until the playbook or the survey is fixed",
            {"survey_id": survey_id, "key": m.key, "text": m.text, "problem": m.problem},
        ))  # fmt: skip
    return problems


def _with_ids(raws: list[dict], survey_id: str) -> tuple[list[dict], list[_Problem]]:
    """Responses that carry an id and fit the ledger's columns; the others cannot be stored and are
    quarantined by content hash, the raw JSON kept (an over-long id failed the whole batch on
    PostgreSQL, which enforces ``varchar(n)``; SQLite does not)."""
    good, bad = [], []
    for raw in raws:
        rid = raw.get("id") if isinstance(raw, dict) else None
        valid = isinstance(rid, str | int) and not isinstance(rid, bool)
        overlong = _overlong(raw) if valid else []
        if valid and not overlong:
            good.append(raw)
            continue
        digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:32]
        if overlong:
            key, what = f"intake:too_long:{digest}", "does not fit the ledger: " + "; ".join(overlong[:5])
        else:
            key = f"intake:no_id:{digest}"
            what = "has no id" if isinstance(raw, dict) else f"is not a JSON object ({type(raw).__name__})"
        bad.append(_Problem(key, None, f"a response of survey {survey_id} {what}",
                            {"survey_id": survey_id, "raw": raw}))  # fmt: skip
    return good, bad


def _store_completions(ledger, updates: list[tuple[str, CasePlan]], playbook) -> None:
    """A Case opened from an abandoned partial whose response is now complete: the stored Case fields
    take the full response's subject, description and priority and are marked for a Salesforce update
    (open_cases), never a second Case."""
    for rid, plan in updates:
        stored = ledger.get_case(rid)
        if not stored or not stored.get("plan"):
            continue
        fields = plan.case_fields(playbook)
        new = dict(stored["plan"])
        new["case"] = {**new["case"], **{k: fields[k] for k in ("Subject", "Description", "Priority")}}
        new |= {"from_partial": False, "case_update_pending": True}
        ledger.record_case_status([{"case_key": rid, "plan": new, "priority": plan.priority,
                                    "severity": plan.severity}])  # fmt: skip
        ledger.set_watermark(CASE_UPDATE_PREFIX + rid, "pending")


def update_completed_partials(sf_hook, ledger, playbook, dry_run: bool = False) -> int:
    """Write the stored fields of Cases whose partial response was completed later to the same Salesforce
    Case (upsert by external id: Subject, Description, Priority; status and owner stay as the LP left
    them). Returns how many were updated."""
    with ledger.session() as s:
        keys = [n.removeprefix(CASE_UPDATE_PREFIX) for n, v in s.execute(
            select(Watermark.name, Watermark.value).where(Watermark.name.startswith(CASE_UPDATE_PREFIX)))
            if v == "pending"]  # fmt: skip
    rows = []
    ext = playbook.salesforce.case.external_id
    for key in keys:
        case = ledger.get_case(key)
        if case and case.get("sf_case_id") and case.get("plan"):
            fields = case["plan"]["case"]
            rows.append({ext: key, **{k: fields[k] for k in ("Subject", "Description", "Priority")}})
    if dry_run or not rows:
        return len(rows)
    done = 0
    for res in upsert_cases(sf_hook, rows, ext):
        if res.ok:
            ledger.set_watermark(CASE_UPDATE_PREFIX + res.key, "done")
            done += 1
    log.info("open_cases: %d case(s) updated with their completed response", done)
    return done


_ID_CHARS = Response.__table__.c.response_id.type.length  # every SurveyMonkey id column is varchar(64)
_FIELD_CHARS = {"response_status": Response.__table__.c.response_status.type.length}


def _overlong(value: Any, where: str = "") -> list[str]:
    """Paths of id fields (``id``, ``*_id``) and bounded fields longer than their ledger column."""
    out: list[str] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        path = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))
        if isinstance(item, dict | list):
            out += _overlong(item, path)
            continue
        name = key if isinstance(key, str) else ""
        limit = _FIELD_CHARS.get(name) or (_ID_CHARS if name == "id" or name.endswith("_id") else None)
        if limit and isinstance(item, str | int) and not isinstance(item, bool) and len(str(item)) > limit:
            out.append(f"{path} is {len(str(item))} characters (at most {limit})")
    return out


def _store_plans(ledger, plans: list[CasePlan], playbook, partial_keys: Iterable[str] = ()) -> None:
    """Cases (status planned, with their plan) and their step rows, in one transaction."""
    if not plans:
        return
    cases, steps = [], []
    partial_keys = set(partial_keys)
    for plan in plans:
        r = plan.routing
        stored = plan_to_json(plan, playbook)
        if plan.response_id in partial_keys:
            stored["from_partial"] = True
        cases.append({
            "case_key": plan.response_id, "account_id": plan.account_id, "contact_id": plan.contact_id,
            "account_name": plan.context.account_name,
            "lp_role": r.lp_role, "lp_username": r.lp_username, "tier": r.tier, "channel": r.channel,
            "severity": plan.severity, "priority": plan.priority, "topics": list(plan.context.topics),
            "status": "planned", "plan": stored, "created_at": utcnow(),
        })  # fmt: skip
        steps += [
            {"step_key": s.key, "case_key": plan.response_id, "step": s.step, "owner_username":
             s.owner_username, "owner_role": s.owner_role, "due_date": s.due_date, "status": "planned"}
            for s in plan.steps
        ]  # fmt: skip
    with ledger.session() as s:
        insert_if_absent(s, Case, cases, ["case_key"])
        insert_if_absent(s, CaseStep, steps, ["step_key"])


# --- Salesforce ---------------------------------------------------------------------------------------


def _dq_key(q_key: str) -> str:
    key = f"dq:{q_key}"
    return key if len(key) <= KEY_MAX else f"dq:{hashlib.sha256(q_key.encode()).hexdigest()}"


def _case_ids(ledger, keys: Iterable[str]) -> dict[str, str]:
    keys = sorted({k for k in keys if k})
    if not keys:
        return {}
    stmt = select(Case.case_key, Case.sf_case_id).where(
        and_(Case.case_key.in_(keys), Case.sf_case_id.is_not(None))
    )
    with ledger.session() as s:
        return dict(s.execute(stmt).all())


def _close_fixed_alerts(sf_hook, ledger, done: list[str], playbook) -> int:
    """Complete the data-quality Task of every alert whose record now exists in Salesforce (a refused
    Case or Task written on a retry), so ops is not left with an alarm that outlived its cause. One
    Task upsert call, only when there is something to close."""
    if not done:
        return 0
    with ledger.session() as s:
        stmt = select(Quarantine.q_key).where(
            Quarantine.q_key.in_(done), Quarantine.resolved_at.is_(None), Quarantine.reported_at.is_not(None)
        )
        fixed = sorted(s.scalars(stmt))
    if not fixed:
        return 0
    ext, status = playbook.salesforce.task.external_id, playbook.salesforce.task.completed_status
    rows = [{ext: _dq_key(k), "Status": status} for k in fixed]
    closed = sum(r.ok for r in upsert_tasks(sf_hook, rows, ext))
    log.info("open_cases: %d data-quality alert(s) closed: their record now exists", closed)
    return closed


def _alert_task(alert: Mapping, owner_id: str, what_id: str | None, playbook, due: date) -> dict:
    payload = alert.get("payload") or {}
    ids = ", ".join(f"{k}={v}" for k, v in sorted(payload.items()) if isinstance(v, str))
    reason = alert["reason"]
    task = {
        "Subject": f"Data quality: {reason}"[:255],
        "Description": "\n\n".join(
            [
                f"The closed-loop intake set a record aside ({alert['source']}).",
                f"Reason: {reason}",
                f"Record: {alert.get('record_id') or '-'}" + (f" ({ids})" if ids else ""),
                "Fix the data in Salesforce (or the survey mapping); the next run picks it up again.",
            ]
        )[:32000],  # fmt: skip
        "Priority": "Normal",
        "Status": playbook.salesforce.task.open_status,
        "ActivityDate": due.isoformat(),
        "OwnerId": owner_id,
        playbook.salesforce.task.external_id: _dq_key(alert["q_key"]),
    }
    if what_id:
        task["WhatId"] = what_id
    return task


def _store_decisions(ledger, rerouted, accounts: Mapping[str, Mapping], playbook, dry_run: bool) -> None:
    """Put each re-decided plan on its pending case (in memory) and, unless dry, on the ledger Case and
    its steps; quarantine the data-quality flags of the new decision (raw MRR shown), resolve the stale
    ones of the old."""
    mrr_field = playbook.salesforce.account.mrr
    case_rows, step_rows, problems, stale = [], [], [], []
    for case, plan in rerouted:
        old_flags = set(case["plan"]["context"].get("flags") or ())
        case["plan"] = plan_to_json(plan, playbook)
        by_key = {s.key: s for s in plan.steps}
        for step in case["pending_steps"]:
            if step["step_key"] in by_key:
                step["owner_username"] = by_key[step["step_key"]].owner_username
        r, account = plan.routing, plan.account_id
        case_rows.append({"case_key": case["case_key"], "lp_role": r.lp_role, "lp_username": r.lp_username,
                          "tier": r.tier, "channel": r.channel, "priority": plan.priority,
                          "plan": case["plan"]})  # fmt: skip
        step_rows += [{"step_key": s.key, "owner_username": s.owner_username, "owner_role": s.owner_role,
                       "due_date": s.due_date} for s in plan.steps]  # fmt: skip
        base = {"response_id": case["case_key"], "account_id": account, "case_key": case["case_key"]}
        raw = accounts[account].get(mrr_field)
        for flag in r.flags:
            reason = f"{flag}: {_flag_reason(flag, playbook)}"
            extra = {"flag": flag}
            if flag == playbook.routing.unparseable_mrr_flag:
                reason += f" ({mrr_field} is {str(raw)!r} in Salesforce)"
                extra["mrr_raw"] = str(raw)
            problems.append(_Problem(f"intake:{flag}:{account}", account, reason, base | extra))
        stale += [f"intake:{flag}:{account}" for flag in old_flags - set(r.flags)]
    log.info("open_cases: %d case(s) re-routed on the accounts/users as Salesforce has them now: %s",
             len(rerouted), [c["case_key"] for c, _ in rerouted])  # fmt: skip
    if dry_run:
        return
    ledger.record_case_status(case_rows)
    ledger.record_step_status(step_rows)
    ledger.resolve_quarantine(stale)
    for problem in problems:
        ledger.quarantine(**problem.row())


@dataclass
class Owners:
    """Usernames -> active Salesforce User ids; a missing/inactive user falls back to ``fallback``, and
    each such use is counted and recorded as a problem."""

    ids: dict[str, str]
    fallback: str
    fallbacks: int = 0
    problems: list[_Problem] = field(default_factory=list)
    users: dict[str, dict] = field(default_factory=dict)  # username -> User (Name, Title: signatures)

    def user_for(self, username: str) -> dict | None:
        """The User record that ends up owning ``username``'s Tasks (the fallback when inactive)."""
        return self.users.get(username) or self.users.get(self.fallback)

    def id_for(self, username: str, key: str) -> str | None:
        if username in self.ids:
            return self.ids[username]
        self.fallbacks += 1
        self.problems.append(_Problem(
            f"intake_sf:owner:{username}", username,
            f"Salesforce user {username} is missing or inactive: its cases and tasks go to {self.fallback}",
            {"case_key": key.split(":")[0], "username": username},
        ))  # fmt: skip
        return self.ids.get(self.fallback)


@dataclass
class OpenPlan:
    """What open_cases writes: Case rows (owners resolved), the Cases already in Salesforce, the step
    Tasks of every pending case (written once its Case has an id) and the data-quality alerts."""

    pending: list[dict]
    alerts: list[dict]
    owners: Owners
    dq_user: str
    case_rows: list[dict] = field(default_factory=list)
    case_ids: dict[str, str] = field(default_factory=dict)


def open_cases(sf_hook, ledger, playbook, calendar, today: date, dry_run: bool = False) -> OpenSummary:
    """Write every planned case to Salesforce: one owner query, Case upserts, then Task upserts (step
    Tasks + one data-quality Task per unreported intake quarantine item), then mark them in the ledger.

    Salesforce calls: 1 user query + ``ceil(cases/1000)`` + ``ceil(tasks/1000)`` (Composite); none when idle.
    Per-record failures are quarantined with Salesforce's error and retried on the next run.
    """
    summary = OpenSummary(dry_run=dry_run)
    calls_before = sf_hook.calls_made
    pending, alerts = cases_to_open(ledger)
    summary.cases_pending = len(pending)
    summary.case_keys = [c["case_key"] for c in pending]
    summary.recovery_escalations = escalate_dissatisfied_pulses(
        sf_hook, ledger, playbook, calendar, today, dry_run
    )
    summary.cases_completed = update_completed_partials(sf_hook, ledger, playbook, dry_run)
    if not pending and not alerts:
        summary.sf_calls = sf_hook.calls_made - calls_before
        return summary
    owners, accounts = read_owners(sf_hook, pending, playbook)
    new = [c for c in pending if not c.get("sf_case_id")]
    rerouted = decide_leads(new, accounts, {u.casefold() for u in owners.ids}, playbook, calendar)
    summary.rerouted = len(rerouted)
    if rerouted:
        _store_decisions(ledger, rerouted, accounts, playbook, dry_run)
        if not dry_run:
            alerts = [q for q in ledger.unreported_quarantine() if q["source"] in QUARANTINE_SOURCES]
    plan = plan_open(pending, alerts, owners, playbook)
    summary.owner_fallbacks = plan.owners.fallbacks
    if dry_run:
        steps = sum(len(c["pending_steps"]) for c in pending)
        log.info(
            "DRY RUN open_cases: %d case(s) to upsert %s, %d step task(s), %d data-quality alert(s) %s",
            len(plan.case_rows), summary.case_keys, steps, len(alerts), [a["q_key"] for a in alerts],
        )  # fmt: skip
        summary.sf_calls = sf_hook.calls_made - calls_before
        return summary
    apply_open(sf_hook, ledger, plan, playbook, calendar, today, summary)
    summary.sf_calls = sf_hook.calls_made - calls_before
    log.debug("open_cases: %s; cases %s", summary.as_xcom(), summary.case_keys)
    return summary


def cases_to_open(ledger) -> tuple[list[dict], list[dict]]:
    """Planned cases still to write (or with planned steps still to write), and unreported intake
    quarantine items (each becomes a data-quality Task)."""
    pending = [  # steps another pipeline added (follow-up, escalations) are written by that pipeline
        c for c in ledger.cases_needing_salesforce()
        if c.get("plan") and (not c.get("sf_case_id")
                              or any(s["step_key"] in c["plan"]["steps"] for s in c["pending_steps"]))
    ]  # fmt: skip
    alerts = [q for q in ledger.unreported_quarantine() if q["source"] in QUARANTINE_SOURCES]
    return pending, alerts


def read_owners(sf_hook, pending: list[dict], playbook) -> tuple[Owners, dict[str, dict]]:
    """The new cases' accounts as Salesforce has them now (one SOQL), and one User query for every owner
    the pending cases and those accounts name, the role users, the data-quality owner and the fallback."""
    fallback_user = playbook.username(playbook.routing.missing_tsm.role)
    wanted = {playbook.username(playbook.people.data_quality_owner), fallback_user}
    wanted |= {playbook.username(r) for r in ROLES_CHECKED}
    new = [c for c in pending if not c.get("sf_case_id")]
    accounts = read_accounts(sf_hook, playbook, (c["account_id"] for c in new)) if new else {}
    wanted |= {(r.get(playbook.salesforce.account.tsm_relationship) or {}).get("Username")
               for r in accounts.values()}  # fmt: skip
    for case in pending:
        wanted.add(case["plan"]["owner_username"])
        wanted |= {s["owner_username"] for s in case["plan"]["steps"].values()}
    users = resolve_users(sf_hook, wanted)
    return Owners({u: r["Id"] for u, r in users.items()}, fallback_user, users=users), accounts


def plan_open(pending: list[dict], alerts: list[dict], owners: Owners, playbook) -> OpenPlan:
    """The Case rows to upsert (owner resolved) and the Cases already in Salesforce (pure)."""
    plan = OpenPlan(pending, alerts, owners, playbook.username(playbook.people.data_quality_owner))
    for case in pending:
        if case.get("sf_case_id"):
            plan.case_ids[case["case_key"]] = case["sf_case_id"]
            continue
        owner_id = owners.id_for(case["plan"]["owner_username"], case["case_key"])
        if owner_id:
            plan.case_rows.append({**case["plan"]["case"], "OwnerId": owner_id})
    return plan


def _signed_draft(plan_json: Mapping, planned: Mapping, user: dict | None, playbook, calendar) -> dict:
    """A step whose Description carries a draft email, rendered again signed with the name and title of
    the Salesforce user who owns the Task (unknown at planning time); nothing for the other steps."""
    step = next((s for s in playbook.steps if s.key == planned["step"]), None)
    if step is None or not step.template or not user or "context" not in plan_json:
        return {}
    ctx = signed(context_from_json(plan_json), user)
    anchor = date.fromisoformat(plan_json["received_on"])
    return {"Description": render_step(step.key, ctx, anchor, playbook, calendar).description}


def step_task_rows(plan: OpenPlan, case_ids: Mapping[str, str], playbook=None, calendar=None) -> list[dict]:
    """The planned step Tasks of every pending case that has a Salesforce id (owners resolved; with the
    playbook and calendar, drafts signed with their owner's Salesforce name and title)."""
    rows = []
    for case in plan.pending:
        case_id = case_ids.get(case["case_key"])
        if not case_id:
            continue
        for step in case["pending_steps"]:
            planned = case["plan"]["steps"].get(step["step_key"])
            if planned is None:  # a step another pipeline added: it writes its own Task
                continue
            owner_id = plan.owners.id_for(planned["owner_username"], step["step_key"])
            if not owner_id:
                continue
            row = {**planned["fields"], "OwnerId": owner_id, "WhatId": case_id}
            if playbook is not None:
                user = plan.owners.user_for(planned["owner_username"])
                row |= _signed_draft(case["plan"], planned, user, playbook, calendar)
            if case.get("contact_id"):
                row["WhoId"] = case["contact_id"]
            rows.append(row)
    return rows


def apply_open(sf_hook, ledger, plan: OpenPlan, playbook, calendar, today: date, summary) -> None:
    """Upsert the Cases, then their step Tasks and the data-quality Tasks; record all in the ledger."""
    opened_at = datetime.combine(today, time.min, tzinfo=UTC)  # the logical day, never the wall clock
    case_ids = dict(plan.case_ids)
    for res in upsert_cases(sf_hook, plan.case_rows, playbook.salesforce.case.external_id):
        if res.ok:
            ledger.mark_case_created(res.key, res.id, opened_at=opened_at)
            case_ids[res.key] = res.id
            summary.cases_created += res.created
            summary.cases_updated += not res.created
        else:
            summary.failures += 1
            payload = {"case_key": res.key, "code": res.code}
            reason = f"Salesforce refused the Case: {res.error}"
            plan.owners.problems.append(_Problem(f"salesforce:case:{res.key}", res.key, reason, payload))
    task_rows = step_task_rows(plan, case_ids, playbook, calendar)
    written = {f"salesforce:case:{k}" for k in case_ids}  # refused earlier, written now: no alarm
    plan.alerts = [a for a in plan.alerts if a["q_key"] not in written]
    alert_keys = _alert_rows(ledger, plan, playbook, calendar.add_business_days(today, 1), task_rows)
    created, reported = _write_tasks(sf_hook, task_rows, alert_keys, plan, playbook, summary)
    summary.owner_fallbacks = plan.owners.fallbacks
    ledger.mark_steps_created(created, created_at=opened_at)
    ledger.mark_quarantine_reported(reported)
    done = [f"salesforce:case:{k}" for k in case_ids] + [f"salesforce:task:{k}" for k in created]
    summary.alerts_closed = _close_fixed_alerts(sf_hook, ledger, done, playbook)
    ledger.resolve_quarantine(done)
    for problem in {p.q_key: p for p in plan.owners.problems}.values():
        ledger.quarantine(**problem.row(SF_SOURCE))


def _alert_rows(ledger, plan: OpenPlan, playbook, due: date, task_rows: list[dict]) -> dict[str, str]:
    """Append one data-quality Task per alert (linked to its case when that has an id); returns
    ``{task key: quarantine key}``."""
    dq_id = plan.owners.ids.get(plan.dq_user)
    if not plan.alerts or not dq_id:
        return {}
    linked = _case_ids(ledger, ((a.get("payload") or {}).get("case_key") for a in plan.alerts))
    keys = {}
    for alert in plan.alerts:
        what = linked.get((alert.get("payload") or {}).get("case_key"))
        task = _alert_task(alert, dq_id, what, playbook, due)
        task_rows.append(task)
        keys[task[playbook.salesforce.task.external_id]] = alert["q_key"]
    return keys


def _write_tasks(sf_hook, task_rows, alert_keys, plan: OpenPlan, playbook, summary):
    """Upsert the Tasks and record failures; returns ``({step key: Task id}, [reported alert keys])``."""
    created: dict[str, str] = {}
    reported: list[str] = []
    for res in upsert_tasks(sf_hook, task_rows, playbook.salesforce.task.external_id):
        if res.key in alert_keys:
            if res.ok:
                reported.append(alert_keys[res.key])
                summary.alerts_sent += 1
            else:
                log.warning("data-quality Task %s refused by Salesforce: %s", res.key, res.code)
        elif res.ok:
            created[res.key] = res.id
            summary.tasks_created += res.created
            summary.tasks_updated += not res.created
        else:
            summary.failures += 1
            payload = {"case_key": res.key.split(":")[0], "code": res.code}
            reason = f"Salesforce refused the Task: {res.error}"
            plan.owners.problems.append(_Problem(f"salesforce:task:{res.key}", res.key, reason, payload))
    return created, reported
