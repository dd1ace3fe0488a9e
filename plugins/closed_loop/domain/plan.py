"""Plans: a scored negative response + account -> the Case and its SOP step Tasks, exactly as created.

``plan_case`` plans the Case and every ``on_open`` step; ``plan_activated_steps`` plans steps that start
when another completes (the follow-up, anchored on the acknowledgement's completion date);
``plan_escalation`` plans the escalation Task for a dissatisfied customer or an overdue step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.routing import AccountFacts, Routing
from closed_loop.playbook import Playbook, Step
from closed_loop.templating import render

if TYPE_CHECKING:  # scoring imports pandas; planning does not need it
    from closed_loop.domain.scoring import ResponseScore, Trigger

SUBJECT_MAX = 255
DESCRIPTION_MAX = 32000
TSM_TITLE = "Transition Success Manager"
_ANCHOR_WORDS = {
    "response_received": "the survey response",
    "case_opened": "the case opening",
    "acknowledge_completed": "the acknowledgement",
    "condition_met": "the escalation trigger",
}


@dataclass(frozen=True)
class ContactFacts:
    contact_id: str | None
    first_name: str | None = None
    last_name: str | None = None


@dataclass(frozen=True)
class StepContext:
    """What step planning needs to know about a Case (kept on the CasePlan, or rebuilt from the ledger)."""

    response_id: str
    account_id: str
    account_name: str
    contact_id: str | None
    contact_first_name: str | None
    lp_role: str
    lp_username: str
    tier: str
    channel: str
    severity: str
    case_priority: str
    task_priority: str
    response_url: str
    triggers: tuple[Trigger, ...] = ()
    comments: tuple[tuple[str, str], ...] = ()
    topics: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    customer_call_variant: str = "schedule_call"
    mrr: str | None = None
    flags: tuple[str, ...] = ()
    inactive_roles: tuple[str, ...] = ()  # role users inactive when the Case was planned
    problems: tuple[str, ...] = ()  # answers that could not be read (kept for a re-plan)


@dataclass(frozen=True)
class StepPlan:
    key: str  # "<response_id>:<step>" -> the Task's external id
    step: str
    subject: str
    owner_username: str
    owner_role: str  # the playbook role ("lp", "doi", "management"...)
    due_date: date
    priority: str  # Task priority: High, Normal, Low
    description: str
    start_date: date | None = None

    def task_fields(self, playbook: Playbook) -> dict[str, Any]:
        """Task fields by API name (OwnerId/WhatId/WhoId are resolved by the caller)."""
        return {
            "Subject": self.subject,
            "Priority": self.priority,
            "ActivityDate": self.due_date.isoformat(),
            "Status": playbook.salesforce.task.open_status,
            "Description": self.description,
            playbook.salesforce.task.external_id: self.key,
        }


@dataclass(frozen=True)
class CasePlan:
    response_id: str
    subject: str
    description: str
    priority: str
    origin: str
    status: str
    owner_username: str
    account_id: str
    contact_id: str | None
    severity: str
    routing: Routing
    received_on: date
    context: StepContext
    steps: list[StepPlan] = field(default_factory=list)

    def case_fields(self, playbook: Playbook) -> dict[str, Any]:
        """Case fields by API name (OwnerId is resolved from ``owner_username`` by the caller)."""
        fields = {
            "Subject": self.subject,
            "Description": self.description,
            "Priority": self.priority,
            "Origin": self.origin,
            "Status": self.status,
            "AccountId": self.account_id,
            playbook.salesforce.case.external_id: self.response_id,
        }
        if self.contact_id:
            fields["ContactId"] = self.contact_id
        return fields


# --- helpers ------------------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _title_of(role: str, playbook: Playbook) -> str:
    return TSM_TITLE if role == "tsm" else playbook.people.roles[role].title


def _owner(step_owner: str, ctx: StepContext, playbook: Playbook) -> str:
    return ctx.lp_username if step_owner == "lp" else playbook.username(step_owner)


def summary_recipients(step: Step, ctx: StepContext, playbook: Playbook) -> tuple[str, ...]:
    """Roles who get the step's issue summary (SOP 3.1: DOI & MS), an inactive one replaced by the
    playbook's fallback role, without repeats."""
    fallback = playbook.routing.inactive_user.role
    roles = (fallback if role in ctx.inactive_roles else role for role in step.summary_to)
    return tuple(dict.fromkeys(roles))


def _template_context(ctx: StepContext, playbook: Playbook) -> dict[str, Any]:
    return {
        "company": playbook.company.name,
        "contact_first_name": ctx.contact_first_name or "there",
        "sender_title": _title_of(ctx.lp_role, playbook),
        "channel": ctx.channel,
        "tier": ctx.tier,
        "topics": ctx.topics or (playbook.topics.default_topic,),
        "follow_up_requested": any(t.kind == "follow_up_request" for t in ctx.triggers),
        "account_name": ctx.account_name,
        "mrr": ctx.mrr,
        "severity": ctx.severity,
        "attendees": [_title_of(role, playbook) for role in ctx.audience],
        "triggers": list(ctx.triggers),
        "comments": list(ctx.comments),
        "response_url": ctx.response_url,
        "flags": ctx.flags,
    }


def _plan_step(
    step: Step, ctx: StepContext, anchor: date, playbook: Playbook, cal: BusinessCalendar
) -> StepPlan:
    title = step.variants.get(ctx.customer_call_variant, step.title) if step.variants else step.title
    w = step.window
    due = cal.add_window(anchor, w.max, w.unit)
    start = cal.add_window(anchor, w.min, w.unit) if w.min is not None else None
    span = f"{w.min}-{w.max}" if w.min is not None else f"{w.max}"
    unit = w.unit.replace("_", " ")
    parts = [
        step.description,
        f"Window: within {span} {unit} of {_ANCHOR_WORDS[step.anchor]} ({anchor}); due {due}.",
    ]
    if step.summary_to:
        to = summary_recipients(step, ctx, playbook)
        parts.append("Send the summary to: " + ", ".join(_title_of(r, playbook) for r in to))
    if step.key == "internal_call" or step.template == "internal_summary.txt":
        parts.append("Call attendees: " + ", ".join(_title_of(r, playbook) for r in ctx.audience))
    if step.checks_fields:
        parts.append("Fill in on the Case: " + ", ".join(step.checks_fields))
    if step.template:
        values = _template_context(ctx, playbook)
        values["summary_to"] = [_title_of(r, playbook) for r in summary_recipients(step, ctx, playbook)]
        parts.append("-" * 60 + "\n" + render(step.template, **values).strip())
    parts.append(f"Survey response: {ctx.response_url}")
    return StepPlan(
        key=f"{ctx.response_id}:{step.key}",
        step=step.key,
        subject=_clip(f"{title}: {ctx.account_name}", SUBJECT_MAX),
        owner_username=_owner(step.owner, ctx, playbook),
        owner_role=step.owner,
        due_date=due,
        priority=ctx.task_priority,
        description=_clip("\n\n".join(parts), DESCRIPTION_MAX),
        start_date=start,
    )


def _case_description(score: ResponseScore, ctx: StepContext, playbook: Playbook) -> str:
    lines = [
        f"Negative post-implementation survey response {score.response_id} (severity {score.severity}).",
        f"Account: {ctx.account_name} | tier {ctx.tier} | lead {_title_of(ctx.lp_role, playbook)} "
        f"({ctx.lp_username})",
        "",
        "Why it was flagged:",
    ]
    for t in score.triggers:
        where = f"{t.heading} / {t.row}" if t.row else t.heading
        lines.append(f'- [{t.severity}] {where}: "{t.answer}" ({t.rule})')
    if score.comments:
        lines += ["", "Customer's comments:"]
        lines += [f'- {heading}: "{text}"' for heading, text in score.comments]
    if ctx.flags:
        lines += ["", "Data-quality flags: " + ", ".join(ctx.flags)]
    if score.problems:
        lines += ["", "Answers that could not be read: " + "; ".join(score.problems)]
    lines += ["", f"Survey response: {ctx.response_url}"]
    return _clip("\n".join(lines), DESCRIPTION_MAX)


# --- public API ---------------------------------------------------------------------------------------


def plan_case(
    score: ResponseScore,
    account: AccountFacts,
    contact: ContactFacts | None,
    routing: Routing,
    playbook: Playbook,
    calendar: BusinessCalendar,
    received_on: date,
    response_url: str,
    opened_on: date | None = None,
) -> CasePlan:
    """The Case and every on_open step Task for a negative response (ValueError if it is not negative)."""
    if not score.negative or score.severity is None:
        raise ValueError(f"response {score.response_id} is not negative: nothing to plan")
    case_priority = playbook.priority.case[score.severity][routing.tier]  # type: ignore[index]
    contact = contact or ContactFacts(None)
    ctx = StepContext(
        response_id=score.response_id,
        account_id=account.account_id,
        account_name=account.name,
        contact_id=contact.contact_id,
        contact_first_name=contact.first_name,
        lp_role=routing.lp_role,
        lp_username=routing.lp_username,
        tier=routing.tier,
        channel=routing.channel,
        severity=score.severity,
        case_priority=case_priority,
        task_priority=playbook.priority.task[case_priority],
        response_url=response_url,
        triggers=score.triggers,
        comments=score.comments,
        topics=score.topics,
        audience=routing.internal_call_audience,
        customer_call_variant=routing.customer_call_variant,
        mrr=None if account.mrr is None else f"{account.mrr:,.2f}",
        flags=routing.flags,
        inactive_roles=routing.inactive_roles,
        problems=score.problems,
    )
    anchors = {"response_received": received_on, "case_opened": opened_on or received_on}
    steps = [
        _plan_step(step, ctx, anchors[step.anchor], playbook, calendar)
        for step in playbook.steps
        if step.activation == "on_open" and step.anchor in anchors
    ]
    return CasePlan(
        response_id=score.response_id,
        subject=_clip(f"Post-implementation feedback needs follow-up: {account.name}", SUBJECT_MAX),
        description=_case_description(score, ctx, playbook),
        priority=case_priority,
        origin=playbook.salesforce.case.origin,
        status=playbook.salesforce.case.new_status,
        owner_username=routing.lp_username,
        account_id=account.account_id,
        contact_id=contact.contact_id,
        severity=score.severity,
        routing=routing,
        received_on=received_on,
        context=ctx,
        steps=steps,
    )


def _context(source: CasePlan | StepContext) -> StepContext:
    return source.context if isinstance(source, CasePlan) else source


def plan_activated_steps(
    source: CasePlan | StepContext,
    completed_step: str,
    completed_on: date,
    playbook: Playbook,
    calendar: BusinessCalendar,
) -> list[StepPlan]:
    """Steps activated by completing ``completed_step`` (e.g. follow_up, due 15 business days after the
    acknowledgement was completed)."""
    ctx = _context(source)
    return [
        _plan_step(step, ctx, completed_on, playbook, calendar)
        for step in playbook.steps
        if step.activation_kind == "on_complete_of" and completed_step in step.activation_args
    ]


def escalation_owner(
    reason: Literal["dissatisfied", "overdue"], playbook: Playbook, overdue_step: StepPlan | None = None
) -> str:
    """Role that receives the escalation: the playbook mapping, or the fallback when that would hand a
    late step back to the very user who is late (e.g. an LP who is the DOI)."""
    owners = playbook.sla.escalation_owners
    if reason == "dissatisfied" or overdue_step is None:
        return owners.dissatisfied
    role = owners.overdue.get(overdue_step.owner_role, owners.fallback)
    if playbook.username(role) == overdue_step.owner_username:
        return owners.fallback
    return role


def plan_escalation(
    source: CasePlan | StepContext,
    reason: Literal["dissatisfied", "overdue"],
    detected_on: date,
    playbook: Playbook,
    calendar: BusinessCalendar,
    overdue_step: StepPlan | None = None,
) -> StepPlan:
    """The escalation Task (key "<response_id>:escalate:dissatisfied" or ":escalate:overdue:<step>")."""
    ctx = _context(source)
    step = next(
        s for s in playbook.steps if s.activation_kind == "on_condition" and reason in s.activation_args
    )
    role = escalation_owner(reason, playbook, overdue_step)
    due = calendar.add_business_days(detected_on, step.window.max)
    if reason == "overdue" and overdue_step is not None:
        why = f"'{overdue_step.subject}' was due {overdue_step.due_date} and is not completed."
        key = f"{ctx.response_id}:{step.key}:overdue:{overdue_step.step}"
    else:
        why = "The customer is still dissatisfied after the follow-up."
        key = f"{ctx.response_id}:{step.key}:{reason}"
    description = "\n\n".join(
        [
            why,
            step.description,
            f"Lead: {ctx.lp_username}. Due {due}.",
            f"Survey response: {ctx.response_url}",
        ]
    )
    return StepPlan(
        key=key,
        step=step.key,
        subject=_clip(f"{step.title}: {ctx.account_name}", SUBJECT_MAX),
        owner_username=playbook.username(role),
        owner_role=role,
        due_date=due,
        priority=playbook.sla.escalation_priority,
        description=_clip(description, DESCRIPTION_MAX),
        start_date=detected_on,
    )
