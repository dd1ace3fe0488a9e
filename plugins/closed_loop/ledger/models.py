"""The ledger's tables: what the pipeline synced, sent, received, opened and escalated.

Natural keys are primary keys (or unique), so every write can be an idempotent upsert.
No foreign keys: rows arrive from independent systems and data-quality gaps are quarantined, not rejected.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Index, Integer, MetaData, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, mapped_column

from .types import IsoDate, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

SF_ID = String(18)
KEY = String(255)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _ts(nullable: bool = True, **kw):
    return mapped_column(UTCDateTime(), nullable=nullable, **kw)


class Account(Base):
    __tablename__ = "accounts"
    sf_id = mapped_column(SF_ID, primary_key=True)
    name = mapped_column(String(255))
    go_live_date = mapped_column(IsoDate(), index=True)
    mrr = mapped_column(Numeric(14, 2), nullable=True)
    tsm_user_id = mapped_column(SF_ID)
    tsm_username = mapped_column(String(255))
    at_risk = mapped_column(Boolean, nullable=False, default=False)
    system_modstamp = _ts()
    synced_at = _ts(nullable=False, default=utcnow)


class Contact(Base):
    __tablename__ = "contacts"
    sf_id = mapped_column(SF_ID, primary_key=True)
    account_id = mapped_column(SF_ID, index=True)
    email = mapped_column(String(255))
    first_name = mapped_column(String(255))
    last_name = mapped_column(String(255))
    is_impl_pm = mapped_column(Boolean, nullable=False, default=False)
    opted_out = mapped_column(Boolean, nullable=False, default=False)
    system_modstamp = _ts()
    synced_at = _ts(nullable=False, default=utcnow)


class SurveySend(Base):
    """One survey invitation (or recovery pulse) to one contact; the send_key makes it happen once."""

    __tablename__ = "survey_sends"
    send_key = mapped_column(KEY, primary_key=True)
    kind = mapped_column(String(16), nullable=False)  # invite | recovery
    account_id = mapped_column(SF_ID, index=True)
    contact_id = mapped_column(SF_ID, index=True)
    go_live_date = mapped_column(IsoDate())
    due_date = mapped_column(IsoDate())
    # planned | intent | sent | skipped | bounced | opted_out | invalid | existing
    status = mapped_column(String(16), nullable=False, default="planned")
    reason = mapped_column(Text)
    survey_id = mapped_column(String(64))
    collector_id = mapped_column(String(64))
    message_id = mapped_column(String(64))
    recipient_id = mapped_column(String(64), index=True)
    run_id = mapped_column(String(255))
    intent_at = _ts()
    sent_at = _ts()
    reminder_key = mapped_column(KEY)
    reminder_message_id = mapped_column(String(64))
    reminder_sent_at = _ts()
    lp_reminder_task_id = mapped_column(SF_ID)
    case_key = mapped_column(KEY, index=True)  # recovery pulses: the case they follow up (0003)
    __table_args__ = (Index(None, "status", "due_date"),)


class Response(Base):
    __tablename__ = "responses"
    response_id = mapped_column(String(64), primary_key=True)
    survey_id = mapped_column(String(64))
    collector_id = mapped_column(String(64))
    recipient_id = mapped_column(String(64), index=True)
    send_key = mapped_column(KEY, index=True)
    account_id = mapped_column(SF_ID, index=True)
    contact_id = mapped_column(SF_ID)
    response_status = mapped_column(String(32))
    date_created = _ts()
    date_modified = _ts()
    raw = mapped_column(JSON)
    negative = mapped_column(Boolean, nullable=True)  # null until scored
    severity = mapped_column(String(16))
    topics = mapped_column(JSON)
    scored_at = _ts()
    is_recovery = mapped_column(Boolean, nullable=False, default=False)
    case_key = mapped_column(KEY, index=True)  # for recovery pulses: the case they follow up


class Answer(Base):
    """Flattened answers; replaced wholesale whenever their response is recorded."""

    __tablename__ = "answers"
    id = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id = mapped_column(String(64), nullable=False, index=True)
    question_id = mapped_column(String(64))
    heading = mapped_column(Text)
    row_id = mapped_column(String(64))
    row_text = mapped_column(Text)
    choice_id = mapped_column(String(64))
    choice_text = mapped_column(Text)
    other_text = mapped_column(Text)
    text = mapped_column(Text)
    topic = mapped_column(String(64))


class Trigger(Base):
    """Scoring rules that fired for a response; replaced whenever the response is recorded."""

    __tablename__ = "triggers"
    id = mapped_column(Integer, primary_key=True, autoincrement=True)
    response_id = mapped_column(String(64), nullable=False, index=True)
    kind = mapped_column(String(32), nullable=False)
    question_id = mapped_column(String(64))
    heading = mapped_column(Text)
    row = mapped_column(Text)
    answer = mapped_column(Text)
    rule = mapped_column(Text)
    severity = mapped_column(String(16))


class Case(Base):
    """A follow-up case; case_key is the response id (also the Case's external id in Salesforce)."""

    __tablename__ = "cases"
    case_key = mapped_column(KEY, primary_key=True)
    sf_case_id = mapped_column(SF_ID, unique=True)
    account_id = mapped_column(SF_ID, index=True)
    contact_id = mapped_column(SF_ID)
    lp_role = mapped_column(String(64))
    lp_username = mapped_column(String(255))
    tier = mapped_column(String(32))
    channel = mapped_column(String(32))
    severity = mapped_column(String(16))
    priority = mapped_column(String(16))
    topics = mapped_column(JSON)
    status = mapped_column(String(32), nullable=False, default="planned")  # planned | open | closed
    opened_at = _ts()
    sf_status = mapped_column(String(64))
    dissatisfied = mapped_column(Boolean, nullable=False, default=False)
    closed_at = _ts()
    root_cause = mapped_column(Text)
    actions_taken = mapped_column(Text)
    outcome = mapped_column(Text)
    doc_missing_flagged_at = _ts()
    created_at = _ts(nullable=False, default=utcnow)
    # 0003 (sla sweep): read back from Salesforce. sf_dissatisfied mirrors the playbook's
    # sla.dissatisfied_when; ``dissatisfied`` above marks an escalated (open) dissatisfaction episode.
    account_name = mapped_column(String(255))
    sf_dissatisfied = mapped_column(Boolean, nullable=True)
    sf_closed = mapped_column(Boolean, nullable=True)
    sf_documented = mapped_column(Boolean, nullable=True)
    # The CasePlan as written to Salesforce (case fields, step Task fields, step context), so a retry
    # sends exactly the same records without re-scoring (added by migration 0002).
    plan = mapped_column(JSON, nullable=True)


class CaseStep(Base):
    """One SOP step of a case, as a Salesforce Task; step_key = "<response_id>:<step>"."""

    __tablename__ = "case_steps"
    step_key = mapped_column(KEY, primary_key=True)
    case_key = mapped_column(KEY, nullable=False, index=True)
    step = mapped_column(String(64), nullable=False)
    sf_task_id = mapped_column(SF_ID, unique=True)
    owner_username = mapped_column(String(255))
    owner_role = mapped_column(String(64))
    due_date = mapped_column(IsoDate())
    status = mapped_column(String(16), nullable=False, default="planned")  # planned | created | completed
    created_at = _ts()
    completed_at = _ts()
    sf_status = mapped_column(String(64))


class SlaEvent(Base):
    """Breaches, escalations, reminders, dissatisfaction and documentation flags, each once per key."""

    __tablename__ = "sla_events"
    event_key = mapped_column(KEY, primary_key=True)
    case_key = mapped_column(KEY, index=True)
    step_key = mapped_column(KEY)
    kind = mapped_column(String(32), nullable=False)
    occurred_on = mapped_column(IsoDate(), index=True)
    details = mapped_column(JSON)
    sf_task_id = mapped_column(SF_ID)
    created_at = _ts(nullable=False, default=utcnow)


class Email(Base):
    __tablename__ = "emails"
    email_key = mapped_column(KEY, primary_key=True)
    kind = mapped_column(String(32), nullable=False)
    to = mapped_column(JSON)
    subject = mapped_column(Text)
    status = mapped_column(String(16), nullable=False, default="intent")  # intent | sent
    sent_at = _ts()
    run_id = mapped_column(String(255))
    created_at = _ts(nullable=False, default=utcnow)


class Quarantine(Base):
    __tablename__ = "quarantine"
    q_key = mapped_column(KEY, primary_key=True)
    source = mapped_column(String(64), nullable=False)
    record_id = mapped_column(String(255))
    reason = mapped_column(Text, nullable=False)
    payload = mapped_column(JSON)
    created_at = _ts(nullable=False, default=utcnow)
    resolved_at = _ts()
    reported_at = _ts()


class Watermark(Base):
    __tablename__ = "watermarks"
    name = mapped_column(String(128), primary_key=True)
    value = mapped_column(String(255), nullable=False)
    updated_at = _ts(nullable=False, default=utcnow)


class SurveyDetails(Base):
    """The /details document intake last read per survey, with the survey's date_modified then: read
    again only when the surveys list shows another date_modified."""

    __tablename__ = "survey_details"
    survey_id = mapped_column(String(64), primary_key=True)
    date_modified = mapped_column(String(64), nullable=True)
    details = mapped_column(JSON, nullable=False)
    fetched_at = _ts(nullable=False, default=utcnow)


class ApiUsage(Base):
    """API calls per run and external system (salesforce | surveymonkey)."""

    __tablename__ = "api_usage"
    run_id = mapped_column(String(255), primary_key=True)
    system = mapped_column(String(32), primary_key=True)
    calls = mapped_column(Integer, nullable=False, default=0)
    recorded_at = _ts(nullable=False, default=utcnow)


TABLES = {mapper.class_.__tablename__: mapper.class_ for mapper in Base.registry.mappers}
