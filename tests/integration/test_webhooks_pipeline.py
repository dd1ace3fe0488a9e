"""Webhook subscription management against the sandbox: created once, repaired when drifted,
duplicates removed, dry run writes nothing (expected state from the documented /v3/webhooks contract)."""

from __future__ import annotations

import pytest

from closed_loop.playbook import load_playbook
from tests.webhook_helpers import Catcher

PB = load_playbook()


@pytest.fixture
def catcher():
    c = Catcher()
    yield c
    c.close()


def _survey_ids(stack) -> list[str]:
    surveys = stack.sandbox.admin("GET", "state")["sm"]["surveys"].values()
    titles = {PB.surveys.main.title, PB.surveys.recovery_pulse.title}
    return sorted(s["id"] for s in surveys if s["title"] in titles)


def _hooks(stack) -> list[dict]:
    return list(stack.sandbox.admin("GET", "state")["sm"].get("webhooks", {}).values())


def _ensure(stack, url, dry_run=False):
    from closed_loop.hooks import SurveyMonkeyHook
    from closed_loop.pipeline.webhooks import ensure_webhook

    with stack.connections():
        sm = SurveyMonkeyHook()
        report = ensure_webhook(sm, stack.ledger, PB, url, dry_run=dry_run)
    return report, sm.calls_made


def test_subscription_is_created_once_then_left_alone_or_repaired(stack, catcher):
    expected_ids = _survey_ids(stack)
    assert len(expected_ids) == 2

    plan, _ = _ensure(stack, catcher.url, dry_run=True)
    assert plan["action"] == "created" and plan["dry_run"] and _hooks(stack) == []

    report, _ = _ensure(stack, catcher.url)
    (hook,) = _hooks(stack)
    assert report == {**report, "action": "created", "webhook_id": hook["id"], "survey_ids": expected_ids}
    assert hook["event_type"] == "response_completed" and hook["object_type"] == "survey"
    assert sorted(hook["object_ids"]) == expected_ids and hook["subscription_url"] == catcher.url

    again, calls = _ensure(stack, catcher.url)
    assert again["action"] == "unchanged" and _hooks(stack) == [hook]
    assert calls == 2, "survey ids cached in the ledger: one list page + one read of our webhook"

    sm = stack.sandbox.sm_session()
    base = stack.sandbox.sm_base_url
    sm.patch(
        f"{base}/webhooks/{hook['id']}",
        json={"object_ids": expected_ids[:1], "event_type": "response_updated"},
    )
    sm.post(f"{base}/webhooks", json={k: v for k, v in hook.items() if k not in ("id", "href")})
    repaired, _ = _ensure(stack, catcher.url)
    assert repaired["action"] == "repaired" and repaired["changed_fields"] == ["event_type", "object_ids"]
    assert repaired["deleted_duplicates"] == 1
    (fixed,) = _hooks(stack)
    assert fixed["id"] == hook["id"] and sorted(fixed["object_ids"]) == expected_ids
    assert fixed["event_type"] == "response_completed"


def test_a_url_that_fails_surveymonkeys_head_check_is_refused(stack):
    from closed_loop.hooks.errors import SurveyMonkeyError

    with pytest.raises(SurveyMonkeyError):
        _ensure(stack, "http://127.0.0.1:9/surveymonkey/webhook")
    assert _hooks(stack) == []
