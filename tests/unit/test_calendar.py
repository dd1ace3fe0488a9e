"""Business days skip weekends, US public holidays and company closures."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.playbook import load_playbook

CAL = BusinessCalendar.from_playbook(load_playbook())


def test_weekends_are_skipped():
    friday = date(2025, 3, 7)
    assert CAL.add_business_days(friday, 1) == date(2025, 3, 10)
    assert CAL.next_business_day(friday) == date(2025, 3, 10)
    assert not CAL.is_business_day(date(2025, 3, 8))
    assert CAL.add_business_days(date(2025, 3, 3), 5) == date(2025, 3, 10)


def test_us_holidays_are_skipped():
    assert CAL.add_business_days(date(2025, 7, 3), 1) == date(2025, 7, 7)  # Independence Day (Fri)
    assert CAL.add_business_days(date(2025, 11, 26), 1) == date(2025, 11, 28)  # Thanksgiving
    assert CAL.holiday_name(date(2025, 12, 25)) == "Christmas Day"
    assert not CAL.is_business_day(date(2031, 1, 1))  # years load lazily


def test_company_closures_are_skipped():
    assert CAL.holiday_name(date(2025, 12, 26)) == "company closure"
    assert CAL.add_business_days(date(2025, 12, 24), 1) == date(2025, 12, 29)
    plain = BusinessCalendar("US")
    assert plain.add_business_days(date(2025, 12, 24), 1) == date(2025, 12, 26)


def test_subdivision_holidays():
    patriots_day = date(2025, 4, 21)
    assert BusinessCalendar("US").is_business_day(patriots_day)
    assert not BusinessCalendar("US", "MA").is_business_day(patriots_day)


def test_zero_rolls_forward_and_negative_goes_back():
    assert CAL.add_business_days(date(2025, 3, 8), 0) == date(2025, 3, 10)
    assert CAL.add_business_days(date(2025, 3, 10), 0) == date(2025, 3, 10)
    assert CAL.add_business_days(date(2025, 3, 10), -1) == date(2025, 3, 7)


def test_business_days_between():
    assert CAL.business_days_between(date(2025, 7, 2), date(2025, 7, 8)) == 3
    assert CAL.business_days_between(date(2025, 7, 8), date(2025, 7, 2)) == -3
    assert CAL.business_days_between(date(2025, 3, 8), date(2025, 3, 9)) == 0


@given(st.dates(date(2024, 1, 1), date(2030, 12, 31)), st.integers(1, 40))
def test_adding_then_counting_gives_n(start, n):
    due = CAL.add_business_days(start, n)
    assert CAL.is_business_day(due)
    assert CAL.business_days_between(start, due) == n
    assert CAL.business_days_between(start, due - timedelta(days=1)) == n - 1
