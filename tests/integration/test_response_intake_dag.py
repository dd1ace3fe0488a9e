"""response_intake end to end through `airflow dags test`, then a rerun of the same logical date."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing

import pytest

from closed_loop.playbook import load_playbook
from tests.integration.test_intake_pipeline import ground_truth, sandbox_state, survey_cases, survey_tasks
from tests.integration.test_intake_pipeline import surveyed as survey_the_flagged_contacts

LOGICAL = "2026-07-07T09:00:00+00:00"


def _asset_events(cli) -> list[dict]:
    """Extras of the asset events recorded for the responses asset in the Airflow metadata DB."""
    with closing(sqlite3.connect(cli.home / "airflow.db")) as db:
        rows = db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
            " WHERE a.uri = ? ORDER BY e.id",
            ("closed_loop_responses",),
        ).fetchall()
    return [json.loads(extra) for (extra,) in rows]


def test_schedule_constant_equals_the_playbook():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "dags" / "response_intake.py"
    spec = importlib.util.spec_from_file_location("response_intake_dag", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SCHEDULE == load_playbook().intake.schedule
    assert module.RECONCILE_SCHEDULE == load_playbook().intake.reconcile_schedule
    pools = {t.task_id: t.pool for t in module.dag.tasks}
    assert pools == {"ingest_responses": "surveymonkey_api", "open_cases": "salesforce_api"}
    assert module.dag.task_dict["ingest_responses"].downstream_task_ids == {"open_cases"}


@pytest.mark.airflow
def test_dag_run_opens_every_case_and_a_rerun_adds_nothing(stack, stack_airflow):
    survey_the_flagged_contacts(stack)
    started = time.perf_counter()
    first = stack_airflow.dags_test("response_intake", LOGICAL)
    wall = time.perf_counter() - started
    assert first.ok, first.output[-4000:]
    state = sandbox_state(stack)
    negatives = {rid for rid, t in ground_truth(stack, state).items() if t["negative"]}
    cases, tasks = survey_cases(state), survey_tasks(state)
    assert {c["Survey_Response_Id__c"] for c in cases} == negatives
    assert len([t for t in tasks if not t["Closed_Loop_Key__c"].startswith("dq:")]) == 6 * len(negatives)
    usage = stack.ledger.read_frame("api_usage")
    assert set(usage["system"]) == {"surveymonkey", "salesforce"}
    events = _asset_events(stack_airflow)
    assert events and events[-1]["recorded"] > 0, "the run published the responses asset"
    counters = stack.sandbox.admin("GET", "counters")

    again = stack_airflow.dags_test("response_intake", LOGICAL)
    assert again.ok, again.output[-4000:]
    after = sandbox_state(stack)
    assert len(survey_cases(after)) == len(cases) and len(survey_tasks(after)) == len(tasks)
    later = stack.sandbox.admin("GET", "counters")
    assert later["sf"]["total"] == counters["sf"]["total"], "the rerun made no Salesforce call"
    assert later["sm"]["total"] - counters["sm"]["total"] == 1, "the rerun cost one SurveyMonkey page"
    assert _asset_events(stack_airflow) == events, "an empty run publishes no asset event"
    print(f"\nairflow dags test response_intake: {wall:.1f} s wall (process start included)")


def _load_dag_module(monkeypatch, **env):
    import importlib.util
    from pathlib import Path

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    path = Path(__file__).resolve().parents[2] / "dags" / "response_intake.py"
    spec = importlib.util.spec_from_file_location("response_intake_dag_events", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_event_mode_schedules_on_the_webhook_asset_or_the_reconciliation_cron(monkeypatch):
    from airflow.sdk import AssetOrTimeSchedule

    polling = _load_dag_module(monkeypatch, CLOSED_LOOP_INTAKE_TRIGGER="polling")
    assert polling.dag.schedule == load_playbook().intake.schedule, "the embedded default keeps polling"

    module = _load_dag_module(
        monkeypatch, CLOSED_LOOP_INTAKE_TRIGGER="events", CLOSED_LOOP_WEBHOOK_CHANNEL="chan.test"
    )
    schedule = module.dag.timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.timetable.expression == load_playbook().intake.reconcile_schedule
    (asset,) = schedule.asset_condition.objects
    assert asset.name == "surveymonkey_response_webhooks"
    (watcher,) = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath.endswith("redis_await_message.AwaitMessageTrigger")
    assert kwargs["channels"] == ["chan.test"] and kwargs["redis_conn_id"] == "redis_default"
    assert kwargs["poll_interval"] <= 1, "wake-up latency well under the one-minute target"
