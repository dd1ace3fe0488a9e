"""One sandbox per test module (module-scoped), with generous SurveyMonkey limits unless lowered."""

from __future__ import annotations

import pytest

from sandbox.testing import run_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with run_sandbox(
        tmp_path_factory.mktemp("sandbox"), seed=7, sm_minute_limit=100000, sm_day_limit=100000
    ) as sb:
        yield sb


@pytest.fixture
def sf(sandbox):
    return sandbox.salesforce()


@pytest.fixture
def sm(sandbox):
    return sandbox.sm_session()


@pytest.fixture(autouse=True)
def _clear_faults(request):
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").admin("DELETE", "faults")
