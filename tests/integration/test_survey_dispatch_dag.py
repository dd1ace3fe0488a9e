"""survey_dispatch end to end through `airflow dags test`, then a rerun of the same day."""

from __future__ import annotations

from datetime import date

import pytest

pytestmark = pytest.mark.airflow


def _invites(stack) -> dict[str, int]:
    out: dict[str, int] = {}
    for message in stack.sandbox.admin("GET", "messages"):
        if message["type"] == "invite" and message["status"] == "sent":
            for r in message["recipients"]:
                out[r["email"]] = out.get(r["email"], 0) + 1
    return out


def test_dag_run_and_rerun_send_each_invite_once(stack, stack_airflow):
    stack.sandbox.admin("POST", "clock", {"now": "2026-07-01T14:00:00Z"})
    first = stack_airflow.dags_test("survey_dispatch", "2026-07-01T14:00:00+00:00")
    assert first.ok, first.output[-3000:]
    invited = _invites(stack)
    assert invited and set(invited.values()) == {1}
    assert stack.ledger.pending_intents() == [] and stack.ledger.sends_due(date(2026, 7, 1)) == []
    recorded = stack.ledger.send_by_recipient(
        r["id"] for m in stack.sandbox.admin("GET", "messages") for r in m["recipients"]
    )
    assert len(recorded) == len(invited) and {r["status"] for r in recorded.values()} == {"sent"}
    posts = {
        k: v
        for k, v in stack.sandbox.admin("GET", "counters")["sm"]["endpoints"].items()
        if k.startswith("POST")
    }

    again = stack_airflow.dags_test("survey_dispatch", "2026-07-01T14:00:00+00:00")
    assert again.ok, again.output[-3000:]
    assert _invites(stack) == invited
    after = {
        k: v
        for k, v in stack.sandbox.admin("GET", "counters")["sm"]["endpoints"].items()
        if k.startswith("POST")
    }
    assert after == posts  # the rerun wrote nothing to SurveyMonkey
