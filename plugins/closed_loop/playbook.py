"""The playbook: every business rule of the SOP and the article as validated data (include/playbook.yaml).

``load_playbook()`` reads the YAML, validates it with pydantic and raises ``PlaybookError`` naming the
dotted key path and the bad value. ``Playbook.model_dump()`` round-trips through ``dump_playbook``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import re2
import yaml
from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "include" / "playbook.yaml"
ENV_VAR = "CLOSED_LOOP_PLAYBOOK"

Severity = Literal["high", "medium", "low"]
SEVERITY_RANK: dict[str, int] = {"low": 1, "medium": 2, "high": 3}
TOPICS = ("implementation", "marketing", "product_support")
Topic = Literal["implementation", "marketing", "product_support"]
CasePriority = Literal["High", "Medium", "Low"]
TaskPriority = Literal["High", "Normal", "Low"]
Anchor = Literal["response_received", "case_opened", "acknowledge_completed", "condition_met"]
CONDITIONS = ("dissatisfied", "overdue")

_NAME = r"^[a-z][a-z0-9_]*$"
_SF_FIELD = r"^[A-Za-z][A-Za-z0-9_]*$"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
Name = Annotated[str, Field(pattern=_NAME)]
SfField = Annotated[str, Field(pattern=_SF_FIELD, max_length=80)]
Email = Annotated[str, Field(pattern=_EMAIL)]
NonEmpty = Annotated[str, Field(min_length=1)]
# One line of text: it ends up in email headers, Task Subjects and SOQL-free labels (no CR/LF, bounded).
Line = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\r\n\x00]+$")]
MAX_BYTES = 1_000_000  # the shipped playbook is ~12 kB; a bigger file is a mistake, not a playbook
MAX_DAYS = 366  # no business rule waits longer than a year


class PlaybookError(ValueError):
    """The playbook file is missing, not YAML, or holds a bad value (message names key and value)."""


# Typographic quotes and dashes (phones type them by default) -> their ASCII forms.
_TYPOGRAPHY = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u00b4\u0060", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
    }
)


def fold_typography(text: str) -> str:
    """Unicode NFKC with typographic quotes and dashes folded to ASCII (case and spacing kept)."""
    return unicodedata.normalize("NFKC", str(text)).translate(_TYPOGRAPHY)


def normalise(text: str) -> str:
    """The one form used for every text match (choices, headings, Other texts, comments): NFKC,
    typographic quotes/dashes folded, every whitespace run (line breaks too) one space, case folded."""
    return re.sub(r"\s+", " ", fold_typography(text)).strip().casefold()


def compile_pattern(value: str):
    """Case-insensitive RE2 pattern: linear time in the text, so no comment can stall scoring (ReDoS)."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    return re2.compile(value, options)


def _regex(value: str) -> str:
    try:
        re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from exc
    try:
        compile_pattern(value)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"not supported by the linear-time (RE2) engine: {detail}") from exc
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown IANA time zone") from exc
    return value


def _cron(value: str) -> str:
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError("not a valid five-field cron expression")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- company, people, surveys -------------------------------------------------------------------------


class Company(_Model):
    name: Line
    team_name: Line
    support_email: Email


class Role(_Model):
    username: Email
    title: Line


class People(_Model):
    roles: dict[Name, Role]
    data_quality_owner: Name
    leadership_emails: list[Email] = Field(min_length=1)
    ops_digest_emails: list[Email] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_roles(self) -> People:
        for needed in ("doi", "ms", "management", self.data_quality_owner):
            if needed not in self.roles:
                raise ValueError(f"people.roles must define role {needed!r}")
        return self


class SurveyRef(_Model):
    title: Line
    id: str | None = None
    link: str | None = None  # the survey's public link (what an LP sends a biller who lost the email)


class Surveys(_Model):
    main: SurveyRef
    recovery_pulse: SurveyRef

    @model_validator(mode="after")
    def _distinct(self) -> Surveys:
        if normalise(self.main.title) == normalise(self.recovery_pulse.title):
            raise ValueError(
                f"main and recovery_pulse have the same title {self.main.title!r}: "
                "responses would be read from the wrong survey"
            )
        return self


# --- triggers -----------------------------------------------------------------------------------------


class NegativeAnswerText(_Model):
    text: NonEmpty
    severity: Severity


class NegativeAnswerTrigger(_Model):
    enabled: bool = True
    answers: list[NegativeAnswerText] = Field(min_length=1)


class ScoreBand(_Model):
    at_or_below: int = Field(ge=-1000, le=1000)
    severity: Severity


class LowScoreTrigger(_Model):
    enabled: bool = True
    question: NonEmpty
    scale_min: int = Field(default=0, ge=-1000, le=1000)
    scale_max: int = Field(default=10, ge=-1000, le=1000)
    bands: list[ScoreBand] = Field(min_length=1)

    @model_validator(mode="after")
    def _bands_in_scale(self) -> LowScoreTrigger:
        if self.scale_min >= self.scale_max:
            raise ValueError(f"scale_min {self.scale_min} must be below scale_max {self.scale_max}")
        for band in self.bands:
            if not self.scale_min <= band.at_or_below <= self.scale_max:
                raise ValueError(f"band at_or_below {band.at_or_below} is outside the scale")
        return self


class AtRiskTrigger(_Model):
    enabled: bool = True
    severity: Severity = "high"
    neutral_or_worse_answers: list[NonEmpty] = Field(min_length=1)
    score_at_or_below: int | None = Field(default=None, ge=-1000, le=1000)


class ChoiceQuestionTrigger(_Model):
    enabled: bool = True
    question: NonEmpty
    answers: list[NonEmpty] = Field(min_length=1)
    severity: Severity


class AlarmingCommentTrigger(_Model):
    enabled: bool = True
    severity: Severity = "high"
    questions: list[NonEmpty] = Field(default_factory=list)
    include_other_text: bool = True
    patterns: list[Annotated[str, Field(min_length=1), AfterValidator(_regex)]] = Field(min_length=1)


class Triggers(_Model):
    negative_answer: NegativeAnswerTrigger
    low_score: LowScoreTrigger
    at_risk: AtRiskTrigger
    unresolved_issue: ChoiceQuestionTrigger
    follow_up_request: ChoiceQuestionTrigger
    alarming_comment: AlarmingCommentTrigger


# --- topics, routing, tiers, priority -----------------------------------------------------------------


class Topics(_Model):
    default_topic: Topic
    by_heading: dict[NonEmpty, Topic]
    audience: dict[Topic, list[Name]]
    left_to_default: list[NonEmpty] = Field(default_factory=list)  # questions deliberately unmapped

    @model_validator(mode="after")
    def _every_topic_has_audience(self) -> Topics:
        missing = [t for t in TOPICS if not self.audience.get(t)]
        if missing:
            raise ValueError(f"topics.audience needs at least one role for {missing}")
        return self


class Fallback(_Model):
    role: Name
    flag: Name


class Routing(_Model):
    mrr_threshold: Decimal = Field(ge=0, le=10**9)
    comparison: Literal["gt", "gte"] = "gt"
    above_threshold: Literal["tsm"] = "tsm"
    otherwise: Name = "doi"
    missing_mrr: Fallback
    missing_tsm: Fallback
    unparseable_mrr_flag: Name = "mrr_unparseable"
    # A role user (DOI, MS...) who is inactive in Salesforce hands their part to this role, flagged.
    inactive_user: Fallback = Fallback(role="management", flag="role_inactive")

    def above(self, mrr: Decimal) -> bool:
        return mrr > self.mrr_threshold if self.comparison == "gt" else mrr >= self.mrr_threshold


class TierBand(_Model):
    name: Name
    channel: Literal["phone_call_now", "personalised_email", "standard_email"]
    min_mrr: Decimal | None = Field(default=None, ge=0, le=10**9)
    min_inclusive: bool = True

    def contains(self, mrr: Decimal) -> bool:
        if self.min_mrr is None:
            return True
        return mrr >= self.min_mrr if self.min_inclusive else mrr > self.min_mrr


class Tiers(_Model):
    bands: list[TierBand] = Field(min_length=1)
    missing_mrr_tier: Name

    @model_validator(mode="after")
    def _catch_all_and_known(self) -> Tiers:
        names = [b.name for b in self.bands]
        if len(set(names)) != len(names):
            raise ValueError(f"tiers.bands names must be unique, got {names}")
        if self.bands[-1].min_mrr is not None:
            raise ValueError("the last tier band must have min_mrr null (it catches every other MRR)")
        if self.missing_mrr_tier not in names:
            raise ValueError(f"tiers.missing_mrr_tier {self.missing_mrr_tier!r} is not one of {names}")
        return self

    def band_for(self, mrr: Decimal | None) -> TierBand:
        if mrr is None:
            return next(b for b in self.bands if b.name == self.missing_mrr_tier)
        return next(b for b in self.bands if b.contains(mrr))


class Priority(_Model):
    case: dict[Severity, dict[Name, CasePriority]]
    task: dict[CasePriority, TaskPriority]


# --- steps --------------------------------------------------------------------------------------------


WindowUnit = Literal["business_days", "calendar_days", "weeks"]


class Window(_Model):
    min: int | None = Field(default=None, ge=0, le=MAX_DAYS)
    max: int = Field(ge=0, le=MAX_DAYS)
    unit: WindowUnit = "business_days"

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.min is not None and self.min > self.max:
            raise ValueError(f"window min {self.min} is after max {self.max}")
        return self


_ACTIVATION = r"^(on_open|on_complete_of:[a-z][a-z0-9_]*|on_condition:[a-z_]+(,[a-z_]+)*)$"


class Step(_Model):
    key: Name
    title: Line
    owner: Name
    window: Window
    anchor: Anchor
    activation: Annotated[str, Field(pattern=_ACTIVATION)]
    template: str | None = None
    description: NonEmpty
    variants: dict[Name, Line] = Field(default_factory=dict)
    checks_fields: list[SfField] = Field(default_factory=list)
    summary_to: list[Name] = Field(default_factory=list)  # roles who receive the issue summary

    @property
    def activation_kind(self) -> str:
        return self.activation.split(":", 1)[0]

    @property
    def activation_args(self) -> tuple[str, ...]:
        _, _, rest = self.activation.partition(":")
        return tuple(rest.split(",")) if rest else ()


# --- calendar, dispatch, intake, sla, recovery, salesforce -------------------------------------------


class Calendar(_Model):
    country: NonEmpty
    subdiv: str | None = None
    timezone: Annotated[str, AfterValidator(_timezone)] = "America/New_York"
    closures: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_country(self) -> Calendar:
        try:
            holidays.country_holidays(self.country, subdiv=self.subdiv, years=[])
        except NotImplementedError as exc:
            raise ValueError(f"holidays has no calendar for country {self.country!r}: {exc}") from exc
        return self


class Dispatch(_Model):
    survey_delay_days: int = Field(ge=0, le=MAX_DAYS)
    catch_up_window_days: int = Field(ge=0, le=MAX_DAYS)
    reminder_delay_days: int = Field(ge=1, le=MAX_DAYS)
    reminder_window_days: int = Field(default=14, ge=0, le=MAX_DAYS)  # no reminder for older invites
    resurvey_quarantine_days: int = Field(ge=0, le=5 * MAX_DAYS)
    hold_while_open_case: bool = True
    lp_reminder_task: bool = True


class Intake(_Model):
    schedule: Annotated[str, AfterValidator(_cron)]
    reconcile_schedule: Annotated[str, AfterValidator(_cron)] = "0 * * * *"
    watermark_overlap_minutes: int = Field(ge=0, le=24 * 60)
    # A partial response with a negative answer that is still not completed this long after it was
    # last changed is treated as final (SOP: "any question that receives ...") and opens its Case.
    partial_grace_hours: int = Field(default=48, ge=0, le=24 * MAX_DAYS)


class FieldEquals(_Model):
    field: SfField
    equals: NonEmpty


class EscalationOwners(_Model):
    dissatisfied: Name
    overdue: dict[Name, Name]
    fallback: Name


class FlagTask(_Model):
    """A Task the sweep gives the lead to fix something (e.g. a case closed without documentation)."""

    due_business_days: int = Field(default=2, ge=0, le=MAX_DAYS)
    priority: NonEmpty = "High"


class CaseDefaults(_Model):
    """What the sweep assumes for a ledger case recorded without these values (intake always records
    them; seeded history or a hand-made row may not)."""

    lp_role: Name = "doi"
    channel: Name = "personalised_email"
    severity: Severity = "medium"
    priority: CasePriority = "Medium"


class Sla(_Model):
    pre_due_reminder: bool = True
    pre_due_reminder_business_days: int = Field(default=1, ge=0, le=MAX_DAYS)
    dissatisfied_when: FieldEquals
    documentation_fields: list[SfField] = Field(min_length=1)
    escalation_owners: EscalationOwners
    escalation_priority: NonEmpty = "High"  # Task priority of every escalation
    doc_missing_task: FlagTask = Field(default_factory=FlagTask)
    # Cases closed within this many days are still read back: a reopen (or "Still Dissatisfied") is
    # the SOP's "remains dissatisfied" and escalates; Tasks completed after the close are recorded.
    reopen_lookback_days: int = Field(default=30, ge=0, le=MAX_DAYS)
    # A notice the mail server did not take stays owed (retried by every sweep, listed in the digest)
    # for this many days after its event, then expires.
    notice_expiry_days: int = Field(default=5, ge=0, le=MAX_DAYS)
    case_defaults: CaseDefaults = Field(default_factory=CaseDefaults)


class Recovery(_Model):
    send_on_close: bool = True
    satisfaction_question: NonEmpty = "How satisfied are you with how we handled your feedback?"
    satisfied_answers: list[NonEmpty] = Field(default_factory=lambda: ["Very satisfied", "Satisfied"])
    # SOP 6.1 "if the customer remains dissatisfied, escalate": a pulse answer that is negative.
    dissatisfied_answers: list[NonEmpty] = Field(
        default_factory=lambda: ["Dissatisfied", "Very dissatisfied"]
    )
    score_question: NonEmpty = "How likely are you to recommend us to a colleague?"
    score_at_or_below: int | None = 6  # a pulse recommend score at or below this is negative too
    # intake polls the pulse survey only while a pulse sent within this many days is unanswered (each
    # poll is a SurveyMonkey call every intake run); later answers are picked up with the next pulse
    answer_window_days: int = Field(14, ge=1, le=90)
    # closes older than this never get a pulse (e.g. when send_on_close is switched on later)
    pulse_lookback_days: int = Field(30, ge=1, le=MAX_DAYS)
    # SOP 6.2: after a negative pulse escalates, the LP's Task to keep the customer informed
    inform_task: FlagTask = Field(default_factory=FlagTask)


class Report(_Model):
    """The quarterly report's choices: which triggers rank as negative feedback, topic display names, and
    the smallest quarter a headline change may be compared with."""

    min_responses_to_compare: int = Field(default=10, ge=1)
    negative_trigger_kinds: list[Name] = Field(
        default_factory=lambda: ["negative_answer", "low_score", "unresolved_issue", "alarming_comment"]
    )
    separate_trigger_kinds: list[Name] = Field(default_factory=lambda: ["follow_up_request", "at_risk"])
    topic_names: dict[Name, NonEmpty] = Field(default_factory=dict)


class AccountFields(_Model):
    go_live_date: SfField
    mrr: SfField
    tsm_lookup: SfField
    tsm_relationship: SfField
    at_risk: SfField


class ContactFields(_Model):
    ipm_checkbox: SfField
    opted_out: SfField


class CaseFields(_Model):
    external_id: SfField
    origin: NonEmpty
    new_status: NonEmpty
    closed_status: NonEmpty
    root_cause: SfField
    actions_taken: SfField
    outcome: SfField


class TaskFields(_Model):
    external_id: SfField
    open_status: NonEmpty
    completed_status: NonEmpty


class Salesforce(_Model):
    account: AccountFields
    contact: ContactFields
    case: CaseFields
    task: TaskFields
    # fields a replayed create (a rerun after a crash, a ledger restored from backup) leaves as they are
    # on a record that already exists: the LP's status, priority and ownership are never reset
    kept_on_replay: list[SfField] = Field(default_factory=lambda: ["Status", "Priority", "OwnerId"])


# --- the whole playbook -------------------------------------------------------------------------------


class Playbook(_Model):
    version: Literal[1]
    company: Company
    people: People
    surveys: Surveys
    triggers: Triggers
    topics: Topics
    routing: Routing
    tiers: Tiers
    priority: Priority
    steps: list[Step] = Field(min_length=1)
    calendar: Calendar
    dispatch: Dispatch
    intake: Intake
    sla: Sla
    recovery: Recovery
    salesforce: Salesforce
    report: Report = Report()

    @model_validator(mode="after")
    def _cross_references(self) -> Playbook:
        """Names used across sections exist: step keys and activations, roles, priority tiers."""
        roles = set(self.people.roles) | {"lp"}
        self._check_steps(roles)
        for where, role in self._role_uses():
            if role not in roles:
                raise ValueError(f"{where}: unknown role {role!r}")
        self._check_priorities()
        return self

    def _check_steps(self, roles: set[str]) -> None:
        """Step keys are unique, owners are roles, activations name known steps/conditions and no cycle."""
        keys = [s.key for s in self.steps]
        if len(set(keys)) != len(keys):
            raise ValueError(f"steps: keys must be unique, got {keys}")
        for i, step in enumerate(self.steps):
            if step.owner not in roles:
                raise ValueError(f"steps[{i}].owner: unknown role {step.owner!r} (roles: {sorted(roles)})")
            known = keys if step.activation_kind == "on_complete_of" else CONDITIONS
            for arg in step.activation_args:
                if arg not in known:
                    raise ValueError(f"steps[{i}].activation: unknown {arg!r} in {step.activation!r}")
        for i, step in enumerate(self.steps):
            if step.activation_kind == "on_complete_of" and _waits_on_itself(step.key, self.steps):
                raise ValueError(
                    f"steps[{i}].activation: {step.key!r} waits on its own completion "
                    f"({step.activation!r}), so it is never created"
                )

    def _role_uses(self) -> Iterator[tuple[str, str]]:
        """(where, role) for every role named outside the steps' owners, in the order they are checked."""
        for topic, audience in self.topics.audience.items():
            yield from ((f"topics.audience.{topic}", role) for role in audience)
        routing = self.routing
        for role in (routing.otherwise, routing.missing_mrr.role, routing.missing_tsm.role,
                     routing.inactive_user.role, *(r for s in self.steps for r in s.summary_to)):  # fmt: skip
            yield "routing", role
        owners = self.sla.escalation_owners
        for role in [owners.dissatisfied, owners.fallback, *owners.overdue.values()]:
            yield "sla.escalation_owners", role
        yield "sla.case_defaults.lp_role", self.sla.case_defaults.lp_role

    def _check_priorities(self) -> None:
        """Each severity's Case priorities name exactly the tiers; Task priorities cover High/Medium/Low."""
        tiers = {b.name for b in self.tiers.bands}
        for severity in SEVERITY_RANK:
            row = self.priority.case.get(severity, {})  # type: ignore[call-overload]
            if set(row) != tiers:
                raise ValueError(f"priority.case.{severity} must name exactly the tiers {sorted(tiers)}")
        if set(self.priority.task) != {"High", "Medium", "Low"}:
            raise ValueError("priority.task must map each of High, Medium, Low")
        channels = {b.channel for b in self.tiers.bands}
        if self.sla.case_defaults.channel not in channels:
            raise ValueError(
                f"sla.case_defaults.channel: unknown channel {self.sla.case_defaults.channel!r} "
                f"(the tiers' channels: {sorted(channels)})"
            )

    def step(self, key: str) -> Step:
        """The step named ``key`` (KeyError when absent)."""
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)

    def username(self, role: str) -> str:
        """Salesforce username of a fixed role (doi, ms, management, ops...)."""
        return self.people.roles[role].username


def _waits_on_itself(key: str, steps: list[Step]) -> bool:
    """True when ``key``'s on_complete_of chain leads back to ``key`` (itself or a cycle)."""
    after = {s.key: s.activation_args for s in steps if s.activation_kind == "on_complete_of"}
    seen, todo = set(), list(after.get(key, ()))
    while todo:
        current = todo.pop()
        if current == key:
            return True
        if current not in seen:
            seen.add(current)
            todo.extend(after.get(current, ()))
    return False


# --- load / dump --------------------------------------------------------------------------------------


def _path_of(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _describe(error: Mapping[str, Any]) -> str:
    msg = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    where = _path_of(tuple(error["loc"]))
    if isinstance(value, Mapping | list | BaseModel) or error["type"] == "missing":
        return f"{where}: {msg}"
    return f"{where}: {msg} (got {value!r})"


def parse_playbook(data: Any, source: str = "<data>") -> Playbook:
    """Validate already-parsed YAML/dict data into a Playbook."""
    try:
        return Playbook.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise PlaybookError(f"invalid playbook {source}:\n  {lines}") from exc


def default_path() -> Path:
    """$CLOSED_LOOP_PLAYBOOK, else include/playbook.yaml of this repository."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_PATH)


def _duplicate_keys(node: yaml.Node, where: str = "") -> list[str]:
    """Dotted paths of keys given twice in one mapping (YAML would silently keep the last one)."""
    found: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node)
            path = f"{where}.{key}" if where else str(key)
            if key in seen:
                found.append(f"{path} (line {key_node.start_mark.line + 1})")
            seen.add(key)
            found += _duplicate_keys(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, f"{where}[{i}]")
    return found


def load_playbook(path: str | os.PathLike[str] | None = None) -> Playbook:
    """Read and validate the playbook; raise PlaybookError on any problem."""
    path = Path(path) if path is not None else default_path()
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise PlaybookError(f"playbook {path} is {size:,} bytes; the limit is {MAX_BYTES:,}")
        text = path.read_text(encoding="utf-8")
        duplicates = _duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
        if duplicates:
            twice = ", ".join(duplicates)
            raise PlaybookError(f"playbook {path} gives a key twice (the last would win): {twice}")
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise PlaybookError(f"cannot read playbook {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PlaybookError(f"playbook {path} is not valid YAML: {exc}") from exc
    return parse_playbook(data, str(path))


def dump_playbook(playbook: Playbook) -> str:
    """YAML text that ``load_playbook`` reads back into an equal Playbook (comments are not kept)."""
    return yaml.safe_dump(playbook.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
