"""SLA sweep: keep every follow-up case moving until the loop is closed (no Airflow import).

Four steps, each a plain function over built hooks, the Ledger, the Playbook, a BusinessCalendar and the
run's logical date ``today`` (never the wall clock):

1. ``read_back``: the tracked Cases and not-yet-completed Tasks changed since the last sweep (queryAll by
   ``SystemModstamp``, deletions included) or never read (``Id IN``),
   through Composite; records completions, Case status, closure and documentation in the ledger.
2. ``progress_and_escalate``: creates activated steps (the follow-up, anchored on the acknowledgement's
   completion), escalates each breached step once, escalates a dissatisfied customer once per episode,
   flags an undocumented close once, reminds LPs the business day before a due date, closes documented
   cases. Tasks are created once by the playbook's Task external id (a replay leaves the LP's Status,
   Priority and owner as they are); events and emails are keyed in the ledger.
3. ``send_recovery_pulses``: the recovery pulse survey to the contact of each case closed with docs.
4. ``ops_digest``: one email to ops with the day's breaches, escalations and quarantines (none if empty).

A breach is cadence-independent: a step is breached when its due date is before ``today`` (or before the
documented close) and it was not completed by its due date, so a late completion seen after the fact still
counts once; sweeping daily or every few days yields the same escalations.

The steps live in short modules: ``reading`` (``read_back``), ``plan`` (what to do today),
``sla_events`` (the rows it records), ``escalate`` (``progress_and_escalate``), ``notices`` (the
emails), ``pulses`` (recovery pulses) and ``digest`` (the ops digest); ``common`` holds what they
share. Import from this package.
"""

from __future__ import annotations

from closed_loop.pipeline.sweep.common import email_key, local_date
from closed_loop.pipeline.sweep.digest import ops_digest
from closed_loop.pipeline.sweep.escalate import (
    TASK_EVENT_KINDS,
    SweepWork,
    pending_work,
    progress_and_escalate,
    record_intents,
    sign_plan,
    write_tasks,
)
from closed_loop.pipeline.sweep.notices import NOTICE_KINDS, _notice_key, _owed_notices, owed_since
from closed_loop.pipeline.sweep.plan import PLAN_KINDS, breached, plan_sweep, step_context
from closed_loop.pipeline.sweep.pulses import pulse_collector_name, recovery_key, send_recovery_pulses
from closed_loop.pipeline.sweep.reading import (
    ReadBack,
    apply_read_back,
    case_fields,
    case_soql,
    plan_read_back,
    read_back,
    task_fields,
    task_soql,
)
from closed_loop.pipeline.sweep.sla_events import _doc_missing_event

__all__ = [
    "NOTICE_KINDS",
    "PLAN_KINDS",
    "TASK_EVENT_KINDS",
    "ReadBack",
    "SweepWork",
    "_doc_missing_event",
    "_notice_key",
    "_owed_notices",
    "apply_read_back",
    "breached",
    "case_fields",
    "case_soql",
    "email_key",
    "local_date",
    "ops_digest",
    "owed_since",
    "pending_work",
    "plan_read_back",
    "plan_sweep",
    "progress_and_escalate",
    "pulse_collector_name",
    "read_back",
    "record_intents",
    "recovery_key",
    "send_recovery_pulses",
    "sign_plan",
    "step_context",
    "task_fields",
    "task_soql",
    "write_tasks",
]
