"""Every DAG file imports cleanly and follows the house rules."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
EXPECTED_DAGS = {"survey_dispatch", "response_intake", "sla_sweep", "quarterly_report"}
MANUAL_DAGS = {"surveymonkey_webhooks", "closed_loop_preflight"}  # triggered by hand: schedule None
# Tasks that must not retry: a failed preflight check is a finding, not a transient error.
NO_RETRY_TASKS = {("closed_loop_preflight", "preflight")}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_every_expected_dag_is_defined(dagbag):
    assert EXPECTED_DAGS | MANUAL_DAGS <= set(dagbag.dag_ids)


def house_rule_violations(dag) -> list[str]:
    """What ``dag`` breaks of the house rules (docs/contributing.md), one line each."""
    out = []
    if not (dag.doc_md and len(dag.doc_md.strip()) > 40):
        out.append("doc_md explains the DAG")
    if not (dag.tags and "closed-loop" in dag.tags):
        out.append("tagged closed-loop")
    if dag.catchup is not False:
        out.append("catchup=False")
    if dag.dag_id in MANUAL_DAGS:
        if dag.schedule is not None:
            out.append("a manual DAG says so explicitly (schedule=None)")
    elif not (isinstance(dag.schedule, str) and dag.schedule.strip()):
        out.append("an explicit cron schedule (or listed in MANUAL_DAGS)")
    elif type(dag.timetable).__name__ != "CronTriggerTimetable":
        out.append("a CronTriggerTimetable")
    if dag.max_active_runs != 1:
        out.append("max_active_runs=1")
    if "dry_run" not in dag.params:
        out.append("a dry_run param")
    for task in dag.tasks:
        if not task.owner or task.owner == "airflow":
            out.append(f"{task.task_id} has a real owner")
        if task.retries < 2 and (dag.dag_id, task.task_id) not in NO_RETRY_TASKS:
            out.append(f"{task.task_id} retries >= 2")
    return out


def test_house_rules_hold_for_every_dag_in_the_bag(dagbag):
    assert len(dagbag.dags) >= len(EXPECTED_DAGS | MANUAL_DAGS)
    broken = {dag_id: v for dag_id, dag in dagbag.dags.items() if (v := house_rule_violations(dag))}
    assert broken == {}


def test_a_dag_without_the_house_rules_is_caught(tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "bare.py").write_text(
        "import datetime\nfrom airflow.sdk import DAG\nfrom airflow.providers.standard.operators.empty "
        "import EmptyOperator\n\nwith DAG('bare', start_date=datetime.datetime(2026, 1, 1)):\n"
        "    EmptyOperator(task_id='noop')\n"
    )
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    violations = house_rule_violations(bag.dags["bare"])
    assert {"doc_md explains the DAG", "tagged closed-loop", "a dry_run param", "noop retries >= 2"} <= set(
        violations
    )
