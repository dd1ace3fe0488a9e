"""Portable column types: timezone-aware UTC timestamps and dates that accept ISO strings."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.types import Date, DateTime, TypeDecorator

UTC = dt.UTC


def to_utc(value: dt.datetime | str | None) -> dt.datetime | None:
    """An aware UTC datetime from a datetime (naive = UTC) or an ISO-8601 string (Salesforce/SurveyMonkey)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":  # "+0000" -> "+00:00"
            text = f"{text[:-2]}:{text[-2:]}"
        value = dt.datetime.fromisoformat(text)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_date(value: dt.date | str | None) -> dt.date | None:
    """A date from a date, a datetime (its UTC date) or an ISO string."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return to_utc(value).date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """TIMESTAMP WITH TIME ZONE on PostgreSQL, naive-UTC text on SQLite; always aware UTC in Python."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        value = to_utc(value)
        if value is not None and dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return to_utc(value)


class IsoDate(TypeDecorator):
    """DATE that also accepts ISO strings on the way in."""

    impl = Date
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return to_date(value)
