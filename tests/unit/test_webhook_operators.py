"""EnsureWebhookOperator: templated fields, the URL from its param or the receiver's connection host,
a small JSON-safe report."""

from __future__ import annotations

import json

import pytest

from closed_loop.operators.webhooks import EnsureWebhookOperator
from tests.webhook_helpers import Catcher


@pytest.fixture
def catcher():
    c = Catcher()
    yield c
    c.close()


def test_templated_fields_and_no_hook_at_construction():
    op = EnsureWebhookOperator(task_id="t", surveymonkey_conn_id="nope")
    assert {"subscription_url", "surveymonkey_conn_id", "dry_run"} <= set(op.template_fields)


def test_execute_uses_the_connection_host_and_reports(stack, catcher, monkeypatch):
    with stack.connections():
        monkeypatch.setenv(
            "AIRFLOW_CONN_SURVEYMONKEY_WEBHOOK",
            json.dumps({"conn_type": "generic", "host": catcher.url, "login": "k", "password": "s"}),
        )
        first = EnsureWebhookOperator(task_id="ensure", dry_run=False).execute({})
        second = EnsureWebhookOperator(task_id="ensure", dry_run=False).execute({})
        monkeypatch.setenv("AIRFLOW_CONN_SURVEYMONKEY_WEBHOOK", json.dumps({"conn_type": "generic"}))
        with pytest.raises(ValueError, match="subscription_url"):
            EnsureWebhookOperator(task_id="ensure", dry_run=False).execute({})
    assert first["action"] == "created" and second["action"] == "unchanged"
    assert second["webhook_id"] == first["webhook_id"] and second["api_calls"] == 2
    json.dumps(first)  # XCom-safe
    hooks = stack.sandbox.admin("GET", "state")["sm"]["webhooks"]
    assert [h["subscription_url"] for h in hooks.values()] == [catcher.url]
