"""Batched writes for SQLite and PostgreSQL: INSERT ... ON CONFLICT keyed on a natural key, multi-row
inserts that return the new keys, and keyed updates (one statement per batch of same-shaped rows)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any

from sqlalchemy import ColumnElement, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def _insert(session: Session, model):
    dialect = session.get_bind().dialect.name
    try:
        return _INSERTS[dialect](model)
    except KeyError:
        raise NotImplementedError(f"the ledger supports SQLite and PostgreSQL, not {dialect}") from None


def clean_rows(model, rows: Iterable[Mapping]) -> list[dict]:
    """Copy rows, rejecting keys that are not columns of ``model`` (catches typos early)."""
    columns = set(model.__table__.columns.keys())
    out = []
    for row in rows:
        unknown = set(row) - columns
        if unknown:
            raise ValueError(f"{model.__tablename__}: unknown columns {sorted(unknown)}")
        out.append(dict(row))
    return out


def _by_shape(rows: list[dict]):
    """Group rows by their key set: one executemany per shape, so absent keys never overwrite values."""
    ordered = sorted(rows, key=lambda r: tuple(sorted(r)))
    for keys, group in groupby(ordered, key=lambda r: tuple(sorted(r))):
        yield keys, list(group)


def upsert(
    session: Session,
    model,
    rows: Iterable[Mapping],
    key: Sequence[str],
    *,
    update: Sequence[str] | None = None,
    where: ColumnElement[bool] | None = None,
) -> int:
    """Insert rows, or update the given columns (default: all supplied non-key columns) on a key conflict.

    ``where`` restricts which existing rows may be updated (e.g. only still-planned sends).
    Returns the number of rows given.
    """
    rows = clean_rows(model, rows)
    for keys, group in _by_shape(rows):
        stmt = _insert(session, model)
        cols = [c for c in (update if update is not None else keys) if c in keys and c not in key]
        if cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(key), set_={c: stmt.excluded[c] for c in cols}, where=where
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
        session.execute(stmt, group)
    return len(rows)


def insert_if_absent(session: Session, model, rows: Iterable[Mapping], key: Sequence[str]) -> list[tuple]:
    """Insert rows whose key is new; returns the keys actually inserted (others were already there).
    One multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per chunk of same-shaped rows."""
    rows = clean_rows(model, rows)
    inserted: list[tuple] = []
    key_cols = [model.__table__.c[k] for k in key]
    for keys, group in _by_shape(rows):
        size = max(1, min(500, _MAX_PARAMS // max(1, len(keys))))
        for start in range(0, len(group), size):
            chunk = group[start : start + size]
            stmt = _insert(session, model).values(chunk)
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key)).returning(*key_cols)
            inserted.extend(tuple(r) for r in session.execute(stmt))
    return inserted


_MAX_PARAMS = 30_000  # SQLite allows 32,766 host parameters per statement (since 3.32); PostgreSQL 65,535


def update_rows(
    session: Session,
    table: Table,
    key_col: str,
    rows: Iterable[Mapping],
    *,
    where: Callable[[Table], ColumnElement[bool]] | None = None,
    expressions: Mapping[str, Callable[[Any], Any]] | None = None,
) -> int:
    """Update existing rows by ``key_col``: one executemany UPDATE per shape (the columns each row sets).
    ``where(table)`` adds a condition; ``expressions[col](param)`` wraps a column's new value (e.g. keep
    the first completion time). Returns the rows matched."""
    n = 0
    for keys, group in _by_shape([dict(r) for r in rows]):
        cols = [c for c in keys if c != key_col]
        if not cols:
            continue
        values = {}
        for c in cols:
            param = bindparam(f"b_{c}", type_=table.c[c].type)
            values[c] = (expressions or {}).get(c, lambda p: p)(param) if expressions else param
        stmt = update(table).where(table.c[key_col] == bindparam("b__key", type_=table.c[key_col].type))
        if where is not None:
            stmt = stmt.where(where(table))
        params = [{"b__key": r[key_col], **{f"b_{c}": r[c] for c in cols}} for r in group]
        if not session.get_bind().dialect.supports_sane_multi_rowcount:  # psycopg2 execute_batch pages
            n += _matching(session, table, key_col, [r[key_col] for r in group], where)
            session.execute(stmt.values(values), params)
        else:
            n += session.execute(stmt.values(values), params).rowcount
    return n


def _matching(session: Session, table: Table, key_col: str, keys: list, where) -> int:
    """How many rows an update by these keys will match (counted before it, in the same transaction)."""
    cond = table.c[key_col].in_(list(dict.fromkeys(keys)))
    if where is not None:
        cond = cond & where(table)
    return session.scalar(select(func.count()).select_from(table).where(cond)) or 0
