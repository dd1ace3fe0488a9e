"""``ingest_responses``: read, plan, then apply (quarantine, responses with their watermark, planned
cases). Crash safety: a response is recorded before its case is planned; negatives without a case are
planned again on the next run from the raw JSON kept in the ledger."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime

from closed_loop.domain.plan import CasePlan
from closed_loop.ledger.types import utcnow
from closed_loop.pipeline.intake.common import (
    partial_watermark_name,
    plan_to_json,
    watermark_name,
)
from closed_loop.pipeline.intake.plan import IngestSummary, IntakePlan, plan_intake
from closed_loop.pipeline.intake.read import IntakeInputs, read_chunks

log = logging.getLogger(__name__)


def ingest_responses(
    sm_hook, ledger, playbook, calendar, today: date, dry_run: bool = False, now: datetime | None = None
) -> IngestSummary:
    """Pull, score and record new/changed responses; plan a case for every new negative main response.

    Streamed in chunks of ``fetch.CHUNK`` responses: each is read, scored and recorded with the
    watermark it reaches before the next is fetched, so memory stays flat with the backlog and a crash
    resumes after the last chunk recorded.

    SurveyMonkey calls: ``ceil(n/100)`` response pages per polled survey (one when nothing is new); when
    any survey returned responses, one surveys list (``date_modified`` of both surveys) and a details
    call only for a survey read for the first time or edited since (the ledger keeps the last copy); one
    title lookup per survey ever (cached). The pulse survey is polled only while a recovery pulse sent
    within ``recovery.answer_window_days`` is unanswered.

    ``now`` (the run's logical time; None skips it) enables the abandoned-partial check: a partial
    response with a negative answer not completed within ``intake.partial_grace_hours`` opens its Case
    (one SM call, at most hourly); if it is completed later, that same Case is updated.
    """
    calls_before = sm_hook.calls_made
    summary = IngestSummary(dry_run=dry_run)
    problem_keys: set[str] = set()  # a dry run counts each problem once
    for inputs in read_chunks(sm_hook, ledger, playbook, today, dry_run, now):
        plan = plan_intake(inputs, playbook, calendar, today)
        if dry_run:
            plan.summary.quarantined = len({p.q_key for p in plan.problems} - problem_keys)
            problem_keys |= {p.q_key for p in plan.problems}
            plan.summary.recorded = len(plan.responses)
        else:
            apply_intake(ledger, inputs, plan, playbook)
        summary.add(plan.summary)
    summary.sm_calls = sm_hook.calls_made - calls_before
    if dry_run:
        log.info("DRY RUN intake plan: %s; cases %s; quarantine %s", summary.as_xcom(),
                 summary.case_keys, sorted(problem_keys))  # fmt: skip
    else:
        log.debug("intake: %s; cases planned %s", summary.as_xcom(), summary.case_keys)
    return summary


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
    ledger.insert_planned_cases(cases, steps)


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
        ledger.mark_case_update_pending(rid)
