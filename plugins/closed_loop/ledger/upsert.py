"""Dialect-specific INSERT ... ON CONFLICT for SQLite and PostgreSQL, keyed on a natural key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby

from sqlalchemy import ColumnElement
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
    """Insert rows whose key is new; returns the keys actually inserted (others were already there)."""
    rows = clean_rows(model, rows)
    inserted: list[tuple] = []
    key_cols = [model.__table__.c[k] for k in key]
    for _, group in _by_shape(rows):
        stmt = _insert(session, model).on_conflict_do_nothing(index_elements=list(key)).returning(*key_cols)
        for row in group:  # one statement per row: RETURNING with executemany is not portable for conflicts
            inserted.extend(tuple(r) for r in session.execute(stmt, row))
    return inserted
