"""Fixtures of the reliability suite: a ``world`` (LocalStack + hooks, connections set) and the scenario
results table printed at the end of the run (copied into docs/reliability.md)."""

from __future__ import annotations

import pytest

RESULTS: list[dict] = []


@pytest.fixture
def world(stack):
    from reliability_helpers import World

    with stack.connections():
        yield World(stack)


@pytest.fixture
def record(request):
    """``record(scenario, result, **figures)``: one row of the results table."""

    def add(scenario: str, result: str, **figures):
        RESULTS.append({"test": request.node.name, "scenario": scenario, "result": result, **figures})

    return add


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    terminalreporter.section("reliability scenarios")
    for row in RESULTS:
        extra = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("test", "scenario", "result"))
        terminalreporter.write_line(f"{row['scenario']}: {row['result']}" + (f" ({extra})" if extra else ""))


@pytest.fixture
def big_world(tmp_path):
    """A larger seed (160 accounts): enough negatives for a full 200-record Task collection."""
    from reliability_helpers import World

    from devtools.stack import LocalStack

    with LocalStack(tmp_path / "big", seed=7, accounts=160) as local, local.connections():
        yield World(local)
