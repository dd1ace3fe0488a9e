"""What to do with one webhook delivery: the pure checks, in the order the receiver applies them.

Size, then signature (``Sm-Apikey`` must be ours and ``Sm-Signature`` must match the raw body), then the
documented callback shape, then freshness (``event_datetime`` within ``max_age_seconds``: a captured
delivery replayed later is refused). A replay inside the window repeats an ``event_id`` already seen and
is acknowledged without a second wake-up (the receiver checks that in Redis). No Airflow import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from closed_loop.webhooks import signature

ACCEPTED_EVENTS = frozenset({"response_completed", "response_updated"})


@dataclass(frozen=True)
class ReceiverSettings:
    api_key: str
    api_secret: str
    channel: str
    max_body_bytes: int = 16_384  # a documented callback is about 500 bytes
    max_age_seconds: float = 900.0  # older deliveries are replays (reconciliation catches real ones)
    max_skew_seconds: float = 120.0  # tolerated clock difference for events "from the future"
    dedupe_ttl_seconds: int = 7 * 86_400  # longer than max_age: a replay in the window is a duplicate
    coalesce_seconds: float = 2.0  # at most one wake-up per this many seconds (storms -> few runs)

    def __repr__(self) -> str:  # never show the secret
        return f"ReceiverSettings(channel={self.channel!r}, max_body_bytes={self.max_body_bytes})"


@dataclass(frozen=True)
class Verdict:
    status: int  # HTTP status to answer
    reason: str  # short machine-readable reason, safe to log
    event: dict | None = None  # ids only: event_id, event_type, survey_id, response_id

    @property
    def accepted(self) -> bool:
        return self.event is not None


def too_large(length: int, settings: ReceiverSettings) -> Verdict | None:
    if length > settings.max_body_bytes:
        return Verdict(413, "oversized")
    return None


def inspect(
    headers: Mapping[str, str], body: bytes, settings: ReceiverSettings, now: datetime | None = None
) -> Verdict:
    """Check one delivery (``headers`` with lower-case names); an accepted one carries its ids."""
    oversized = too_large(len(body), settings)
    if oversized:
        return oversized
    sent_signature = headers.get("sm-signature")
    if not sent_signature:
        return Verdict(401, "unsigned")
    if headers.get("sm-apikey", "").strip() != settings.api_key:
        return Verdict(401, "unknown_api_key")
    if not signature.verify(body, sent_signature, settings.api_key, settings.api_secret):
        return Verdict(401, "bad_signature")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return Verdict(400, "malformed_json")
    event = _ids(payload)
    if event is None:
        return Verdict(400, "malformed_event")
    if event["event_type"] not in ACCEPTED_EVENTS:
        return Verdict(202, "ignored_event_type")
    moment = _parse_datetime(payload.get("event_datetime"))
    if moment is None:
        return Verdict(400, "malformed_event_datetime")
    age = ((now or datetime.now(UTC)) - moment).total_seconds()
    if age > settings.max_age_seconds:
        return Verdict(403, "replay_stale_event")
    if age < -settings.max_skew_seconds:
        return Verdict(403, "event_from_the_future")
    return Verdict(200, "accepted", event)


def _ids(payload: object) -> dict | None:
    if not isinstance(payload, dict):
        return None
    resources = payload.get("resources")
    resources = resources if isinstance(resources, dict) else {}
    event = {
        "event_id": payload.get("event_id"),
        "event_type": payload.get("event_type"),
        "survey_id": resources.get("survey_id")
        or (payload.get("filter_id") if payload.get("filter_type") == "survey" else None),
        "response_id": payload.get("object_id") if payload.get("object_type") == "response" else None,
    }
    if not all(isinstance(v, str) and v and len(v) <= 64 for v in event.values()):
        return None
    return event


def _parse_datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
