"""The quarterly report's headline figures and CSV rows against an independent count from the sandbox's own
records (SurveyMonkey messages and responses, Salesforce Cases, Tasks and Accounts), after the pipeline ran
a few weeks of 2026-Q3 against it (issue 14 item 4). Nothing here reads the ledger or calls report code to
get an expected value."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.pipeline.report import build_report
from closed_loop.playbook import load_playbook
from closed_loop.reporting.quarters import Quarter

PB = load_playbook()
CAL = BusinessCalendar.from_playbook(PB)
Q = Quarter(2026, 3)
TZ = ZoneInfo(PB.calendar.timezone)
EXT = PB.salesforce.task.external_id
CASE_EXT = PB.salesforce.case.external_id
DOC_FIELDS = PB.sla.documentation_fields
DAYS = [dt.date(2026, 7, d) for d in (1, 3, 6, 8, 10, 14, 17, 21, 24, 28)] + [dt.date(2026, 8, 4)]


def _hooks():
    from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
    from closed_loop.hooks.mail import ClosedLoopSmtpHook

    sf, sm = ClosedLoopSalesforceHook(), SurveyMonkeyHook()
    for hook in (sf, sm):
        hook.sleep = lambda seconds: None
    return sf, sm, ClosedLoopSmtpHook()


def run_weeks(stack) -> None:
    """Dispatch, intake and the sweep over July 2026, each day at 14:00 UTC, as the DAGs would."""
    from closed_loop.pipeline import dispatch, sweep
    from closed_loop.pipeline.intake import ingest_responses, open_cases

    ledger = stack.ledger
    with stack.connections():
        sf, sm, mail = _hooks()
        for day in DAYS:
            now = f"{day.isoformat()}T14:00:00Z"
            if stack.sandbox.admin("GET", "clock")["now"] < now:
                stack.sandbox.admin("POST", "clock", {"now": now})
            run = f"test__{day}"
            dispatch.sync_go_lives(sf, ledger, PB, day)
            dispatch.send_invites(sm, ledger, PB, day, run_id=run)
            dispatch.send_reminders(sm, sf, ledger, PB, day, run_id=run, calendar=CAL)
            ingest_responses(sm, ledger, PB, CAL, day)
            open_cases(sf, ledger, PB, CAL, day)
            sweep.read_back(sf, ledger, PB, CAL, day)
            sweep.progress_and_escalate(sf, mail, ledger, PB, CAL, day, run_id=run)
            sweep.send_recovery_pulses(sm, ledger, PB, day, run_id=run)


def _in_q(value: str | None) -> bool:
    return bool(value) and Q.start <= dt.date.fromisoformat(value[:10]) <= Q.end


def _local_day(stamp: str) -> dt.date:
    return (
        dt.datetime.fromisoformat(stamp.replace("Z", "+00:00").replace("+0000", "+00:00"))
        .astimezone(TZ)
        .date()
    )


def sandbox_counts(stack) -> dict:
    """The report's headline figures, counted from the sandbox's records alone."""
    state = stack.sandbox.admin("GET", "state")
    records = state["sf"]["records"] if "records" in state["sf"] else state["sf"]
    sm = state["sm"]
    main = {s["id"] for s in sm["surveys"].values() if s["title"] == PB.surveys.main.title}
    collectors = {c["id"] for c in sm["collectors"].values() if c["survey_id"] in main}
    invited = {
        r["id"]
        for m in stack.sandbox.admin("GET", "messages")
        if m["type"] == "invite" and m["status"] == "sent" and m["collector_id"] in collectors
        for r in m["recipients"]
        if r["mail_status"] == "sent"
    }
    responses = [r for r in sm["responses"].values() if r.get("collector_id") in collectors]
    in_q = [r for r in responses if _in_q(r["date_created"])]
    answered = {r["recipient_id"] for r in responses}

    cases = [c for c in records["Case"].values() if c.get(CASE_EXT) and not c.get("IsDeleted")]
    documented = [c for c in cases if c.get("IsClosed") and all(c.get(f) for f in DOC_FIELDS)]
    step_keys = {s.key for s in PB.steps}
    by_key = {t.get(EXT): t for t in records["Task"].values() if t.get(EXT)}
    step_tasks = [t for k, t in by_key.items() if len(k.split(":")) == 2 and k.split(":")[1] in step_keys]
    due = [t for t in step_tasks if _in_q(t.get("ActivityDate"))]
    done = [t for t in due if t.get("Status") == "Completed"]
    on_time = [
        t for t in done if _local_day(t["CompletedDateTime"]) <= dt.date.fromisoformat(t["ActivityDate"])
    ]
    escalations = [t for k, t in by_key.items() if ":escalate:" in k]
    open_cases = [c for c in cases if c not in documented]
    mrr = {a["Id"]: a.get("MRR__c") for a in records["Account"].values()}
    open_accounts = {c["AccountId"] for c in open_cases}
    return {
        "surveys_sent": len(invited),
        "responded_invites": len(invited & answered),
        "responses": len(in_q),
        "cases_opened": sum(_in_q(c["CreatedDate"]) for c in cases),
        "cases_closed": sum(_in_q(c.get("ClosedDate")) for c in documented),
        "open_cases_at_end": len(open_cases),
        "steps_due": len(due),
        "steps_on_time": len(on_time),
        "escalations": len(escalations),
        "cases_escalated": len({t["WhatId"] for t in escalations}),
        "open_cases_mrr": float(sum(v for a in open_accounts if isinstance(v := mrr.get(a), int | float))),
        "open_cases_without_mrr": sum(not isinstance(mrr.get(a), int | float) for a in open_accounts),
        "steps_by_name": Counter(k.split(":")[1] for k, t in by_key.items() if t in due),
    }


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    from devtools.stack import LocalStack

    with LocalStack(tmp_path_factory.mktemp("report-vs-sandbox"), seed=7) as stack:
        run_weeks(stack)
        report = build_report(stack.ledger, PB, CAL, Q)
        yield report, sandbox_counts(stack)


HEADLINE = (
    "surveys_sent", "responded_invites", "responses", "cases_opened", "cases_closed", "open_cases_at_end",
    "steps_due", "steps_on_time", "escalations", "cases_escalated",
)  # fmt: skip


def test_the_run_is_rich_enough(measured):
    _, truth = measured
    assert truth["surveys_sent"] >= 10 and truth["cases_opened"] >= 3 and truth["steps_due"] >= 15
    assert truth["steps_on_time"] >= 1 and truth["escalations"] >= 1


@pytest.mark.parametrize("figure", HEADLINE)
def test_headline_figure_matches_the_sandbox(measured, figure):
    report, truth = measured
    assert report.metrics.current[figure] == truth[figure]


def test_open_cases_and_their_mrr_match_salesforce(measured):
    report, truth = measured
    m = report.metrics
    assert m.open_cases == truth["open_cases_at_end"]
    assert m.open_cases_mrr == pytest.approx(truth["open_cases_mrr"])
    assert m.open_cases_without_mrr == truth["open_cases_without_mrr"]


def test_every_csv_row_of_these_figures_matches(measured):
    report, truth = measured
    rows = {(r["metric"], r["quarter"]): r["value"] for r in csv.DictReader(io.StringIO(report.csv.decode()))}
    for figure in HEADLINE:
        assert float(rows[(figure, Q.label)]) == truth[figure], figure
    assert float(rows[("open_cases", Q.label)]) == truth["open_cases_at_end"]
    assert float(rows[("open_cases_mrr", Q.label)]) == pytest.approx(truth["open_cases_mrr"])
    for step, count in truth["steps_by_name"].items():
        assert float(rows[(f"sla.steps_due:{step}", Q.label)]) == count, step
    if truth["responded_invites"]:
        assert float(rows[("response_rate", Q.label)]) == pytest.approx(
            truth["responded_invites"] / truth["surveys_sent"], abs=1e-4
        )
