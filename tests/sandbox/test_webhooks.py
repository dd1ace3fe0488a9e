"""Sandbox webhooks: the documented /v3/webhooks contract and signed response_completed callbacks
(signature computed here from the docs: base64 HMAC-SHA1 of the raw body keyed "client_id&secret")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from sandbox.seed import MAIN_TITLE
from sandbox.testing import run_sandbox
from tests.webhook_helpers import Catcher


def expected_signature(body: bytes, client_id: str, secret: str) -> str:
    digest = hmac.new(f"{client_id}&{secret}".encode(), body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@pytest.fixture
def sb(tmp_path):
    with run_sandbox(tmp_path, seed=7, sm_minute_limit=100000, sm_day_limit=100000) as info:
        yield info


@pytest.fixture
def catcher():
    c = Catcher()
    yield c
    c.server.shutdown()


def _survey_id(sb) -> str:
    sm = sb.sm_session()
    return sm.get(f"{sb.sm_base_url}/surveys", params={"title": MAIN_TITLE}).json()["data"][0]["id"]


def _invite_everyone(sb) -> None:
    sm, sf, base = sb.sm_session(), sb.salesforce(), sb.sm_base_url
    collector = sm.post(f"{base}/surveys/{_survey_id(sb)}/collectors", json={"type": "email"}).json()
    message = sm.post(f"{base}/collectors/{collector['id']}/messages", json={"type": "invite"}).json()
    contacts = sf.query_all(
        "SELECT Email FROM Contact WHERE Implementations_Project_Manager__c = true ORDER BY Email"
    )["records"]
    sm.post(
        f"{base}/collectors/{collector['id']}/messages/{message['id']}/recipients/bulk",
        json={"contacts": [{"email": c["Email"]} for c in contacts]},
    )
    sm.post(f"{base}/collectors/{collector['id']}/messages/{message['id']}/send", json={})


def _subscribe(sb, url: str, object_ids: list[str]) -> dict:
    body = {
        "name": "closed-loop intake",
        "event_type": "response_completed",
        "object_type": "survey",
        "object_ids": object_ids,
        "subscription_url": url,
    }
    reply = sb.sm_session().post(f"{sb.sm_base_url}/webhooks", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_webhook_endpoints_follow_the_documented_contract(sb, catcher):
    sm, base = sb.sm_session(), sb.sm_base_url
    survey = _survey_id(sb)
    good = {
        "name": "n",
        "event_type": "response_completed",
        "object_type": "survey",
        "object_ids": [survey],
        "subscription_url": catcher.url,
    }
    missing = sm.post(f"{base}/webhooks", json={k: v for k, v in good.items() if k != "subscription_url"})
    assert missing.status_code == 400 and missing.json()["error"]["id"] == "1003"
    bad_event = sm.post(f"{base}/webhooks", json={**good, "event_type": "response_teleported"})
    assert bad_event.status_code == 400 and bad_event.json()["error"]["id"] == "1004"
    collector_created = sm.post(
        f"{base}/webhooks", json={**good, "object_type": "collector", "event_type": "collector_created"}
    )
    assert collector_created.status_code == 400
    no_head = sm.post(f"{base}/webhooks", json={**good, "subscription_url": "http://127.0.0.1:9/x"})
    assert no_head.status_code == 400 and "HEAD" in no_head.json()["error"]["message"]
    unknown = sm.post(f"{base}/webhooks", json={**good, "object_ids": ["999"]})
    assert unknown.status_code == 404
    unauthenticated = sb.session().post(f"{base}/webhooks", json=good)
    assert unauthenticated.status_code == 401

    created = sm.post(f"{base}/webhooks", json=good)
    assert created.status_code == 201
    hook = created.json()
    assert hook["href"].endswith(f"/v3/webhooks/{hook['id']}") and hook["object_ids"] == [survey]
    listed = sm.get(f"{base}/webhooks").json()
    assert [h["id"] for h in listed["data"]] == [hook["id"]]
    patched = sm.patch(f"{base}/webhooks/{hook['id']}", json={"name": "renamed"})
    assert patched.status_code == 200 and patched.json()["name"] == "renamed"
    assert sm.get(f"{base}/webhooks/{hook['id']}").json()["event_type"] == "response_completed"
    assert sm.delete(f"{base}/webhooks/{hook['id']}").status_code == 200
    assert sm.get(f"{base}/webhooks/{hook['id']}").status_code == 404


def test_completed_responses_are_delivered_signed_and_faults_apply(sb, catcher):
    survey = _survey_id(sb)
    _subscribe(sb, catcher.url, [survey])
    _invite_everyone(sb)
    sb.admin("POST", "faults", {"webhook_drop": 1, "webhook_duplicate": 1, "webhook_forge": 1})
    sb.admin("POST", "clock", {"advance_days": 5})
    completed = [
        r
        for r in sb.admin("GET", "responses")
        if r["response_status"] == "completed" and r["survey_id"] == survey
    ]
    assert len(completed) >= 5, "the simulation completed responses"
    posts = catcher.wait_for(len(completed))  # one dropped, one duplicated
    time.sleep(0.5)
    assert len(catcher.posts) == len(completed)

    bodies = [json.loads(p["body"]) for p in posts]
    for post, body in zip(posts, bodies, strict=True):
        assert body["event_type"] == "response_completed" and body["object_type"] == "response"
        assert body["filter_type"] == "survey" and body["filter_id"] == survey
        assert (
            body["resources"]["survey_id"] == survey
            and body["resources"]["respondent_id"] == body["object_id"]
        )
        assert set(body) == {
            "name",
            "filter_type",
            "filter_id",
            "event_type",
            "event_id",
            "object_type",
            "object_id",
            "event_datetime",
            "resources",
        }
        assert post["headers"]["Sm-Apikey"] == sb.sm_client_id
        assert "@" not in post["body"].decode(), "callbacks carry ids, no respondent data"
    valid = [
        p["headers"]["Sm-Signature"] == expected_signature(p["body"], sb.sm_client_id, sb.sm_client_secret)
        for p in posts
    ]
    event_ids = [b["event_id"] for b in bodies]
    forged = {e for e, ok in zip(event_ids, valid, strict=True) if not ok}
    assert len(forged) == 1, "exactly one event forged (the faults fire on the same next event)"
    assert len(event_ids) - len(set(event_ids)) == 1, "exactly one duplicated delivery"
    delivered = {b["object_id"] for b in bodies}
    assert len(delivered) == len(completed) - 1, "exactly one dropped"
    assert delivered <= {r["id"] for r in completed}
    log = sb.admin("GET", "webhooks/deliveries")
    assert [e for e in log if e.get("fault") == "dropped"] and all(
        e["status"] == 200 for e in log if "fault" not in e
    )


def test_delay_reorders_and_burst_makes_a_storm(sb, catcher):
    survey = _survey_id(sb)
    _subscribe(sb, catcher.url, [survey])
    _invite_everyone(sb)
    sb.admin("POST", "clock", {"advance_days": 5})
    first = len(catcher.wait_for(1))
    assert first >= 1
    time.sleep(0.5)
    baseline = len(catcher.posts)
    sb.admin("POST", "faults", {"webhook_delay_ms": 1500})
    t0 = time.monotonic()
    queued = sb.admin("POST", "webhooks/burst", {"count": 40})["queued"]
    assert queued == 40
    posts = catcher.wait_for(baseline + 40)[baseline:]
    assert len(posts) == 40 and min(p["at"] for p in posts) - t0 >= 1.4, "held back by the delay"
    assert len({json.loads(p["body"])["event_id"] for p in posts}) == 40, "a storm of distinct events"
