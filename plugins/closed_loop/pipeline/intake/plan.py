"""Plan step of intake (pure): score the responses and plan a Case for every new negative one; the
response rows, answers, triggers and problems to record."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from closed_loop.domain.plan import CasePlan, ContactFacts, plan_case
from closed_loop.domain.recovery import pulse_dissatisfaction
from closed_loop.domain.routing import AccountFacts, route
from closed_loop.pipeline.intake.common import Problem, as_text, parse_ts
from closed_loop.pipeline.intake.read import IntakeInputs

RESPONSE_URL = "https://www.surveymonkey.com/analyze/browse/{survey_id}?respondent_id={response_id}"
ANSWER_FIELDS = ["question_id", "heading", "row_id", "row_text", "choice_id", "choice_text"]
ANSWER_FIELDS += ["other_text", "text", "topic"]
TRIGGER_FIELDS = ["kind", "question_id", "heading", "row", "answer", "rule", "severity"]
PARTIAL_NOTE = (
    "This response was not completed: it carries a negative answer and was left partial for more than "
    "{hours} hours, so it is followed up as it stands (SOP: any question that receives a negative answer)."
)


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

    def add(self, chunk: IngestSummary) -> None:
        """Add one chunk's counts (and case keys) to this run's."""
        for f in dataclasses.fields(self):
            if f.type == "int" and f.name != "sm_calls":
                setattr(self, f.name, getattr(self, f.name) + getattr(chunk, f.name))
        self.case_keys += chunk.case_keys

    def as_xcom(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "case_keys"}


@dataclass
class IntakePlan:
    """What the run records: response rows with scores, answers and triggers, case plans, problems."""

    summary: IngestSummary
    responses: list[dict] = field(default_factory=list)
    scores: dict[str, dict] = field(default_factory=dict)
    answers: dict[str, list[dict]] = field(default_factory=dict)
    triggers: dict[str, list[dict]] = field(default_factory=dict)
    plans: list[CasePlan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    updates: list[tuple[str, CasePlan]] = field(
        default_factory=list
    )  # cases opened from a partial, now completed
    partial_keys: set[str] = field(default_factory=set)


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


def _unknown_respondents(inputs: IntakeInputs, summary: IngestSummary) -> list[Problem]:
    out = []
    for raw in inputs.main_raw + inputs.pulse_raw:
        if inputs.sends[str(raw["id"])] is None:
            summary.unknown_respondents += 1
            out.append(Problem(
                f"intake:unknown_respondent:{raw['id']}", str(raw["id"]),
                "unknown respondent: the response's recipient id is not among the survey sends in the "
                "ledger, so it cannot be joined to an account; stored raw, no case opened",
                {"response_id": str(raw["id"]), "recipient_id": as_text(raw.get("recipient_id"))},
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
            plan.problems.append(Problem(
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
        plan.problems.append(Problem(
            f"intake:unknown_account:{account.account_id}", account.account_id,
            "the respondent's account is not in the ledger (not synced): routed as missing MRR",
            base,
        ))  # fmt: skip
    for flag in routing.flags:
        plan.problems.append(Problem(
            f"intake:{flag}:{account.account_id}", account.account_id,
            f"{flag}: {flag_reason(flag, playbook)}", base | {"flag": flag},
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


def _answers_by_response(frame) -> dict[str, list[dict]]:
    """The scored answers as ledger rows grouped by response: built column by column straight from the
    frame (missing values as None), one dict per answer and no intermediate copies."""
    out: dict[str, list[dict]] = defaultdict(list)
    if frame is None or frame.empty:
        return out
    columns = [frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in ANSWER_FIELDS]
    for rid, *values in zip(frame["response_id"].tolist(), *columns, strict=True):
        out[str(rid)].append(dict(zip(ANSWER_FIELDS, values, strict=True)))
    return out


def _response_row(raw: dict, send: Mapping | None, recovery: bool, case_key: str | None) -> dict:
    return {
        "response_id": str(raw["id"]),
        "survey_id": as_text(raw.get("survey_id")),
        "collector_id": as_text(raw.get("collector_id")),
        "recipient_id": as_text(raw.get("recipient_id")),
        "send_key": send.get("send_key") if send else None,
        "account_id": send.get("account_id") if send else None,
        "contact_id": send.get("contact_id") if send else None,
        "response_status": as_text(raw.get("response_status")),
        "date_created": parse_ts(raw.get("date_created")),
        "date_modified": parse_ts(raw.get("date_modified")),
        "raw": raw,
        "is_recovery": recovery,
        "case_key": case_key,
    }


def _local_day(raw: Mapping, tz: ZoneInfo, today: date) -> date:
    when = parse_ts(raw.get("date_modified")) or parse_ts(raw.get("date_created"))
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


def flag_reason(flag: str, playbook) -> str:
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
