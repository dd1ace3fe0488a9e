"""The intake pipeline suite of test_intake_pipeline.py, rerun with the ledger on PostgreSQL.

PostgreSQL enforces what SQLite does not (``varchar(n)`` lengths, types, transactional DDL), so a poison
record that SQLite stores silently fails here; every test gets a throw-away database (``pg_database_url``).
"""

from __future__ import annotations

import pytest

from tests.integration.test_intake_pipeline import *  # noqa: F403 - the shared suite, collected here again

pytestmark = pytest.mark.postgres


@pytest.fixture
def stack(tmp_path, pg_database_url):
    from devtools.stack import LocalStack

    with LocalStack(tmp_path / "stack", seed=7, ledger_url=pg_database_url) as local:
        yield local
