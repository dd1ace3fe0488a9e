"""Where the event path is configured (environment only: read at DAG parse time, so no I/O here).

- ``CLOSED_LOOP_INTAKE_TRIGGER``: ``polling`` (default: the embedded demo, no Redis, no public URL) or
  ``events`` (response_intake runs on the webhook asset and on ``intake.reconcile_schedule``).
- ``CLOSED_LOOP_WEBHOOK_CHANNEL``: the Redis pub/sub channel the receiver publishes to and the
  triggerer listens on.
- ``CLOSED_LOOP_REDIS_CONN_ID``: the Airflow connection of that Redis (type ``redis``).
"""

from __future__ import annotations

import os

DEFAULT_CHANNEL = "closed_loop.surveymonkey.responses"
DEFAULT_REDIS_CONN_ID = "redis_default"
WEBHOOK_CONN_ID = "surveymonkey_webhook"  # login = API key / client id, password = API secret


def events_enabled() -> bool:
    value = os.environ.get("CLOSED_LOOP_INTAKE_TRIGGER", "polling").strip().lower()
    if value not in ("polling", "events"):
        raise ValueError(f"CLOSED_LOOP_INTAKE_TRIGGER must be 'polling' or 'events', not {value!r}")
    return value == "events"


def channel() -> str:
    return os.environ.get("CLOSED_LOOP_WEBHOOK_CHANNEL") or DEFAULT_CHANNEL


def redis_conn_id() -> str:
    return os.environ.get("CLOSED_LOOP_REDIS_CONN_ID") or DEFAULT_REDIS_CONN_ID
