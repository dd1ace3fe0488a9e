"""Crash injection: for each side-effecting step, kill the worker right before and right after the external
call (or the ledger commit), rerun, and audit the sandbox, the SMTP sink and the ledger: no duplicate, no
lost response, ledger and sandbox agree, nothing left pending."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import (
    PB,
    PIPELINES,
    START,
    SWEEP_DAY,
    SimulatedCrash,
    World,
    assert_clean,
    audit,
    dispatch_run,
    dispatch_setup,
    inject,
)

from sandbox.testing import VALID_MESSAGE_BODY

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# (id, pipeline, injection target, match, what it stands for)
STEPS = [
    ("recipients-added", "dispatch", "sm.add_recipients_bulk", None, "invite recipients added"),
    ("invite-sent", "dispatch", "sm.send_message", None, "invite message sent"),
    ("invite-ledger-commit", "dispatch", "ledger.mark_sent", "sent", "ledger commit of the sent invites"),
    ("reminder-sent", "reminders", "sm.send_message", None, "reminder message sent"),
    ("lp-reminder-task", "reminders", "sf.create_records", "task", "LP reminder Task created"),
    ("responses-commit", "intake", "ledger.record_responses", None, "ledger commit of responses+watermark"),
    ("case-created", "intake", "sf.create_records", "case", "Case created"),
    ("tasks-created", "intake", "sf.create_records", "task", "step Tasks created"),
    ("escalation-task", "sweep", "sf.create_records", "task", "escalation / activated-step Tasks created"),
    ("email-sent", "sweep", "mail.send_message", None, "notice email handed to SMTP"),
    ("pulse-recipients", "sweep", "sm.add_recipients_bulk", None, "recovery pulse recipients added"),
    ("pulse-sent", "sweep", "sm.send_message", None, "recovery pulse sent"),
]
SCENARIOS = [
    pytest.param(pipeline, target, match, when, label, id=f"{sid}-{when}")
    for sid, pipeline, target, match, label in STEPS
    for when in ("before", "after")
]


def check_complete(w: World, pipeline: str, report: dict) -> None:
    """Everything the run had to do got done (no loss), beyond the audit's invariants."""
    if pipeline == "dispatch":
        assert w.ledger.sends_due(START, kind="invite") == []
        sent = [r for r in w.ledger.sends_for_contacts(_all_contacts(w)) if r["status"] == "sent"]
        assert sent and report["totals"]["invites"] == len(sent)
    elif pipeline == "reminders":
        reminders = [
            m for m in w.admin("GET", "messages") if m["type"] == "reminder" and m["status"] == "sent"
        ]
        assert len(reminders) == 1 and report["totals"]["reminders"] > 0
    elif pipeline == "intake":
        from tests.integration.test_intake_pipeline import ground_truth, sandbox_state

        state = sandbox_state(w.stack)
        negatives = {rid for rid, t in ground_truth(w.stack, state).items() if t["negative"]}
        assert negatives and report["totals"]["cases"] == len(negatives)
        keys = {t["Closed_Loop_Key__c"] for t in state["sf"]["Task"].values() if t.get("Closed_Loop_Key__c")}
        assert all(f"{rid}:{step}" in keys for rid in negatives for step in ("acknowledge", "document"))
        assert w.ledger.cases_needing_salesforce() == []
    else:
        _check_sweep_complete(w)


def _all_contacts(w: World) -> list[str]:
    return [c["Id"] for c in w.admin("GET", "records/Contact")]


def _check_sweep_complete(w: World) -> None:
    from closed_loop.pipeline import sweep

    plan = w.notes["plan"]
    events = {e["event_key"]: e for e in w.ledger.sla_events()}
    assert plan["breaches"], "the scenario has breaches to escalate"
    for _case_key, step in plan["breaches"]:  # every breach kept as a metric, open ones escalated
        assert f"breach:{step['step_key']}" in events, step["step_key"]
    assert len([e for e in events.values() if e["details"].get("reason") == "overdue"]) == len(
        plan["escalate"]
    )
    assert all(e["sf_task_id"] for e in events.values() if e["kind"] in sweep.TASK_EVENT_KINDS)
    for case_key in plan["close"]:
        send = w.ledger.get_send(sweep.recovery_key(case_key))
        assert send and send["status"] in ("sent", "bounced", "opted_out", "skipped"), case_key
    assert w.ledger.get_email(f"digest:{SWEEP_DAY}")["status"] == "sent"
    todays = [e for e in events.values() if e["occurred_on"] == SWEEP_DAY]
    cases = {c: w.ledger.get_case(c) for c in {e["case_key"] for e in todays}}
    for e in todays:
        if e["kind"] in ("escalation", "reminder", "doc_missing"):  # the kinds that email someone
            assert w.ledger.get_email(sweep._notice_key(e, cases, SWEEP_DAY)), e["event_key"]


@pytest.mark.parametrize(("pipeline", "target", "match", "when", "label"), SCENARIOS)
def test_crash_then_rerun(world, monkeypatch, record, pipeline, target, match, when, label):
    setup, run = PIPELINES[pipeline]
    setup(world)
    world.notes["intake_ran"] = pipeline == "intake"
    fired = inject(monkeypatch, world, target, when, match)
    with pytest.raises(SimulatedCrash):
        run(world, run_id="crashed")
    assert fired, "the injection point was reached"
    monkeypatch.undo()

    run(world.fresh_hooks(), run_id="retry")
    run(world.fresh_hooks(), run_id="rerun")  # and a rerun of the finished run is a no-op
    report = audit(world)
    withheld = 1 if (target == "mail.send_message" and when == "before") else 0
    assert_clean(report, withheld=withheld)
    check_complete(world, pipeline, report)
    if withheld:  # at most once: never resent automatically, listed for ops in the next digest
        from closed_loop.pipeline import outbox

        [pending] = outbox.unconfirmed_emails(world.ledger, older_than=dt.timedelta(0))
        assert pending["email_key"].startswith(("lp_notice", "escalation", "doc_missing"))
    record(f"crash {when} {label}", "duplicates 0, lost 0, ledger = sandbox",
           withheld=withheld, **report["totals"])  # fmt: skip


KILLS = [
    pytest.param("dispatch", "sm.send_message", "after", None, id="kill-after-invite-sent"),
    pytest.param(
        "intake",
        "ledger._set_watermark",
        "before",
        "responses_watermark",
        id="kill-inside-responses-transaction",
    ),  # fmt: skip
    pytest.param("sweep", "mail.send_message", "after", None, id="kill-after-smtp-accepted"),
]


@pytest.mark.parametrize(("pipeline", "target", "when", "match"), KILLS)
def test_process_killed_then_rerun(world, record, pipeline, target, when, match):
    """The whole task process dies (os._exit: no exception handler, no commit), then a new one reruns."""
    setup, run = PIPELINES[pipeline]
    setup(world)
    world.notes["intake_ran"] = pipeline == "intake"
    env = {
        **os.environ,
        **world.stack.conn_env,
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO), str(HERE)]),
    }
    args = [sys.executable, str(HERE / "kill_runner.py"), pipeline, target, when, *([match] if match else [])]
    proc = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)  # hang guard
    assert proc.returncode == 137, proc.stderr[-3000:]
    if pipeline == "intake":  # the killed transaction left nothing behind: no response, no watermark
        assert world.ledger.read_frame("responses").empty
    run(world.fresh_hooks(), run_id="retry")
    run(world.fresh_hooks(), run_id="rerun")
    report = audit(world)
    assert_clean(report)
    check_complete(world, pipeline, report)
    record(f"process killed {when} {target} ({pipeline})", "duplicates 0, lost 0, ledger = sandbox",
           **report["totals"])  # fmt: skip


def test_the_audit_sees_duplicates_and_disagreements(world):
    """The audit is not toothless: a second invite and a second email sent behind the ledger's back."""
    from closed_loop.pipeline import outbox

    dispatch_setup(world)
    dispatch_run(world)
    person = next(m for m in world.admin("GET", "messages") if m["status"] == "sent")["recipients"][0]
    survey = world.sm.find_survey(PB.surveys.main.title)
    collector = world.sm.get_or_create_email_collector(survey["id"], "rogue")
    message = world.sm.create_message(collector["id"], "invite", "Again", VALID_MESSAGE_BODY)
    world.sm.add_recipients_bulk(collector["id"], message["id"], [{"email": person["email"]}])
    world.sm.send_message(collector["id"], message["id"])
    for _ in range(2):
        world.mail.send_message(outbox.build_message("rogue:1", ["ops@example.test"], "x", "y"))
    report = audit(world)
    assert report["duplicate_invites"] == 1 and report["duplicate_emails"] == 1
    assert any("delivered without a ledger row" in d for d in report["disagreements"])
    assert any("ledger does not say so" in d for d in report["disagreements"])
