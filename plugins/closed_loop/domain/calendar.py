"""Business days: weekends, the country's public holidays (python-holidays) and company closures."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING

import holidays

if TYPE_CHECKING:
    from closed_loop.playbook import Playbook

_DAY = timedelta(days=1)


class BusinessCalendar:
    """Monday-Friday minus public holidays (years loaded lazily) and the configured closure dates."""

    def __init__(self, country: str = "US", subdiv: str | None = None, closures: Iterable[date] = ()):
        self.country = country
        self.subdiv = subdiv
        self.closures = frozenset(closures)
        self._holidays = holidays.country_holidays(country, subdiv=subdiv)  # expands years on lookup

    @classmethod
    def from_playbook(cls, playbook: Playbook) -> BusinessCalendar:
        cal = playbook.calendar
        return cls(cal.country, cal.subdiv, cal.closures)

    def holiday_name(self, day: date) -> str | None:
        """Why ``day`` is closed (holiday name or "company closure"), None when it is not."""
        if day in self.closures:
            return "company closure"
        return self._holidays.get(day)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.closures and day not in self._holidays

    def next_business_day(self, day: date) -> date:
        """First business day strictly after ``day``."""
        day += _DAY
        while not self.is_business_day(day):
            day += _DAY
        return day

    def previous_business_day(self, day: date) -> date:
        """Last business day strictly before ``day``."""
        day -= _DAY
        while not self.is_business_day(day):
            day -= _DAY
        return day

    def add_business_days(self, day: date, n: int) -> date:
        """The n-th business day after ``day`` (before it when n < 0); n == 0 rolls forward to one."""
        if n == 0:
            return day if self.is_business_day(day) else self.next_business_day(day)
        step = self.next_business_day if n > 0 else self.previous_business_day
        for _ in range(abs(n)):
            day = step(day)
        return day

    def add_window(self, day: date, n: int, unit: str = "business_days") -> date:
        """``day`` plus ``n`` business days, calendar days or weeks. A calendar/week date that is not a
        business day moves back to the last business day inside the window (never before ``day``'s
        next business day): "within 3 weeks" means done by then."""
        if unit == "business_days":
            return self.add_business_days(day, n)
        if unit not in ("calendar_days", "weeks"):
            raise ValueError(f"unknown window unit {unit!r}")
        end = day + timedelta(days=n * (7 if unit == "weeks" else 1))
        if self.is_business_day(end):
            return end
        back = self.previous_business_day(end)
        return back if back > day else self.add_business_days(day, 1 if n else 0)

    def business_days_between(self, start: date, end: date) -> int:
        """Business days in (start, end]; negative when end is before start.

        ``business_days_between(d, add_business_days(d, n)) == n`` for every n > 0.
        """
        if end < start:
            return -self.business_days_between(end, start)
        return sum(1 for i in range(1, (end - start).days + 1) if self.is_business_day(start + i * _DAY))
