"""survey_dispatch operators: templated fields, hooks built only in execute, small JSON-safe XComs."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from closed_loop.operators.dispatch import (
    SalesforceGoLiveSyncOperator,
    SurveyMonkeySendInvitesOperator,
    SurveyMonkeySendRemindersOperator,
)

DAY = dt.datetime(2026, 7, 1, 14, tzinfo=dt.UTC)


def context(day: dt.datetime = DAY, run_id: str = "scheduled__2026-07-01") -> dict:
    return {"logical_date": day, "data_interval_end": day, "run_id": run_id}


@pytest.mark.parametrize(
    ("cls", "fields"),
    [
        (SalesforceGoLiveSyncOperator, {"dry_run", "playbook_path", "salesforce_conn_id"}),
        (SurveyMonkeySendInvitesOperator, {"dry_run", "playbook_path", "surveymonkey_conn_id"}),
        (SurveyMonkeySendRemindersOperator, {"dry_run", "surveymonkey_conn_id", "salesforce_conn_id"}),
    ],
)
def test_template_fields_and_no_hook_in_init(cls, fields, monkeypatch):
    import closed_loop.hooks as hooks

    def no_hooks(*a, **k):
        raise AssertionError("hook built at construction")

    monkeypatch.setattr(hooks, "ClosedLoopSalesforceHook", no_hooks)
    monkeypatch.setattr(hooks, "SurveyMonkeyHook", no_hooks)
    op = cls(task_id="t")
    assert fields <= set(op.template_fields)
    assert op.dry_run == "{{ params.dry_run }}"


def test_operators_run_a_day_and_rerun_sends_nothing(stack):
    with stack.connections():
        sync = SalesforceGoLiveSyncOperator(task_id="sync_go_lives", dry_run=False)
        invites = SurveyMonkeySendInvitesOperator(task_id="send_invites", dry_run=False)
        reminders = SurveyMonkeySendRemindersOperator(task_id="send_reminders", dry_run=False)
        synced = sync.execute(context())
        # Accounts and Contacts: two queries in one Composite request, one API call (REST API guide)
        assert synced["accounts"] > 0 and synced["api_calls"] == 1
        sent = invites.execute(context())
        assert sent["sent"] > 0 and sent["carried_over"] == 0
        json.dumps([synced, sent])  # XCom-safe
        assert reminders.execute(context())["reminded"] == 0  # too early
        # retry of the same day: nothing new
        assert invites.execute(context(run_id="manual__retry"))["sent"] == 0
        # five days later the batch's non-responders get one reminder
        stack.sandbox.admin("POST", "clock", {"now": "2026-07-06T14:00:00Z"})
        later = DAY + dt.timedelta(days=5)
        out = reminders.execute(context(later, "scheduled__2026-07-06"))
        json.dumps(out)
        assert out["batches"] == 1 and out["reminded"] > 0 and out["lp_tasks"] == out["reminded"]
        assert reminders.execute(context(later, "manual__rerun"))["reminded"] == 0
    usage = stack.ledger.read_frame("api_usage") if hasattr(stack.ledger, "read_frame") else None
    if usage is not None:
        assert set(usage["run_id"]) >= {
            "scheduled__2026-07-01:sync_go_lives",
            "scheduled__2026-07-01:send_invites",
        }


def test_dry_run_operator_writes_nothing(stack):
    with stack.connections():
        out = SalesforceGoLiveSyncOperator(task_id="s", dry_run="True").execute(context())
        assert out["accounts"] > 0
        assert SurveyMonkeySendInvitesOperator(task_id="i", dry_run=True).execute(context())["sent"] == 0
    assert stack.ledger.get_watermark("survey_dispatch.accounts.system_modstamp") is None
    assert stack.sandbox.admin("GET", "messages") == []
