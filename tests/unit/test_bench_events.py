"""bench/events.py's projection: the run simulation and the per-day arithmetic (expected values from
the schedules and the queueing rules, not from the code)."""

from __future__ import annotations

from bench import events


def test_sparse_arrivals_make_one_run_each_and_a_busy_day_is_capped_by_the_run_length():
    assert abs(events.event_runs_per_day(5, run_seconds=10, coalesce=2) - 5) <= 1
    # 10,000 arrivals a day but each run lasts 600 s: runs start at least 600 s apart in one day
    assert 140 <= events.event_runs_per_day(10_000, run_seconds=600, coalesce=2) <= 86_400 // 600 + 1
    assert events.event_runs_per_day(0, run_seconds=10, coalesce=2) == 0


def test_projection_compares_polling_and_events_per_day():
    measured = {
        "sm_calls_per_run": {"min": 1, "max": 2, "median": 1},
        "run_seconds": {"p50": 10, "p95": 20},
        "poll_runs_per_day": events._ticks_per_day("*/15 * * * *"),
        "reconcile_runs_per_day": events._ticks_per_day("0 * * * *"),
    }
    assert (measured["poll_runs_per_day"], measured["reconcile_runs_per_day"]) == (96, 24)
    proj = events.projection(measured)
    today = proj["today"]  # 500 a quarter = 5.5 a day
    assert today["polling_calls_per_day"] == 96
    assert 24 + 4 <= today["event_calls_per_day_coalesce_2s"] <= 24 + 8
    assert today["polling_latency_p50_s"] == 450 + 10 and today["polling_latency_p95_s"] == 855 + 20
    big = proj["100x"]  # 549 a day: event-driven costs more than polling unless coalesced
    assert big["event_calls_per_day_coalesce_2s"] > big["polling_calls_per_day"]
    assert big["event_calls_per_day_coalesce_300s"] <= 24 + 288
