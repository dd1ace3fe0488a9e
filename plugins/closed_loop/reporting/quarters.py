"""Calendar quarters: arithmetic, labels ("2026-Q3") and the quarter a run reports on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_LABEL = re.compile(r"^(\d{4})-?Q([1-4])$")


@dataclass(frozen=True, order=True)
class Quarter:
    """A calendar quarter, e.g. ``Quarter(2026, 3)`` = July to September 2026."""

    year: int
    number: int

    def __post_init__(self) -> None:
        if not 1 <= self.number <= 4:
            raise ValueError(f"quarter number must be 1..4, got {self.number}")

    @classmethod
    def containing(cls, day: date | datetime) -> Quarter:
        """The quarter a date (or datetime, taken as is) falls in."""
        return cls(day.year, (day.month - 1) // 3 + 1)

    @classmethod
    def parse(cls, label: str) -> Quarter:
        """``"2026-Q3"`` (or ``"2026Q3"``) as a Quarter."""
        match = _LABEL.match(label.strip().upper())
        if not match:
            raise ValueError(f"not a quarter label: {label!r}")
        return cls(int(match[1]), int(match[2]))

    def previous(self, n: int = 1) -> Quarter:
        """The quarter ``n`` quarters earlier."""
        index = self.year * 4 + self.number - 1 - n
        return Quarter(index // 4, index % 4 + 1)

    def next(self) -> Quarter:
        return self.previous(-1)

    def trailing(self, n: int) -> list[Quarter]:
        """The ``n`` quarters ending with this one, oldest first."""
        return [self.previous(k) for k in range(n - 1, -1, -1)]

    @property
    def start(self) -> date:
        """First day of the quarter."""
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def end(self) -> date:
        """Last day of the quarter (inclusive)."""
        return self.next().start - timedelta(days=1)

    @property
    def label(self) -> str:
        return f"{self.year}-Q{self.number}"

    def __contains__(self, day: date) -> bool:
        if isinstance(day, datetime):
            day = day.date()
        return self.start <= day <= self.end

    def __str__(self) -> str:
        return self.label


def quarter_to_report(logical_date: date | datetime) -> Quarter:
    """The quarter that ended just before ``logical_date`` (the run on 2026-10-01 reports 2026-Q3)."""
    return Quarter.containing(logical_date).previous()
