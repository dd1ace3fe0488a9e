"""Every DAG file imports cleanly and follows the house rules."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
EXPECTED_DAGS = {"survey_dispatch", "response_intake", "sla_sweep", "quarterly_report"}
MANUAL_DAGS = {"surveymonkey_webhooks"}  # triggered by hand: schedule None


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_every_expected_dag_is_defined(dagbag):
    assert EXPECTED_DAGS | MANUAL_DAGS <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS | MANUAL_DAGS))
def test_house_rules(dagbag, dag_id):
    dag = dagbag.dags.get(dag_id)
    assert dag is not None, dag_id
    assert dag.doc_md and len(dag.doc_md.strip()) > 40, "doc_md explains the DAG"
    assert dag.tags and "closed-loop" in dag.tags
    assert dag.catchup is False
    if dag_id in MANUAL_DAGS:
        assert dag.schedule is None, "a manual DAG says so explicitly"
    else:
        assert isinstance(dag.schedule, str) and dag.schedule.strip(), "an explicit cron schedule"
        assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    assert dag.max_active_runs == 1
    assert "dry_run" in dag.params, "every DAG honours a dry_run param"
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{task.task_id} has a real owner"
        assert task.retries >= 2, f"{task.task_id} retries"
