"""Preflight checks as plain functions: does this org and this survey match the playbook?

Each check takes what the APIs returned (describe documents, users, survey details, scopes, budgets) and the
Playbook, and returns ``Check`` rows: a name, pass/fail, what was found, and how to fix a failure. No I/O
here (closed_loop.preflight.run gathers the inputs through the hooks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from closed_loop.domain.survey import SurveyIndex
from closed_loop.playbook import Playbook, Triggers, normalise

TEXT_TYPES = ("string", "textarea")
# Salesforce fields the pipelines write besides the playbook's mapped ones (domain/plan.py, pipelines)
WRITTEN_STANDARD_FIELDS = {
    "Case": ("Subject", "Description", "Status", "Priority", "Origin", "AccountId", "ContactId", "OwnerId"),
    "Task": ("Subject", "Description", "Status", "Priority", "ActivityDate", "WhatId", "WhoId", "OwnerId"),
}
TASK_PRIORITY_WRITTEN_DIRECTLY = "Normal"  # reminder and data-quality Tasks (pipelines)
FieldSpec = tuple[str, str, tuple[str, ...], str]  # object, field, accepted describe types, role


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        status = "PASS" if self.ok else "FAIL"
        text = f"{status}  {self.name}: {self.detail}"
        return text if self.ok or not self.fix else f"{text} -> fix: {self.fix}"


def _fields(describe: Mapping[str, Any]) -> dict[str, dict]:
    return {f["name"].lower(): f for f in describe.get("fields", [])}


# -- Salesforce fields ------------------------------------------------------------------------------
def field_specs(pb: Playbook) -> list[FieldSpec]:
    """(object, field, accepted describe types, role) for every field the playbook maps or the code writes."""
    sf = pb.salesforce
    specs = [
        ("Account", sf.account.go_live_date, ("date",), "go-live date"),
        ("Account", sf.account.mrr, ("currency", "double", "int", "percent"), "MRR"),
        ("Account", sf.account.tsm_lookup, ("reference",), "TSM lookup to User"),
        ("Account", sf.account.at_risk, ("boolean",), "at-risk flag"),
        ("Contact", sf.contact.ipm_checkbox, ("boolean",), "Implementations/Project Manager checkbox"),
        ("Contact", sf.contact.opted_out, ("boolean",), "email opt-out"),
        ("Case", sf.case.external_id, TEXT_TYPES, "external id (upsert key)"),
        ("Task", sf.task.external_id, TEXT_TYPES, "external id (upsert key)"),
        ("Case", pb.sla.dissatisfied_when.field, ("picklist", "string", "boolean"), "dissatisfied flag"),
    ]
    long_text = {sf.case.root_cause, sf.case.actions_taken, sf.case.outcome, *pb.sla.documentation_fields}
    long_text |= {f for step in pb.steps for f in step.checks_fields}
    specs += [("Case", name, TEXT_TYPES, "documentation field") for name in sorted(long_text)]
    for sobject, names in WRITTEN_STANDARD_FIELDS.items():
        specs += [(sobject, name, (), "written by the pipelines") for name in names]
    seen: set[tuple[str, str]] = set()
    return [s for s in specs if (s[0], s[1].lower()) not in seen and not seen.add((s[0], s[1].lower()))]


def check_fields(pb: Playbook, describes: Mapping[str, Mapping[str, Any]]) -> list[Check]:
    """Every mapped field exists with a usable type; external ids are External ID + unique; the TSM
    lookup's relationship name matches; written fields are createable and updateable."""
    written = _written_fields(pb)
    return [_check_field(pb, spec, describes, written) for spec in field_specs(pb)]


def _written_fields(pb: Playbook) -> set[tuple[str, str]]:
    """(object, lower-case field) of every field the pipelines write: standard ones and the upsert keys."""
    written = {(o, f.lower()) for o, names in WRITTEN_STANDARD_FIELDS.items() for f in names}
    written |= {
        ("Case", pb.salesforce.case.external_id.lower()),
        ("Task", pb.salesforce.task.external_id.lower()),
    }
    return written


def _check_field(
    pb: Playbook,
    spec: FieldSpec,
    describes: Mapping[str, Mapping[str, Any]],
    written: set[tuple[str, str]],
) -> Check:
    """One field spec against its object's describe: missing, its problems, or what was found."""
    sobject, name, _, role = spec
    check = f"salesforce.field {sobject}.{name}"
    field = _fields(describes.get(sobject) or {}).get(name.lower())
    if field is None:
        fix = f"create {sobject}.{name} or map another field in playbook.yaml salesforce:"
        return Check(check, False, f"missing ({role})", fix)
    problems = _field_problems(pb, spec, field, written)
    if not problems:
        return Check(check, True, _field_found(field, role))
    fix = f"fix {sobject}.{name} ({role}) or its mapping in playbook.yaml"
    if problems[0] == "not External ID + Unique":
        fix = f"edit {sobject}.{name}: tick External ID and Unique (they make every upsert idempotent)"
    return Check(check, False, "; ".join(problems), fix)


def _field_problems(
    pb: Playbook, spec: FieldSpec, field: Mapping[str, Any], written: set[tuple[str, str]]
) -> list[str]:
    """What is wrong with a described field for its role: type, External ID + Unique, API access, lookup."""
    sobject, name, types, role = spec
    problems = []
    if types and field.get("type") not in types:
        problems.append(f"type {field.get('type')}, needs {' or '.join(types)}")
    if role.startswith("external id") and not (field.get("externalId") and field.get("unique")):
        problems.append("not External ID + Unique")
    if (sobject, name.lower()) in written and not (field.get("createable") and field.get("updateable")):
        problems.append("not createable/updateable by the API user")
    if role == "TSM lookup to User":
        problems += _tsm_lookup_problems(field, pb.salesforce.account.tsm_relationship)
    return problems


def _tsm_lookup_problems(field: Mapping[str, Any], relationship: str) -> list[str]:
    """The TSM lookup refers to User under the relationship name the playbook's SOQL uses."""
    problems = []
    if "User" not in (field.get("referenceTo") or []):
        problems.append(f"refers to {field.get('referenceTo')}, needs User")
    if (field.get("relationshipName") or "") != relationship:
        problems.append(
            f"relationship name {field.get('relationshipName')!r}, the playbook says {relationship!r}"
        )
    return problems


def _field_found(field: Mapping[str, Any], role: str) -> str:
    """E.g. "string(255), External ID, unique" or "date"."""
    detail = f"{field.get('type')}" + (f"({field.get('length')})" if field.get("length") else "")
    return detail + ", External ID, unique" if role.startswith("external id") else detail


# -- Salesforce picklists ---------------------------------------------------------------------------
def picklist_needs(pb: Playbook) -> dict[tuple[str, str], set[str]]:
    """{(object, field): values the playbook writes or reads}."""
    sf = pb.salesforce
    needs: dict[tuple[str, str], set[str]] = {
        ("Case", "Status"): {sf.case.new_status, sf.case.closed_status},
        ("Case", "Origin"): {sf.case.origin},
        ("Case", "Priority"): {p for row in pb.priority.case.values() for p in row.values()}
        | {pb.sla.case_defaults.priority},
        ("Task", "Status"): {sf.task.open_status, sf.task.completed_status},
        ("Task", "Priority"): set(pb.priority.task.values())
        | {TASK_PRIORITY_WRITTEN_DIRECTLY, pb.sla.escalation_priority}
        | {pb.sla.doc_missing_task.priority, pb.recovery.inform_task.priority},
    }
    when = pb.sla.dissatisfied_when
    needs.setdefault(("Case", when.field), set()).add(when.equals)
    return needs


def check_picklists(pb: Playbook, describes: Mapping[str, Mapping[str, Any]]) -> list[Check]:
    out = []
    for (sobject, name), values in sorted(picklist_needs(pb).items()):
        check = f"salesforce.picklist {sobject}.{name}"
        field = _fields(describes.get(sobject) or {}).get(name.lower())
        if field is None:
            out.append(Check(check, False, "field missing", f"create {sobject}.{name}"))
            continue
        if field.get("type") != "picklist":
            out.append(Check(check, True, f"{field.get('type')} field: any value is accepted"))
            continue
        defined = {p["value"] for p in field.get("picklistValues") or [] if p.get("active", True)}
        missing = sorted(values - defined)
        out.append(
            Check(
                check,
                not missing,
                f"missing {missing}" if missing else f"has {sorted(values)}",
                f"add the active value(s) {missing} to {sobject}.{name} (restricted picklist), or change "
                "playbook.yaml"
                if missing
                else "",
            )
        )
    return out


# -- people -----------------------------------------------------------------------------------------
def check_people(pb: Playbook, users: Iterable[Mapping[str, Any]]) -> list[Check]:
    """Every role user exists and is active; the alert and report addresses are set."""
    by_name = {str(u.get("Username", "")).casefold(): u for u in users}
    out = []
    for role, spec in sorted(pb.people.roles.items()):
        user = by_name.get(spec.username.casefold())
        ok = bool(user) and bool(user.get("IsActive"))
        detail = "active user" if ok else ("inactive user" if user else "no such user")
        out.append(
            Check(
                f"people.role {role}",
                ok,
                f"{spec.username}: {detail}",
                f"activate {spec.username} or set people.roles.{role}.username in playbook.yaml",
            )
        )
    for key in ("leadership_emails", "ops_digest_emails"):
        emails = list(getattr(pb.people, key))
        out.append(
            Check(
                f"people.{key}",
                bool(emails),
                f"{len(emails)} address(es)" if emails else "empty",
                f"list at least one address under people.{key}",
            )
        )
    owner = pb.people.data_quality_owner
    out.append(
        Check(
            "people.data_quality_owner",
            owner in pb.people.roles,
            f"role {owner!r}",
            "set people.data_quality_owner to one of people.roles",
        )
    )
    return out


# -- surveys ----------------------------------------------------------------------------------------
def _texts(index: SurveyIndex) -> tuple[set[str], dict[str, Any]]:
    """(normalised headings and matrix rows, {normalised heading: question})."""
    texts, by_heading = set(), {}
    for q in index.questions.values():
        texts.add(normalise(q.heading))
        by_heading[normalise(q.heading)] = q
        texts |= {normalise(r) for r in q.rows.values()}
    return texts, by_heading


def check_surveys(pb: Playbook, main: SurveyIndex | None, pulse: SurveyIndex | None) -> list[Check]:
    out = [
        Check(
            f"surveymonkey.survey {key}",
            index is not None,
            f"{ref.title!r}" + (f" (id {index.survey_id})" if index else ": not found"),
            f"create the survey titled {ref.title!r} or set surveys.{key}.title/id in playbook.yaml",
        )
        for key, ref, index in (
            ("main", pb.surveys.main, main),
            ("recovery_pulse", pb.surveys.recovery_pulse, pulse),
        )
    ]
    if main is not None:
        out += _check_main(pb, main)
    if pulse is not None:
        out += _check_pulse(pb, pulse)
    return out


def _question_check(name: str, heading: str, by_heading: dict, where: str) -> tuple[Check, Any]:
    q = by_heading.get(normalise(heading))
    return (
        Check(
            name,
            q is not None,
            f"{heading!r}" + ("" if q is not None else f" is not a question of the {where} survey"),
            f"fix the heading in playbook.yaml or in SurveyMonkey ({where} survey)",
        ),
        q,
    )


def _answers_check(name: str, q: Any, answers: Iterable[str]) -> Check:
    choices = {normalise(c) for c in q.choices.values()}
    missing = [a for a in answers if normalise(a) not in choices]
    return Check(
        name,
        not missing,
        f"missing among the choices of {q.heading!r}: {missing}" if missing else "every answer is a choice",
        f"correct the answer text(s) {missing} in playbook.yaml to the survey's exact choice text"
        if missing
        else "",
    )


def _check_main(pb: Playbook, index: SurveyIndex) -> list[Check]:
    """The main survey has every heading, question and answer text the topics and triggers name."""
    texts, by_heading = _texts(index)
    return [
        *_topic_heading_checks(pb, texts),
        *_low_score_checks(pb.triggers, by_heading),
        *_trigger_question_checks(pb.triggers, by_heading),
        *_any_choice_checks(pb.triggers, index),
        _topics_coverage_check(pb, index),
    ]


def _topic_heading_checks(pb: Playbook, texts: set[str]) -> list[Check]:
    """Each heading of topics.by_heading is a question or matrix row of the survey."""
    out = []
    for heading, topic in sorted(pb.topics.by_heading.items()):
        ok = normalise(heading) in texts
        out.append(
            Check(
                "surveymonkey.topic heading",
                ok,
                f"{heading!r} -> {topic}" + ("" if ok else ": no such question or matrix row"),
                "fix topics.by_heading in playbook.yaml to the survey's exact heading/row text",
            )
        )
    return out


def _low_score_checks(t: Triggers, by_heading: dict) -> list[Check]:
    """The score question exists and has one choice per point of the playbook's scale."""
    low, q_low = _question_check("surveymonkey.trigger low_score", t.low_score.question, by_heading, "main")
    if q_low is None:
        return [low]
    points = t.low_score.scale_max - t.low_score.scale_min + 1
    n = len(q_low.choice_positions)
    scale = Check(
        "surveymonkey.trigger low_score scale",
        n == points,
        f"{n} choices for the {t.low_score.scale_min}..{t.low_score.scale_max} scale",
        f"the score question needs exactly {points} choices (scores come from their position)",
    )
    return [low, scale]


def _trigger_question_checks(t: Triggers, by_heading: dict) -> list[Check]:
    """The unresolved-issue and follow-up questions exist with their answers, and the alarming-comment
    questions exist."""
    out = []
    for key in ("unresolved_issue", "follow_up_request"):
        trigger = getattr(t, key)
        found, q = _question_check(f"surveymonkey.trigger {key}", trigger.question, by_heading, "main")
        out.append(found)
        if q is not None:
            out.append(_answers_check(f"surveymonkey.answers {key}", q, trigger.answers))
    for heading in t.alarming_comment.questions:
        out.append(_question_check("surveymonkey.trigger alarming_comment", heading, by_heading, "main")[0])
    return out


def _any_choice_checks(t: Triggers, index: SurveyIndex) -> list[Check]:
    """Negative and neutral-or-worse answer texts are each a choice of some question."""
    all_choices = {normalise(c) for q in index.questions.values() for c in q.choices.values()}
    out = []
    for key, answers in (
        ("negative_answer", [a.text for a in t.negative_answer.answers]),
        ("at_risk", list(t.at_risk.neutral_or_worse_answers)),
    ):
        missing = [a for a in answers if normalise(a) not in all_choices]
        out.append(
            Check(
                f"surveymonkey.answers {key}",
                not missing,
                f"not a choice of any question: {missing}" if missing else f"{len(answers)} answers found",
                f"correct triggers.{key} in playbook.yaml to the survey's exact choice texts (a typo "
                "silently disables the trigger)",
            )
        )
    return out


def _topics_coverage_check(pb: Playbook, index: SurveyIndex) -> Check:
    """Every question (or each row of a matrix) is mapped to a topic or deliberately left to the default."""
    mapped = {normalise(h) for h in pb.topics.by_heading} | {normalise(h) for h in pb.topics.left_to_default}
    unmapped = [
        q.heading
        for q in sorted(index.questions.values(), key=lambda q: q.position)
        if normalise(q.heading) not in mapped
        and not (q.rows and all(normalise(r) in mapped for r in q.rows.values()))
    ]
    return Check(
        "surveymonkey.topics coverage",
        not unmapped,
        f"unmapped questions: {unmapped}" if unmapped else f"all {len(index.questions)} questions mapped",
        "map each question under topics.by_heading or list it under topics.left_to_default",
    )


def _check_pulse(pb: Playbook, index: SurveyIndex) -> list[Check]:
    _, by_heading = _texts(index)
    found, q = _question_check(
        "surveymonkey.recovery satisfaction", pb.recovery.satisfaction_question, by_heading, "pulse"
    )
    out = [found]
    if q is not None:
        out.append(_answers_check("surveymonkey.answers recovery", q, pb.recovery.satisfied_answers))
    return out


# -- messages, scopes, budgets ----------------------------------------------------------------------
def check_messages(problems: Mapping[str, str | None]) -> list[Check]:
    return [
        Check(
            f"surveymonkey.message {kind}",
            problem is None,
            problem or "carries [SurveyLink], [OptOutLink], [PrivacyLink], [FooterLink], labelled links",
            "edit the template under include/templates/ (SurveyMonkey rejects the message with 400 id 1002)",
        )
        for kind, problem in problems.items()
    ]


def check_scopes(required: Mapping[str, str], granted: Iterable[str] | None) -> Check:
    """``required``: {scope: what needs it}; ``granted``: X-OAuth-Scopes-Granted (None: not reported)."""
    if granted is None:
        return Check(
            "surveymonkey.scopes",
            False,
            "the API did not report the granted scopes (X-OAuth-Scopes-Granted)",
            "check the app's scopes in SurveyMonkey My Apps",
        )
    missing = sorted(set(required) - set(granted))
    return Check(
        "surveymonkey.scopes",
        not missing,
        f"missing {[f'{s} ({required[s]})' for s in missing]}" if missing else f"granted {sorted(required)}",
        f"grant {missing} to the app in SurveyMonkey My Apps and issue a new token" if missing else "",
    )


def check_budget(name: str, remaining: int | None, limit: int | None, needed: int) -> Check:
    if remaining is None:
        return Check(name, False, "the API did not report its budget", "check the connection")
    ok = remaining >= needed
    return Check(
        name,
        ok,
        f"{remaining} of {limit} calls left today (a day's runs need about {needed})",
        "wait for the window to reset, raise the limit, or lower the batch sizes",
    )
