"""Sandbox state: one JSON-able dict, the sandbox clock, id generation and atomic persistence."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SF_PREFIX = {"Account": "001", "Contact": "003", "User": "005", "Case": "500", "Task": "00T"}
PREFIX_TYPE = {v: k for k, v in SF_PREFIX.items()}
DEFAULT_START = "2026-07-01T09:00:00Z"


def parse_ts(value: str) -> datetime:
    """Parse an ISO 8601 / Salesforce / SurveyMonkey timestamp into an aware UTC datetime."""
    text = value.strip().replace("Z", "+00:00")
    if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":" and "T" in text:
        text = text[:-2] + ":" + text[-2:]  # +0000 -> +00:00
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def sf_datetime(moment: datetime) -> str:
    """Salesforce's wire format: 2026-07-01T09:00:00.000+0000."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def sm_datetime(moment: datetime) -> str:
    """SurveyMonkey's wire format: 2026-07-01T09:00:00+00:00."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sf_checksum(id15: str) -> str:
    """The 3-character case-safe suffix that turns a 15-char Salesforce id into 18 chars."""
    suffix = ""
    for chunk in range(3):
        bits = sum(1 << i for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]) if ch.isupper())
        suffix += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return suffix


class SandboxState:
    """Holds `data` (the persisted dict) behind a re-entrant lock; the server mutates it under `lock`."""

    def __init__(self, data: dict[str, Any], path: Path | None) -> None:
        self.data = data
        self.path = path
        self.lock = threading.RLock()
        self.cursors: dict[str, dict[str, Any]] = {}  # SOQL paging cursors live in memory only
        self.indexes: dict[tuple[str, str], dict[str, Any]] = {}  # records.find_by lookups, in memory only
        self.cache: dict[str, Any] = {}  # derived views (e.g. sorted response lists), in memory only
        self.request_headers: dict[str, str] | None = None  # the API request being served (lock held)
        self.dirty = False  # GETs change counters: saved by the server's idle loop, not per request

    # clock -----------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return parse_ts(self.data["clock"])

    def set_now(self, moment: datetime) -> None:
        self.data["clock"] = iso(moment)

    @property
    def today(self) -> date:
        return self.now.date()

    # ids -------------------------------------------------------------------
    def _next(self, name: str) -> int:
        seq = self.data.setdefault("seq", {})
        seq[name] = seq.get(name, 0) + 1
        return seq[name]

    def new_sf_id(self, sobject: str) -> str:
        n = self._next(sobject)
        body = ""
        while n or len(body) < 10:
            n, rem = divmod(n, 62)
            body = BASE62[rem] + body
        id15 = SF_PREFIX[sobject] + "8d" + body[-10:]
        return id15 + sf_checksum(id15)

    def new_sm_id(self, kind: str, base: int) -> str:
        return str(base + self._next("sm_" + kind))

    # persistence -----------------------------------------------------------
    def save(self) -> None:
        if self.path is None:
            return
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".state-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.data, handle, separators=(",", ":"))
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> SandboxState:
        return cls(json.loads(path.read_text()), path)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)
