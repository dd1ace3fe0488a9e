"""Quarter arithmetic and the quarter a run reports on."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from closed_loop.reporting.quarters import Quarter, quarter_to_report


@pytest.mark.parametrize(
    ("day", "label", "start", "end"),
    [
        (date(2026, 1, 1), "2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        (date(2026, 6, 30), "2026-Q2", date(2026, 4, 1), date(2026, 6, 30)),
        (date(2026, 8, 15), "2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
        (date(2024, 12, 31), "2024-Q4", date(2024, 10, 1), date(2024, 12, 31)),
    ],
)
def test_containing_start_end_label(day, label, start, end):
    q = Quarter.containing(day)
    assert (q.label, q.start, q.end) == (label, start, end)
    assert day in q and start in q and end in q
    assert q.previous().end.toordinal() == start.toordinal() - 1
    assert Quarter.parse(label) == q


def test_previous_and_trailing_cross_years():
    q = Quarter(2026, 1)
    assert q.previous() == Quarter(2025, 4)
    assert q.previous(5) == Quarter(2024, 4)
    assert q.next() == Quarter(2026, 2)
    assert [x.label for x in q.trailing(5)] == ["2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1"]
    assert Quarter(2025, 4) < q


@pytest.mark.parametrize(
    ("logical", "expected"),
    [
        (datetime(2026, 10, 1, 6, 0, tzinfo=UTC), "2026-Q3"),
        (date(2026, 1, 2), "2025-Q4"),
        (date(2026, 3, 31), "2025-Q4"),
        (date(2026, 4, 1), "2026-Q1"),
    ],
)
def test_quarter_to_report_is_the_one_just_ended(logical, expected):
    assert quarter_to_report(logical).label == expected


@pytest.mark.parametrize("bad", ["2026-Q5", "2026", "Q3-2026", ""])
def test_parse_rejects_garbage(bad):
    with pytest.raises(ValueError, match="quarter"):
        Quarter.parse(bad)
