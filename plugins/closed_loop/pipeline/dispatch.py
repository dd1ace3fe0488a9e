"""survey_dispatch: sync go-lives from Salesforce, send the post-implementation survey once, remind once.

Three steps, each a plain function on already-built hooks, the Ledger, the Playbook and ``today`` (the run's
logical date; never the wall clock):

- ``sync_go_lives`` (dispatch_sync): one incremental paged SOQL per object (Account, flagged Contact),
  upserted with its watermark in the same transaction.
- ``send_invites`` (dispatch_invites): plan (``plan_invites``, pure, dispatch_plan), then one SurveyMonkey
  email collector per batch (logical date) and one invite message: claim intents (send_key -> message id)
  before adding recipients, add them in bulk, send, record (``complete_message``, dispatch_send). A rerun
  or retry reconciles intents against the message before doing anything else.
- ``send_reminders`` (dispatch_reminders): once per batch collector, to its non-responders, claimed before
  the message is made; optionally a Salesforce Task asking the account's Lead Person to remind the biller.

This module is the step's public face: the operators, the sweep (recovery pulses) and the tests import from
here.
"""

from __future__ import annotations

from closed_loop.pipeline.dispatch_invites import batch_name, send_invites
from closed_loop.pipeline.dispatch_plan import (
    Decision,
    apply_plan,
    invite_key,
    plan_from_ledger,
    plan_invites,
)
from closed_loop.pipeline.dispatch_reminders import (
    NO_REMINDER,
    NOT_RESPONDED,
    create_lp_reminder_tasks,
    reminder_key,
    send_reminders,
)
from closed_loop.pipeline.dispatch_send import BULK_CHUNK, complete_message
from closed_loop.pipeline.dispatch_sync import (
    ACCOUNT_WATERMARK,
    CONTACT_WATERMARK,
    account_soql,
    contact_soql,
    sync_go_lives,
    sync_horizon,
)

_NO_REMINDER = NO_REMINDER  # the name the tests and older callers use

__all__ = [
    "ACCOUNT_WATERMARK",
    "BULK_CHUNK",
    "CONTACT_WATERMARK",
    "NOT_RESPONDED",
    "NO_REMINDER",
    "Decision",
    "account_soql",
    "apply_plan",
    "batch_name",
    "complete_message",
    "contact_soql",
    "create_lp_reminder_tasks",
    "invite_key",
    "plan_from_ledger",
    "plan_invites",
    "reminder_key",
    "send_invites",
    "send_reminders",
    "sync_go_lives",
    "sync_horizon",
]
