"""The DAGs run on a distributed Airflow: api-server, scheduler, dag-processor and a Celery worker as
separate processes on this machine's PostgreSQL and Redis (``make services`` starts them)."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from devtools import mail_sink
from devtools.distributed import DistributedAirflow

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.celery, pytest.mark.postgres, pytest.mark.timeout(3600)]

PROBE_DAG = """
import pendulum
from airflow.sdk import dag, task

@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
def celery_probe():
    @task(pool="salesforce_api")
    def first(**context):
        return context["dag_run"].conf["token"]

    @task
    def second(token):
        assert token == "t-123"

    second(first())

celery_probe()
"""


def _report(cluster: DistributedAirflow, started: float) -> None:
    total = round(time.monotonic() - started, 1)
    print(f"\ndistributed timings (s): {json.dumps(cluster.timings)} total={total}")


def _assert_ran_on_worker(cluster: DistributedAirflow, dag_id: str, run_id: str) -> list[dict]:
    tis = cluster.task_instances(dag_id, run_id)
    assert tis, "the run has task instances"
    failed = [ti for ti in tis if ti["state"] not in ("success", "skipped")]
    assert not failed, f"{failed}\n{cluster.diagnostics()}"
    ran = [ti for ti in tis if ti["state"] == "success"]
    assert ran, "at least one task executed"
    for ti in ran:
        assert ti["hostname"] == cluster.worker_name, f"{ti['task_id']} ran on {ti['hostname']}"
        assert ti["external_executor_id"], f"{ti['task_id']} has no Celery task id"
    assert {ti["task_id"] for ti in ran} <= cluster.worker_task_ids(run_id)
    return tis


def test_harness_runs_a_dag_on_the_celery_worker(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "celery_probe.py").write_text(textwrap.dedent(PROBE_DAG))
    started = time.monotonic()
    with DistributedAirflow(tmp_path / "cluster", dag_id="celery_probe", dags_folder=dags) as cluster:
        run_id = cluster.trigger("celery_probe", conf={"token": "t-123"})
        state = cluster.wait_for_run("celery_probe", run_id, timeout=1800)
        assert state == "success", cluster.diagnostics()
        tis = _assert_ran_on_worker(cluster, "celery_probe", run_id)
        assert {ti["task_id"] for ti in tis} == {"first", "second"}
        pids = list(cluster.pids().values())
    _report(cluster, started)
    assert not _alive(pids), "every process the harness started is gone"
    assert not _database_exists(cluster.database)


def test_response_intake_runs_distributed_against_the_sandbox(tmp_path):
    if not (REPO / "dags" / "response_intake.py").exists():
        pytest.skip("dags/response_intake.py is not written yet")
    testing = pytest.importorskip(
        "sandbox.testing", reason="the sandbox package (sandbox.testing) is not there yet"
    )

    outbox = tmp_path / "outbox"
    sink = mail_sink.start(outbox)
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": sink.port,
        "extra": {"disable_ssl": True, "disable_tls": True},
    }
    started = time.monotonic()
    try:
        with testing.run_sandbox(tmp_path / "sandbox", seed=7) as info:
            env = {"AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp), **info.airflow_conn_env()}
            with DistributedAirflow(
                tmp_path / "cluster", dag_id="response_intake", extra_env=env, ledger=True
            ) as cluster:
                run_id = cluster.trigger("response_intake")
                state = cluster.wait_for_run("response_intake", run_id, timeout=1800)
                assert state == "success", cluster.diagnostics()
                _assert_ran_on_worker(cluster, "response_intake", run_id)
                pids = list(cluster.pids().values())
    finally:
        sink.stop()
    _report(cluster, started)
    assert not _alive(pids)
    assert not _database_exists(cluster.database)


def _alive(pids: list[int]) -> list[int]:
    import psutil

    return [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def _database_exists(name: str) -> bool:
    import psycopg2

    with psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cur.fetchone() is not None
