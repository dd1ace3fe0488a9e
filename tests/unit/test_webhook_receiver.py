"""The webhook receiver: signature/size/replay checks (expected signatures computed here from the
SurveyMonkey docs), and the Starlette app against the machine's Redis (a unique channel per test)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from closed_loop.webhooks import delivery
from closed_loop.webhooks.delivery import ReceiverSettings

KEY, SECRET = "client-id-123", "s3cret-value"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def doc_signature(body: bytes, key: str = KEY, secret: str = SECRET) -> str:
    """Per the docs: base64(HMAC-SHA1(key="api_key&api_secret", msg=raw body))."""
    return base64.b64encode(hmac.new(f"{key}&{secret}".encode(), body, hashlib.sha1).digest()).decode()


def callback(event_id: str = "900001", at: datetime = NOW, **extra) -> bytes:
    body = {
        "name": "closed-loop intake",
        "filter_type": "survey",
        "filter_id": "40001",
        "event_type": "response_completed",
        "event_id": event_id,
        "object_type": "response",
        "object_id": "12000000007",
        "event_datetime": at.isoformat(),
        "resources": {
            "respondent_id": "12000000007",
            "recipient_id": "77",
            "collector_id": "5",
            "survey_id": "40001",
            "user_id": "1",
        },
        **extra,
    }
    return json.dumps(body).encode()


def headers(body: bytes, signature: str | None = None, key: str = KEY) -> dict[str, str]:
    out = {"sm-apikey": key, "content-type": "application/json"}
    out["sm-signature"] = doc_signature(body) if signature is None else signature
    return out


SETTINGS = ReceiverSettings(KEY, SECRET, "unused")


def test_a_signed_fresh_callback_is_accepted_with_its_ids_only():
    body = callback()
    verdict = delivery.inspect(headers(body), body, SETTINGS, now=NOW + timedelta(seconds=3))
    assert verdict.status == 200 and verdict.accepted
    assert verdict.event == {
        "event_id": "900001",
        "event_type": "response_completed",
        "survey_id": "40001",
        "response_id": "12000000007",
    }


@pytest.mark.parametrize(
    ("mutate", "status", "reason"),
    [
        (lambda b, h: (b, {k: v for k, v in h.items() if k != "sm-signature"}), 401, "unsigned"),
        (lambda b, h: (b, {**h, "sm-signature": doc_signature(b, secret="guess")}), 401, "bad_signature"),
        (lambda b, h: (b.replace(b"12000000007", b"12000000008"), h), 401, "bad_signature"),
        (lambda b, h: (b, {**h, "sm-apikey": "someone-else"}), 401, "unknown_api_key"),
        (lambda b, h: (b + b" " * 20_000, h), 413, "oversized"),
    ],
    ids=["unsigned", "wrong-secret", "tampered-body", "other-app", "oversized"],
)
def test_unsigned_forged_and_oversized_deliveries_are_rejected(mutate, status, reason):
    body = callback()
    body, hdrs = mutate(body, headers(body))
    verdict = delivery.inspect(hdrs, body, SETTINGS, now=NOW)
    assert (verdict.status, verdict.reason, verdict.event) == (status, reason, None)


def test_a_replayed_old_delivery_and_malformed_ones_are_rejected():
    old = callback(at=NOW - timedelta(seconds=SETTINGS.max_age_seconds + 1))
    assert delivery.inspect(headers(old), old, SETTINGS, now=NOW).reason == "replay_stale_event"
    future = callback(at=NOW + timedelta(hours=1))
    assert delivery.inspect(headers(future), future, SETTINGS, now=NOW).status == 403
    not_json = b"{nope"
    assert delivery.inspect(headers(not_json), not_json, SETTINGS, now=NOW).reason == "malformed_json"
    no_ids = json.dumps({"event_type": "response_completed"}).encode()
    assert delivery.inspect(headers(no_ids), no_ids, SETTINGS, now=NOW).reason == "malformed_event"
    other = callback(event_type="collector_created")
    assert delivery.inspect(headers(other), other, SETTINGS, now=NOW).status == 202


# ---- the app, on real Redis ------------------------------------------------------------------------
@pytest.fixture
def channel():
    return f"test.webhooks.{secrets.token_hex(6)}"


@pytest.fixture
def listener(channel):
    """Messages published on the test's channel, collected by a real Redis subscriber."""
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    messages: list[dict] = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                messages.append(json.loads(message["data"]))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield messages
    stop.set()
    thread.join(2)
    pubsub.close()
    for key in client.scan_iter(f"{channel}:*"):
        client.delete(key)


@pytest.fixture
def client(channel):
    import redis.asyncio as aioredis
    from starlette.testclient import TestClient

    from closed_loop.webhooks.receiver import create_app

    settings = ReceiverSettings(KEY, SECRET, channel, coalesce_seconds=1.0)
    app = create_app(settings, aioredis.Redis.from_url("redis://127.0.0.1:6379/0"))
    with TestClient(app) as test_client:
        yield test_client


def _post(client, body: bytes, **kw):
    return client.post("/surveymonkey/webhook", content=body, headers=headers(body, **kw))


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def test_receiver_publishes_ids_once_and_logs_rejections_without_the_body(client, listener, caplog):
    caplog.set_level(logging.INFO, logger="closed_loop.webhooks.receiver")
    assert client.head("/surveymonkey/webhook").status_code == 200, "SurveyMonkey's HEAD check"
    now = datetime.now(UTC)
    body = callback("E-1", at=now)
    assert _post(client, body).json() == {"status": "accepted"}
    assert _wait(lambda: len(listener) == 1)
    assert listener[0] == {
        "count": 1,
        "events": [
            {
                "event_id": "E-1",
                "event_type": "response_completed",
                "survey_id": "40001",
                "response_id": "12000000007",
            }
        ],
    }
    again = _post(client, body)  # SurveyMonkey retry or a replay inside the window
    assert again.status_code == 200 and again.json() == {"status": "duplicate_event"}

    secret_marker = "jane.doe@customer.example"
    forged = callback("E-2", at=now, name=secret_marker)
    assert _post(client, forged, signature=doc_signature(forged, secret="guess")).status_code == 401
    assert client.post("/surveymonkey/webhook", content=forged).status_code == 401
    huge = callback("E-3", at=now, name="x" * 50_000)
    assert _post(client, huge).status_code == 413
    stale = callback("E-4", at=now - timedelta(hours=2))
    assert _post(client, stale).status_code == 403
    time.sleep(1.5)
    assert len(listener) == 1, "nothing but the first delivery woke the intake"
    health = client.get("/healthz").json()
    assert health["deliveries"] == {
        "accepted": 1,
        "duplicate_event": 1,
        "bad_signature": 1,
        "unsigned": 1,
        "oversized": 1,
        "replay_stale_event": 1,
    }
    text = caplog.text
    for reason in ("bad_signature", "unsigned", "oversized", "replay_stale_event"):
        assert f"webhook rejected: {reason}" in text
    assert secret_marker not in text and SECRET not in text


def test_a_storm_is_coalesced_into_a_few_wake_ups(client, listener):
    now = datetime.now(UTC)
    t0 = time.monotonic()
    for i in range(200):
        assert _post(client, callback(f"S-{i}", at=now)).status_code == 200
    elapsed = time.monotonic() - t0
    assert _wait(lambda: sum(m["count"] for m in listener) == 200)
    # leading edge + one per coalesce window (1 s) while the storm lasts
    assert len(listener) <= 2 + int(elapsed / 1.0), (len(listener), elapsed)
    ids = [e["event_id"] for m in listener for e in m["events"]]
    assert len(ids) == len(set(ids)), "no event published twice"
