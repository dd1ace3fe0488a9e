"""response_intake operators: templated fields, hooks built only in execute, small JSON-safe XComs,
the asset event only when something was ingested, dry run writes nothing."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

import pytest

from closed_loop.operators.intake import (
    RESPONSES_ALIAS,
    RESPONSES_ASSET,
    IngestResponsesOperator,
    OpenCasesOperator,
)
from tests.integration.test_intake_pipeline import sandbox_state, survey_cases, survey_tasks, surveyed

DAY = dt.datetime(2026, 7, 10, 12, tzinfo=dt.UTC)


class _Events:
    """Stand-in for Airflow's outlet event accessor: records ``.add(asset, extra)`` calls."""

    def __init__(self):
        self.added = []

    def add(self, asset, extra=None):
        self.added.append((asset, extra))


def context(run_id: str = "scheduled__2026-07-10T12:00:00+00:00") -> dict:
    return {"logical_date": DAY, "data_interval_end": DAY, "run_id": run_id,
            "outlet_events": defaultdict(_Events)}  # fmt: skip


@pytest.mark.parametrize(
    ("cls", "field"),
    [(IngestResponsesOperator, "surveymonkey_conn_id"), (OpenCasesOperator, "salesforce_conn_id")],
)
def test_template_fields_and_no_hook_in_init(cls, field, monkeypatch):
    import closed_loop.hooks as hooks

    def no_hooks(*a, **k):
        raise AssertionError("hook built at construction")

    monkeypatch.setattr(hooks, "ClosedLoopSalesforceHook", no_hooks)
    monkeypatch.setattr(hooks, "SurveyMonkeyHook", no_hooks)
    op = cls(task_id="t")
    assert {"dry_run", "playbook_path", field} <= set(op.template_fields)
    assert op.dry_run == "{{ params.dry_run }}"


def test_ingest_declares_the_responses_asset_through_its_alias():
    op = IngestResponsesOperator(task_id="ingest_responses")
    assert op.outlets == [RESPONSES_ALIAS]
    assert RESPONSES_ASSET.uri == "closed_loop_responses"
    assert RESPONSES_ASSET.name == "closed_loop_responses"


def test_operators_open_cases_emit_the_asset_once_and_record_usage(stack):
    surveyed(stack)
    with stack.connections():
        ingest = IngestResponsesOperator(task_id="ingest_responses", dry_run=False)
        opener = OpenCasesOperator(task_id="open_cases", dry_run=False)
        ctx = context()
        got = ingest.execute(ctx)
        # survey lookup + page + details + the (at most hourly) abandoned-partials poll
        assert got["recorded"] > 0 and got["cases_planned"] > 0 and got["sm_calls"] == 4
        [(asset, extra)] = ctx["outlet_events"][RESPONSES_ALIAS].added
        assert asset == RESPONSES_ASSET and extra["recorded"] == got["recorded"]
        opened = opener.execute(ctx)
        assert opened["cases_created"] == got["cases_planned"] and opened["failures"] == 0
        json.dumps([got, opened])  # XCom-safe, and no customer data in it
        assert set(opened) >= {"tasks_created", "alerts_sent", "sf_calls"} and "case_keys" not in opened
        usage = stack.ledger.read_frame("api_usage").set_index("system")["calls"].to_dict()
        assert usage == {"surveymonkey": got["sm_calls"], "salesforce": opened["sf_calls"]}

        again = context("scheduled__2026-07-10T12:15:00+00:00")
        assert ingest.execute(again)["recorded"] == 0
        assert again["outlet_events"][RESPONSES_ALIAS].added == [], "no event for an empty run"
        assert opener.execute(again)["sf_calls"] == 0
    state = sandbox_state(stack)
    assert len(survey_cases(state)) == got["cases_planned"]


def test_dry_run_operators_log_the_plan_and_write_nothing(stack, caplog):
    surveyed(stack)
    with stack.connections():
        ctx = context()
        got = IngestResponsesOperator(task_id="ingest_responses", dry_run="True").execute(ctx)
        opened = OpenCasesOperator(task_id="open_cases", dry_run=True).execute(ctx)
    assert got["dry_run"] and got["cases_planned"] > 0 and opened["cases_pending"] == 0
    assert ctx["outlet_events"][RESPONSES_ALIAS].added == []
    assert len(stack.ledger.read_frame("responses")) == 0
    assert len(stack.ledger.read_frame("api_usage")) == 0
    state = sandbox_state(stack)
    assert survey_cases(state) == [] and survey_tasks(state) == []
    assert "DRY RUN intake plan" in caplog.text
    assert "@" not in caplog.text.split("DRY RUN intake plan", 1)[1], "no emails in the logged plan"


def test_each_task_logs_one_summary_with_quarantine_ids_and_budget(stack, caplog):
    """Issue 17 item 9: one summary per task (not the same dict three times): counts, what was
    quarantined and why, the cases/accounts touched (ids, no PII), the API budget left today per system
    (expected here from the sandbox's own counters and limits)."""
    import logging

    from sqlalchemy import text

    from closed_loop.operators.base import log_result

    surveyed(stack)
    with stack.connections():
        ingest = IngestResponsesOperator(task_id="ingest_responses", dry_run=False)
        opener = OpenCasesOperator(task_id="open_cases", dry_run=False)
        ctx = context()
        with caplog.at_level(logging.INFO):
            caplog.clear()
            got = ingest.execute(ctx)
            log_result(ctx | {"task": ingest}, got)  # the post_execute hook Airflow runs
            ingest_log = [r.getMessage() for r in caplog.records]
            caplog.clear()
            opened = opener.execute(ctx)
            log_result(ctx | {"task": opener}, opened)
            open_log = [r.getMessage() for r in caplog.records]
    state = sandbox_state(stack)
    for records, result in ((ingest_log, got), (open_log, opened)):
        mentions = [
            m for m in records if json.dumps(result, default=str, sort_keys=True) in m or str(result) in m
        ]
        assert len(mentions) == 1, "the result is logged once, in the summary"
    [summary] = [m for m in ingest_log if m.startswith("closed-loop summary of ingest_responses")]
    with stack.ledger.session() as s:
        quarantine = s.execute(text("SELECT source, reason FROM quarantine")).all()
        cases = s.execute(text("SELECT case_key, account_id FROM cases")).all()
    assert quarantine and cases
    assert f"quarantined: {len(quarantine)}" in summary
    assert all(reason[:160] in summary for _, reason in quarantine)
    assert all(key in summary for key, _ in cases[:20]) and all(acc in summary for _, acc in cases[:20])
    cfg = state["config"]
    sm_left = cfg["sm_day_limit"] - state["sm_day"]["count"]
    assert f"SurveyMonkey {sm_left:,} of {cfg['sm_day_limit']:,} calls left" in summary
    [summary] = [m for m in open_log if m.startswith("closed-loop summary of open_cases")]
    used = sum(state["sf_usage"].values())
    assert (
        f"Salesforce {cfg['sf_daily_limit'] - used:,} of {cfg['sf_daily_limit']:,} requests left" in summary
    )
    assert all(key in summary for key, _ in cases[:20])
    people = [c["Email"] for c in state["sf"]["Contact"].values() if c.get("Email")]
    people += [c["LastName"] for c in state["sf"]["Contact"].values() if len(c.get("LastName") or "") > 3]
    assert not any(p in "\n".join(ingest_log + open_log) for p in people), "no customer PII in the logs"
