"""The Ledger facade: one object with every repository method the DAGs call."""

from __future__ import annotations

from .cases import CasesMixin
from .events import EventsMixin
from .frames import FramesMixin
from .outbox import OutboxMixin
from .responses import ResponsesMixin
from .sends import SendsMixin
from .sweep import SweepMixin
from .sync import SyncMixin


class Ledger(
    SyncMixin, SendsMixin, ResponsesMixin, CasesMixin, SweepMixin, EventsMixin, OutboxMixin, FramesMixin
):
    """``Ledger(engine)``, ``Ledger.from_url(url)`` or ``Ledger.from_conn_id("closed_loop_db")``;
    call ``migrate()`` once to create/upgrade the schema. Every method is its own transaction."""
