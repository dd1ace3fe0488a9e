"""The "what changed" paragraph and the subject line, written from the numbers."""

from __future__ import annotations

import pandas as pd
import pytest

from closed_loop.reporting.data import ReportData
from closed_loop.reporting.email import subject
from closed_loop.reporting.metrics import compute_metrics
from closed_loop.reporting.quarters import Quarter
from closed_loop.reporting.summary import what_changed

Q = Quarter(2026, 3)


def responses(per_quarter: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """``{"2026-Q3": (responses, negatives)}`` -> response rows in the middle of each quarter."""
    rows = []
    for label, (total, negatives) in per_quarter.items():
        mid = pd.Timestamp(Quarter.parse(label).start, tz="UTC") + pd.Timedelta(days=40)
        rows += [
            {
                "response_id": f"{label}-{i}",
                "date_created": mid,
                "negative": i < negatives,
                "topics": ["training"] if i < negatives else [],
                "account_id": f"a{i}",
            }
            for i in range(total)
        ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("previous", "now", "phrase", "subject_tail"),
    [
        ((50, 11), (50, 9), "down 4 points from 22% in 2026-Q2", "negative rate 18% (down 4 pts)"),
        ((40, 4), (40, 8), "up 10 points from 10% in 2026-Q2", "negative rate 20% (up 10 pts)"),
        ((40, 8), (20, 4), "unchanged from 20% in 2026-Q2", "negative rate 20% (unchanged)"),
    ],
)
def test_negative_rate_change_in_words(previous, now, phrase, subject_tail):
    m = compute_metrics(ReportData(responses=responses({"2026-Q2": previous, "2026-Q3": now})), Q)
    text = what_changed(m)
    assert phrase in text
    assert f"received {now[0]} responses" in text
    assert "most frequent topic in negative feedback was Training (100%" in text  # its display name
    assert subject(m) == f"Closed-loop quarterly report 2026-Q3: {subject_tail}"


def test_no_previous_quarter_is_said_plainly():
    m = compute_metrics(ReportData(responses=responses({"2026-Q3": (10, 3)})), Q)
    assert "no previous-quarter rate to compare with" in what_changed(m)
    assert subject(m).endswith("negative rate 30%")


def test_empty_quarter_is_honest_and_short():
    m = compute_metrics(ReportData(responses=responses({"2026-Q2": (10, 2)})), Q)
    text = what_changed(m)
    assert text.startswith("Nothing to report for 2026-Q3")
    assert "2026-Q2 had a negative rate of 20%" in text
    assert len(text) < 400
    assert subject(m) == "Closed-loop quarterly report 2026-Q3: no activity recorded"


def test_full_summary_mentions_sla_cases_and_recovery():
    from devtools.synthetic import synthetic_report_data

    m = compute_metrics(synthetic_report_data(Q.trailing(6), seed=3), Q)
    text = what_changed(m)
    assert f"{round(m.current['sla_on_time_share'] * 100)}% of the {m.current['steps_due']} SOP steps" in text
    assert f"{m.open_cases} cases were still open" in text
    assert f"{m.root_causes.iloc[0]['root_cause']}" in text
    assert "follow-up pulse" in text and "\n" not in text
