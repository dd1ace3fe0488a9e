"""Engine, sessions, migrations, watermarks and row helpers shared by the repository mixins."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event, make_url, select, text
from sqlalchemy.orm import Session

from .models import Watermark
from .types import utcnow
from .upsert import upsert

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x0C105ED  # pg advisory lock id serialising concurrent Ledger.migrate() calls
VERSION_TABLE = "closed_loop_alembic_version"  # not "alembic_version": the ledger may share Airflow's DB


def as_dict(obj) -> dict:
    """A mapped row as a plain dict of its columns."""
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class LedgerCore:
    """The ledger's connection to its database. Each repository method is one transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str | URL, **engine_kw):
        if make_url(url).get_backend_name() == "postgresql" and make_url(url).get_driver_name() == "psycopg2":
            # executemany UPDATEs in pages (psycopg2 execute_batch), INSERTs as multi-row VALUES
            engine_kw.setdefault("executemany_mode", "values_plus_batch")
        engine = create_engine(url, **engine_kw)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        return cls(engine)

    @classmethod
    def from_conn_id(cls, conn_id: str = "closed_loop_db", **engine_kw):
        """The ledger behind an Airflow connection: sqlite (host = file), postgres, extra sqlalchemy_url."""
        try:
            from airflow.sdk import BaseHook
        except ImportError:  # pragma: no cover - older Airflow
            from airflow.hooks.base import BaseHook

        return cls.from_url(url_from_connection(BaseHook.get_connection(conn_id)), **engine_kw)

    # -- sessions and schema ------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any exception."""
        with Session(self.engine, expire_on_commit=False) as session:
            with session.begin():
                yield session

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with the Alembic scripts shipped in this package."""
        from alembic import command

        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # parallel tasks may migrate at once: one at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- watermarks ---------------------------------------------------------------------------
    def get_watermark(self, name: str, default: str | None = None) -> str | None:
        with self.session() as s:
            value = s.scalar(select(Watermark.value).where(Watermark.name == name))
        return default if value is None else value

    def set_watermark(self, name: str, value: str) -> None:
        with self.session() as s:
            self._set_watermark(s, name, value)

    @staticmethod
    def _set_watermark(session: Session, name: str, value: str) -> None:
        upsert(session, Watermark, [{"name": name, "value": str(value), "updated_at": utcnow()}], ["name"])


def alembic_config():
    """An Alembic Config built in code (no alembic.ini needed at runtime)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("version_table", VERSION_TABLE)
    return cfg


def url_from_connection(conn) -> str | URL:
    """SQLAlchemy URL for an Airflow Connection (sqlite or postgres), or its extra ``sqlalchemy_url``."""
    extra = conn.extra_dejson or {}
    if extra.get("sqlalchemy_url"):
        return extra["sqlalchemy_url"]
    conn_type = (conn.conn_type or "").lower()
    if conn_type == "sqlite":
        return f"sqlite:///{conn.host}"
    if conn_type in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        )
    raise ValueError(f"connection {conn.conn_id!r}: unsupported conn_type {conn.conn_type!r} for the ledger")
