"""Shared fixtures: a throw-away Airflow home for whole-DAG runs, and the repository paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Airflow reads its settings at import: point it at this repository before any test imports it.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow-test" / "unit"))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("CLOSED_LOOP_PLAYBOOK", str(REPO / "include" / "playbook.yaml"))


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory):
    """A migrated SQLite AIRFLOW_HOME shared by the whole-DAG tests of this session."""
    from devtools.airflow_cli import AirflowCli

    cli = AirflowCli(tmp_path_factory.mktemp("airflow-home"))
    cli.migrate()
    return cli


@pytest.fixture
def stack(tmp_path):
    """Sandbox (seed 7) + SMTP sink + migrated SQLite ledger, with their Airflow connections."""
    from devtools.stack import LocalStack

    with LocalStack(tmp_path / "stack", seed=7) as local:
        yield local


@pytest.fixture
def stack_airflow(stack, airflow_home):
    """The session's migrated Airflow home, with this test's stack connections for `airflow dags test`."""
    from devtools.airflow_cli import AirflowCli

    return AirflowCli(airflow_home.home, dict(stack.conn_env))
