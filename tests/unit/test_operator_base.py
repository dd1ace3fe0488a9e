"""The base operator: the logical day drives every date; dry_run parsing; the result log line."""

from __future__ import annotations

import logging
from datetime import date
from types import SimpleNamespace

import pendulum
import pytest

from closed_loop.operators.base import ClosedLoopBaseOperator, as_bool, log_result


def test_logical_day_is_the_logical_date_not_the_wall_clock():
    context = {"logical_date": pendulum.datetime(2026, 7, 14, 14, tz="UTC")}
    assert ClosedLoopBaseOperator.logical_day(context) == date(2026, 7, 14)


def test_runs_triggered_without_a_logical_date_use_run_after():
    run = SimpleNamespace(run_after=pendulum.datetime(2026, 8, 3, 9, tz="UTC"))
    context = {"logical_date": None, "data_interval_end": None, "dag_run": run}
    assert ClosedLoopBaseOperator.logical_day(context) == date(2026, 8, 3)


def test_a_run_without_any_date_is_an_error():
    with pytest.raises(ValueError, match="logical date"):
        ClosedLoopBaseOperator.logical_day({"logical_date": None, "dag_run": SimpleNamespace(run_after=None)})


@pytest.mark.parametrize(
    ("value", "expected"), [("True", True), ("false", False), (True, True), ("0", False)]
)
def test_dry_run_flag_from_a_rendered_template(value, expected):
    assert as_bool(value) is expected


def test_result_is_logged_as_one_json_line(caplog):
    with caplog.at_level(logging.INFO):
        log_result({}, {"sent": 3, "due": 4})
    assert 'closed-loop result: {"due": 4, "sent": 3}' in caplog.text
