"""Plans: a scored negative response + account -> the Case and its SOP step Tasks, exactly as created.

``plan_case`` plans the Case and every ``on_open`` step; ``plan_activated_steps`` plans steps that start
when another completes (the follow-up, anchored on the acknowledgement's completion date);
``plan_escalation`` plans the escalation Task for a dissatisfied customer or an overdue step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.records import case_record, task_record
from closed_loop.domain.routing import AccountFacts, Routing
from closed_loop.domain.wording import describe_trigger, field_labels, flag_sentence
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
    lead_name: str | None = None  # the Lead Person's name and title as Salesforce knows them (User)
    lead_title: str | None = None
    case_url: str | None = None  # the Salesforce Case, once it exists


UNSIGNED = "[Your name]"


def signed(ctx: StepContext, user: dict | None) -> StepContext:
    """``ctx`` with the lead's name and title from their Salesforce User record (``Name``, ``Title``)."""
    if not user:
        return ctx
    return replace(ctx, lead_name=user.get("Name") or None, lead_title=user.get("Title") or None)


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
        return task_record(playbook, key=self.key, subject=self.subject, description=self.description,
                           due=self.due_date, priority=self.priority)  # fmt: skip


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
        return case_record(
            playbook, key=self.response_id, subject=self.subject, description=self.description,
            priority=self.priority, status=self.status, account_id=self.account_id,
            contact_id=self.contact_id, origin=self.origin,
        )  # fmt: skip


# --- helpers ------------------------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _title_of(role: str, playbook: Playbook) -> str:
    return TSM_TITLE if role == "tsm" else playbook.people.roles[role].title


def lead_words(ctx: StepContext, playbook: Playbook) -> str:
    """The lead as a person: "Dana Okafor (Director of Implementations)", else the role's title."""
    title = ctx.lead_title or _title_of(ctx.lp_role, playbook)
    return f"{ctx.lead_name} ({title})" if ctx.lead_name else title


def links(ctx: StepContext) -> list[str]:
    """The response and (once it exists) the Case, each labelled with what it points to."""
    out = [f"Survey response (SurveyMonkey): {ctx.response_url}"] if ctx.response_url else []
    if ctx.case_url:
        out.append(f"Salesforce Case: {ctx.case_url}")
    return out


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
        "sender_name": ctx.lead_name or UNSIGNED,
        "sender_title": ctx.lead_title or _title_of(ctx.lp_role, playbook),
        "channel": ctx.channel,
        "tier": ctx.tier,
        "topics": ctx.topics or (playbook.topics.default_topic,),
        "follow_up_requested": any(t.kind == "follow_up_request" for t in ctx.triggers),
        "account_name": ctx.account_name,
        "mrr": ctx.mrr,
        "severity": ctx.severity,
        "attendees": [_title_of(role, playbook) for role in ctx.audience],
        "triggers": list(ctx.triggers),
        "why": [describe_trigger(t, playbook) for t in ctx.triggers],
        "comments": list(ctx.comments),
        "response_url": ctx.response_url,
        "flags": [flag_sentence(f, playbook) for f in ctx.flags],
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
        parts.append("Fill in on the Case: " + ", ".join(field_labels(step.checks_fields)))
    if step.template:
        values = _template_context(ctx, playbook)
        values["summary_to"] = [_title_of(r, playbook) for r in summary_recipients(step, ctx, playbook)]
        parts.append("-" * 60 + "\n" + render(step.template, **values).strip())
    parts.append("\n".join(links(ctx)))
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


def render_step(
    step_key: str, ctx: StepContext, anchor: date, playbook: Playbook, calendar: BusinessCalendar
) -> StepPlan:
    """Plan one playbook step again from a (re-signed) context, e.g. once its owner's name is known."""
    return _plan_step(playbook.step(step_key), ctx, anchor, playbook, calendar)


def _case_description(score: ResponseScore, ctx: StepContext, playbook: Playbook) -> str:
    lines = [
        f"Negative post-implementation survey response {score.response_id} (severity {score.severity}).",
        f"Account: {ctx.account_name} | tier {ctx.tier} | lead {lead_words(ctx, playbook)}",
        "",
        "Why it was flagged:",
    ]
    lines += [f"- {describe_trigger(t, playbook)} ({t.severity} severity)" for t in score.triggers]
    if score.comments:
        lines += ["", "Customer's comments:"]
        lines += [f'- {heading}: "{text}"' for heading, text in score.comments]
    if ctx.flags:
        lines += ["", "Data to fix first: " + "; ".join(flag_sentence(f, playbook) for f in ctx.flags)]
    if score.problems:
        lines += ["", "Answers that could not be read: " + "; ".join(score.problems)]
    lines += ["", *links(ctx)]
    return _clip("\n".join(lines), DESCRIPTION_MAX)


def _case_context(
    score: ResponseScore,
    account: AccountFacts,
    contact: ContactFacts,
    routing: Routing,
    playbook: Playbook,
    response_url: str,
) -> StepContext:
    """What step planning needs about a new Case: the response, account, contact, routing and priorities."""
    case_priority = playbook.priority.case[score.severity][routing.tier]  # type: ignore[index]
    return StepContext(
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
    contact = contact or ContactFacts(None)
    ctx = _case_context(score, account, contact, routing, playbook, response_url)
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
        priority=ctx.case_priority,
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
    reason: Literal["dissatisfied", "overdue"],
    playbook: Playbook,
    overdue_step: StepPlan | Sequence[StepPlan] | None = None,
) -> str:
    """Role that receives the escalation: the playbook mapping, or the fallback when that would hand a
    late step back to the very user who is late (e.g. an LP who is the DOI)."""
    owners = playbook.sla.escalation_owners
    late = _as_steps(overdue_step)
    if reason == "dissatisfied" or not late:
        return owners.dissatisfied
    first = late[0]
    role = owners.overdue.get(first.owner_role, owners.fallback)
    if any(playbook.username(role) == s.owner_username for s in late):
        return owners.fallback
    return role


def _as_steps(steps: StepPlan | Sequence[StepPlan] | None) -> tuple[StepPlan, ...]:
    if steps is None:
        return ()
    return (steps,) if isinstance(steps, StepPlan) else tuple(steps)


def _step_name(step: StepPlan, ctx: StepContext) -> str:
    """The step as its Task reads, without the account (already on the escalation)."""
    return step.subject.removesuffix(f": {ctx.account_name}")


def _late_lines(
    late: Sequence[StepPlan], ctx: StepContext, detected_on: date, calendar: BusinessCalendar
) -> list[str]:
    out = []
    for s in late:
        n = calendar.business_days_between(s.due_date, detected_on)
        out.append(f"- {_step_name(s, ctx)}: due {s.due_date}, {n} business day{'s' if n != 1 else ''} late")
    return out


def _dissatisfied_lines(ctx: StepContext, playbook: Playbook) -> list[str]:
    lines = ["The customer is still dissatisfied after the follow-up.", "", "What the customer told us:"]
    lines += [f"- {describe_trigger(t, playbook)}" for t in ctx.triggers] or ["- (no answers on record)"]
    if ctx.comments:
        lines += ["", "In their own words:"] + [f'- "{text}"' for _, text in ctx.comments]
    lines += ["", f"MRR: {ctx.mrr if ctx.mrr is not None else 'unknown'} | Lead: {lead_words(ctx, playbook)}"]
    return lines


def plan_escalation(
    source: CasePlan | StepContext,
    reason: Literal["dissatisfied", "overdue"],
    detected_on: date,
    playbook: Playbook,
    calendar: BusinessCalendar,
    overdue_step: StepPlan | Sequence[StepPlan] | None = None,
) -> StepPlan:
    """The escalation Task. Dissatisfied: key "<response_id>:escalate:dissatisfied". Overdue: one Task
    for the steps of one case found late in one sweep, key "<response_id>:escalate:overdue:<day>" (a single
    StepPlan keeps the per-step key ":escalate:overdue:<step>")."""
    ctx = _context(source)
    step = next(
        s for s in playbook.steps if s.activation_kind == "on_condition" and reason in s.activation_args
    )
    role = escalation_owner(reason, playbook, overdue_step)
    due = calendar.add_business_days(detected_on, step.window.max)
    late = _as_steps(overdue_step)
    if reason == "overdue" and late:
        what = "This step is" if len(late) == 1 else f"These {len(late)} steps are"
        why = "\n".join([f"{what} overdue and still open:", *_late_lines(late, ctx, detected_on, calendar)])
        tail = late[0].step if isinstance(overdue_step, StepPlan) else detected_on.isoformat()
        key = f"{ctx.response_id}:{step.key}:overdue:{tail}"
    else:
        why = "\n".join(_dissatisfied_lines(ctx, playbook))
        key = f"{ctx.response_id}:{step.key}:{reason}"
    description = "\n\n".join(
        [
            why,
            step.description,
            f"Lead: {lead_words(ctx, playbook)}. Due {due}.",
            "\n".join(links(ctx)),
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


def plan_late_completion(
    source: CasePlan | StepContext,
    step: StepPlan,
    completed_on: date,
    playbook: Playbook,
    calendar: BusinessCalendar,
) -> StepPlan:
    """A factual Case-history line (a Task logged as completed) for a step done after its due date: no
    alarm, just "completed on <date>, N business days late". Key "<step key>:late"."""
    n = calendar.business_days_between(step.due_date, completed_on)
    late = f"{n} business day{'s' if n != 1 else ''} late"
    return StepPlan(
        key=f"{step.key}:late",
        step=f"{step.step}:late",
        subject=_clip(f"Completed late: {step.subject}", SUBJECT_MAX),
        owner_username=step.owner_username,
        owner_role=step.owner_role,
        due_date=completed_on,
        priority="Low",
        description=_clip(
            f"'{_step_name(step, _context(source))}' was due {step.due_date} and was completed on "
            f"{completed_on}, {late}.\n\n" + "\n".join(links(_context(source))),
            DESCRIPTION_MAX,
        ),
        start_date=completed_on,
    )
