"""Shared fixtures: a throw-away Airflow home for whole-DAG runs, throw-away ledgers (SQLite, PostgreSQL),
and the repository paths."""

from __future__ import annotations

import os
import secrets
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


PG_SERVER = os.environ.get("CLOSED_LOOP_TEST_PG_SERVER", "postgresql+psycopg2://postgres@127.0.0.1:5432")


@pytest.fixture
def pg_database_url():
    """A throw-away PostgreSQL database ``closed_loop_t_<random>`` (dropped afterwards); skips without a
    server (``.ci/run`` starts one)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(
        f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    name = f"closed_loop_t_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "skip", with the reason
        admin.dispose()
        pytest.skip(f"PostgreSQL at {PG_SERVER} unreachable ({type(exc).__name__}); `.ci/run` starts it")
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_ledger(tmp_path):
    """A migrated SQLite ledger in the test's temporary folder."""
    from closed_loop.ledger import Ledger

    led = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    led.migrate()
    yield led
    led.dispose()


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
