"""Storms: rate limits, 5xx runs, slow responses past the timeout, an expired session, per-record failures
and spent daily budgets. Each run completes or stops cleanly; the next run finishes; nothing is sent twice."""

from __future__ import annotations

import time

import pytest
from reliability_helpers import (
    PIPELINES,
    assert_clean,
    audit,
    dispatch_run,
    dispatch_setup,
    fault_on,
    intake_run,
    intake_setup,
    with_timeout,
)

from closed_loop.hooks.errors import (
    SalesforceApiError,
    SalesforceBudgetExhausted,
    SalesforceSessionExpired,
    SurveyMonkeyBudgetExhausted,
    SurveyMonkeyServerError,
)


def _finish(w, pipeline: str) -> dict:
    """The next run (new hooks) and one more rerun, then the audit; both must be clean."""
    w.clear_faults()
    run = PIPELINES[pipeline][1]
    run(w.fresh_hooks(), run_id="next")
    run(w.fresh_hooks(), run_id="rerun")
    report = audit(w)
    assert_clean(report)
    return report


@pytest.mark.parametrize("headers", [True, False], ids=["with-headers", "without-headers"])
def test_429_burst_is_paced_and_the_batch_completes(world, record, headers):
    dispatch_setup(world)
    waits = []
    world.sm.sleep = waits.append
    world.faults(sm_429_burst=3, **({} if headers else {"sm_429_without_headers": True}))
    out = dispatch_run(world)
    assert out["sent"] > 0 and len(waits) == 3
    if headers:  # the minute window's reset header sets the wait (+1 s), not a blind backoff
        assert all(w >= 1 for w in waits)
    report = _finish(world, "dispatch")
    record(f"429 burst x3 ({'with' if headers else 'without'} rate headers)",
           "completed in the same run, 3 paced retries", waits_s=[round(w, 1) for w in waits],
           **report["totals"])  # fmt: skip


def test_sm_5xx_on_reads_is_retried(world, record):
    dispatch_setup(world)
    world.faults(sm_5xx=2)
    out = dispatch_run(world)
    assert out["sent"] > 0
    report = _finish(world, "dispatch")
    record("SurveyMonkey 500/503 x2 on reads", "retried, completed in the same run", **report["totals"])


def test_sm_5xx_on_the_send_stops_the_run_and_the_next_run_reconciles(world, monkeypatch, record):
    dispatch_setup(world)
    fired = fault_on(monkeypatch, world, "sm.send_message", sm_5xx=1)
    with pytest.raises(SurveyMonkeyServerError):
        dispatch_run(world)  # a POST that may have run is never repeated blindly
    assert fired and world.ledger.pending_intents()
    monkeypatch.undo()
    report = _finish(world, "dispatch")
    record("SurveyMonkey 500 on the send POST", "run failed cleanly; next run reconciled and sent once",
           **report["totals"])  # fmt: skip


@pytest.mark.parametrize("count", [3, 12], ids=["short-run", "long-run"])
def test_sf_5xx_runs_during_case_upserts(world, monkeypatch, record, count):
    intake_setup(world)
    world.notes["intake_ran"] = True
    fault_on(monkeypatch, world, "sf.create_records", "case", sf_5xx=count)
    if count < world.sf.max_attempts:
        ingest, opened = intake_run(world)
        assert opened.cases_created == ingest.cases_planned > 0
        result = "retried (idempotent upsert), completed in the same run"
    else:
        with pytest.raises(SalesforceApiError) as err:
            intake_run(world)
        assert err.value.status in (500, 503)
        result = "run stopped with a typed error; next run completed"
    monkeypatch.undo()
    report = _finish(world, "intake")
    record(f"Salesforce 500/503 x{count} on the Case create", result, **report["totals"])


def test_slow_send_past_the_timeout_is_reconciled_not_resent(world, monkeypatch, record):
    """The send POST times out on the client while the server still performs it (the ambiguous case)."""
    dispatch_setup(world)
    with_timeout(monkeypatch, world, 0.5)
    fault_on(monkeypatch, world, "sm.send_message", slow_ms=1500)
    with pytest.raises(Exception) as err:
        dispatch_run(world)
    assert "timed out" in str(err.value).lower()
    world.clear_faults()
    deadline = time.monotonic() + 600  # polls; a loaded machine may be slow to finish the send
    while not (sent := [m for m in world.admin("GET", "messages") if m["status"] == "sent"]):
        assert time.monotonic() < deadline, "the server never performed the timed-out send"
        time.sleep(0.1)
    assert len(sent) == 1, "the server did send it"
    report = _finish(world, "dispatch")
    record("SurveyMonkey send slower than the 0.5 s timeout", "run failed; next run found it sent, no resend",
           **report["totals"])  # fmt: skip


def test_slow_salesforce_upserts_past_the_timeout(world, monkeypatch, record):
    intake_setup(world)
    world.notes["intake_ran"] = True
    with_timeout(monkeypatch, world, 0.5)
    fault_on(monkeypatch, world, "sf.create_records", "case", slow_ms=1200)
    with pytest.raises(SalesforceApiError, match="TIMEOUT"):
        intake_run(world)
    report = _finish(world, "intake")
    record("Salesforce Case creates slower than the 0.5 s timeout (4 attempts, each executed server-side)",
           "run failed with TIMEOUT; next run upserted the same records", **report["totals"])  # fmt: skip


def test_session_expires_mid_batch(world, monkeypatch, record):
    intake_setup(world)
    world.notes["intake_ran"] = True
    fault_on(monkeypatch, world, "sf.create_records", "task", sf_expire_session=True)
    with pytest.raises(SalesforceSessionExpired) as err:
        intake_run(world)  # Cases went in, the Task call is refused
    assert world.stack.sandbox.sf_access_token not in str(err.value)
    report = _finish(world, "intake")
    record("Salesforce session expired between the Case and the Task calls",
           "stopped with SalesforceSessionExpired (no token in the text); next run completed",
           **report["totals"])  # fmt: skip


def test_per_record_failures_inside_a_200_record_collection(big_world, monkeypatch, record):
    w = big_world
    intake_setup(w)
    w.notes["intake_ran"] = True
    fault_on(monkeypatch, w, "sf.create_records", "task", sf_collection_fail_indexes=[0, 99, 199])
    ingest, opened = intake_run(w)
    assert opened.tasks_created + opened.failures >= 200, "one full 200-record collection"
    assert opened.failures == 3
    failed = [q for q in w.ledger.unreported_quarantine() if q["q_key"].startswith("salesforce:task:")]
    assert len(failed) == 3 and all("UNABLE_TO_LOCK_ROW" in q["reason"] for q in failed)
    monkeypatch.undo()
    _, reopened = intake_run(w.fresh_hooks())
    assert reopened.tasks_created == 3
    report = _finish(w, "intake")
    record(f"3 of {opened.tasks_created + opened.failures} Task records fail (UNABLE_TO_LOCK_ROW) in a "
           "200-record collection", "197 written, 3 quarantined; next run wrote exactly those 3",
           **report["totals"])  # fmt: skip


def test_surveymonkey_daily_budget_spent_mid_run(world, record):
    """The budget runs out between the responses page and the details call: nothing is half-recorded."""
    intake_setup(world)
    world.notes["intake_ran"] = True
    world.admin("POST", "rate-limits/reset")
    world.admin("POST", "config", {"sm_day_limit": 2})  # the survey lookup and one page, then 429
    with pytest.raises(SurveyMonkeyBudgetExhausted):
        intake_run(world)
    assert world.ledger.read_frame("responses").empty, "no partial batch, the watermark did not move"
    world.admin("POST", "config", {"sm_day_limit": 500})
    world.admin("POST", "rate-limits/reset")  # the next day
    report = _finish(world, "intake")
    record("SurveyMonkey daily limit reached mid-run (429, day remaining 0)",
           "stopped with SurveyMonkeyBudgetExhausted, nothing recorded; next day completed",
           **report["totals"])  # fmt: skip


def test_surveymonkey_daily_budget_spent_at_the_send(world, monkeypatch, record):
    dispatch_setup(world)

    def spend_the_day(*args, **kwargs):
        world.admin("POST", "config", {"sm_day_limit": 1})
        return real(*args, **kwargs)

    real = world.sm.send_message
    monkeypatch.setattr(world.sm, "send_message", spend_the_day)
    out = dispatch_run(world)  # degrades: the task ends cleanly and reports the carry-over
    assert out["budget_exhausted"] is True and out["carried_over"]
    assert world.ledger.pending_intents()
    monkeypatch.undo()
    world.admin("POST", "config", {"sm_day_limit": 500})
    world.admin("POST", "rate-limits/reset")
    report = _finish(world, "dispatch")
    record(
        "SurveyMonkey daily limit reached at the send POST",
        "run ended cleanly reporting the carry-over; intents kept; after the reset the rerun sent the "
        "same message once",
        **report["totals"],
    )


def test_salesforce_daily_budget_spent_mid_run(world, monkeypatch, record):
    intake_setup(world)
    world.notes["intake_ran"] = True
    fault_on(monkeypatch, world, "sf.create_records", "task", sf_request_limit_exceeded=True)
    with pytest.raises(SalesforceBudgetExhausted):
        intake_run(world)
    report = _finish(world, "intake")
    record("Salesforce REQUEST_LIMIT_EXCEEDED between the Case and the Task calls",
           "stopped with SalesforceBudgetExhausted; next run completed", **report["totals"])  # fmt: skip
