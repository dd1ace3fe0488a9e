"""The whole ledger suite of tests/unit/test_ledger.py, rerun on the PostgreSQL server at 127.0.0.1:5432.

A throw-away database ``closed_loop_test_<random>`` is created for the session, migrated once, emptied
before each test and dropped at the end.
"""

from __future__ import annotations

import os
import secrets

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from closed_loop.ledger import Base, Ledger
from closed_loop.ledger.core import VERSION_TABLE, alembic_config
from tests.unit.test_ledger import *  # noqa: F403 - the shared suite, collected here again
from tests.unit.test_ledger import (
    _race,
    test_from_conn_id_reads_the_airflow_connection,
    test_url_from_connection_variants,
)

pytestmark = pytest.mark.postgres
SERVER = os.environ.get("CLOSED_LOOP_TEST_PG_SERVER", "postgresql+psycopg2://postgres@127.0.0.1:5432")

# Tests about building the ledger from a connection do not depend on the database: run them once, on SQLite.
del test_from_conn_id_reads_the_airflow_connection, test_url_from_connection_variants


@pytest.fixture(scope="session")
def pg_ledger():
    admin = create_engine(
        f"{SERVER}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as conn:
            name = f"closed_loop_test_{secrets.token_hex(4)}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "skip", with the reason
        admin.dispose()
        pytest.skip(f"PostgreSQL at {SERVER} unreachable ({type(exc).__name__}); `.ci/run` starts it")
    led = Ledger.from_url(f"{SERVER}/{name}")
    try:
        led.migrate()
        yield led
    finally:
        led.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def ledger(pg_ledger):
    tables = ", ".join(f'"{t}"' for t in Base.metadata.tables)
    with pg_ledger.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY"))
    return pg_ledger


@pytest.fixture
def empty_database_url(pg_ledger):
    name = f"closed_loop_test_{secrets.token_hex(4)}"
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{SERVER}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.timeout(1800)  # hang guard: without the advisory lock, concurrent upgrades block each other
def test_parallel_first_migrations_serialise(empty_database_url):
    """Several tasks starting at once on an empty database: one creates the schema, the others wait."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    ledgers = [Ledger.from_url(empty_database_url) for _ in range(4)]
    _race(4, lambda i: ledgers[i].migrate())
    with ledgers[0].engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").all() == [(head,)]
    for led in ledgers:
        led.dispose()
