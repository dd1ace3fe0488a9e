"""The report counts the right thing (issue 17 items 4-6, issue 14 item 4), on small hand-built ledgers whose
expected figures are worked out here from the SOP/playbook definitions."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from closed_loop.pipeline.report import report_settings
from closed_loop.playbook import load_playbook
from closed_loop.reporting.data import ReportData, from_ledger_frames
from closed_loop.reporting.email import report_context, subject
from closed_loop.reporting.metrics import compute_metrics
from closed_loop.reporting.quarters import Quarter
from closed_loop.reporting.summary import what_changed

Q = Quarter(2026, 3)
PB = load_playbook()
SETTINGS = report_settings(PB)
RECEIVED = date(2026, 7, 6)  # a Monday
FOLLOW_UP_Q = PB.triggers.follow_up_request.question
ROW = "Training prepared our team to use the product."


def utc(day: date, hour: int = 15) -> pd.Timestamp:
    return pd.Timestamp(datetime(day.year, day.month, day.day, hour), tz="UTC")


def weekdays_after(start: date, end: date) -> int:
    """Business days in (start, end] by walking the calendar (no holiday in July 2026 after the 4th)."""
    return sum((start + timedelta(days=i)).weekday() < 5 for i in range(1, (end - start).days + 1))


def one_case(**case) -> dict:
    return {
        "case_key": "r1",
        "account_id": "a1",
        "status": "open",
        "lp_username": "tsm1@closedloop.example",
        "opened_at": utc(RECEIVED + timedelta(days=3)),  # Thursday: intake ran three days late
        **case,
    }


def data(responses=None, cases=None, steps=None, events=None, triggers=None, accounts=None, sends=None):
    default_response = {
        "response_id": "r1",
        "account_id": "a1",
        "date_created": utc(RECEIVED, 14),
        "date_modified": utc(RECEIVED, 15),
        "negative": True,
        "topics": ["implementation"],
    }
    return ReportData(
        responses=pd.DataFrame(responses or [default_response]),
        cases=pd.DataFrame(cases or [one_case()]),
        case_steps=pd.DataFrame(steps or []),
        sla_events=pd.DataFrame(events or []),
        triggers=pd.DataFrame(triggers or []),
        accounts=pd.DataFrame(accounts or []),
        survey_sends=pd.DataFrame(sends or []),
    )


def test_timeliness_runs_from_the_response_and_intake_delay_is_its_own_figure():
    ack_window = next(s for s in PB.steps if s.key == "acknowledge").window.max
    due = RECEIVED + timedelta(days=3)  # Mon + 3 business days = Thu
    acked = utc(RECEIVED + timedelta(days=3), 18)  # Thursday, the day the late intake opened the Case
    d = data(
        steps=[
            {"step_key": "r1:acknowledge", "case_key": "r1", "step": "acknowledge", "due_date": due,
             "status": "completed", "completed_at": acked},
        ],
    )  # fmt: skip
    m = compute_metrics(d, Q, settings=SETTINGS)
    expected_bd = weekdays_after(RECEIVED, acked.date())
    assert expected_bd == ack_window == 3
    assert m.time_to_acknowledge.median == expected_bd  # not 0 (from the Case opening)
    [row] = m.sla_by_step.to_dict("records")
    assert row["on_time"] == 1 and row["median_bd"] == expected_bd  # the same clock as the due date
    assert m.intake_delay_hours.median == pytest.approx(72.0)  # response completed Mon 15:00 -> Thu 15:00
    text = what_changed(m)
    assert "acknowledged in a median of 3 business days after the response" in text
    assert "opened a median of 3 days after the response arrived" in text
    assert report_context(m)["intake_delay"]["median"] == "3 days"


def test_the_plans_received_day_is_the_clock_when_the_ledger_has_it():
    plan = {"received_on": "2026-07-03"}  # a Friday, e.g. the response's local day in New York
    frames = {
        "responses": data().responses,
        "cases": pd.DataFrame([one_case(plan=plan)]),
        "case_steps": pd.DataFrame([{"step_key": "k", "case_key": "r1", "step": "acknowledge",
                                     "due_date": date(2026, 7, 9), "status": "completed",
                                     "completed_at": utc(date(2026, 7, 9))}]),
    }  # fmt: skip
    m = compute_metrics(from_ledger_frames(frames), Q, settings=SETTINGS)
    assert m.time_to_acknowledge.median == weekdays_after(date(2026, 7, 3), date(2026, 7, 9))


def test_pareto_ranks_negative_answers_and_scores_and_lists_requests_apart():
    responses = [
        {"response_id": f"r{i}", "account_id": f"a{i}", "date_created": utc(RECEIVED), "negative": True}
        for i in range(3)
    ]
    triggers = [
        # every respondent asks to be contacted: most frequent, but not negative feedback
        *({"response_id": f"r{i}", "kind": "follow_up_request", "heading": FOLLOW_UP_Q, "answer": "Yes"}
          for i in range(3)),
        {"response_id": "r0", "kind": "negative_answer", "heading": "Please rate ...", "row": ROW,
         "answer": "Disagree"},
        {"response_id": "r1", "kind": "low_score", "heading": PB.triggers.low_score.question, "answer": "4"},
        {"response_id": "r1", "kind": "negative_answer", "heading": "Please rate ...", "row": ROW,
         "answer": "Strongly Disagree"},
        {"response_id": "r2", "kind": "at_risk", "heading": None},
    ]  # fmt: skip
    m = compute_metrics(data(responses=responses, triggers=triggers, cases=[{}]), Q, settings=SETTINGS)
    ranked = dict(zip(m.by_question["label"], m.by_question["negatives"], strict=True))
    assert ranked == {ROW: 2, PB.triggers.low_score.question: 1}
    assert FOLLOW_UP_Q not in ranked
    signals = dict(zip(m.signals["kind"], m.signals["responses"], strict=True))
    assert signals == {"follow_up_request": 3, "at_risk": 1}
    text = what_changed(m)
    assert f"\u201c{ROW}\u201d (2 responses)" in text
    assert "3 asked to be contacted, 1 account flagged at risk" in text


def test_cases_escalated_vs_escalations_and_breaches_as_the_sweep_writes_them():
    on = date(2026, 7, 20)
    events = [
        *({"event_key": f"escalation:r1:{s}", "case_key": "r1", "step_key": f"r1:{s}", "kind": "escalation",
           "occurred_on": on, "details": {"reason": "overdue"}} for s in ("acknowledge", "investigate")),
        {"event_key": "escalation:r1:dissatisfied:1", "case_key": "r1", "kind": "escalation",
         "occurred_on": on, "details": {"reason": "dissatisfied"}},
        {"event_key": "escalation:r2:acknowledge", "case_key": "r2", "step_key": "r2:acknowledge",
         "kind": "escalation", "occurred_on": on, "details": {"reason": "overdue"}},
        {"event_key": "breach:r2:acknowledge", "case_key": "r2", "step_key": "r2:acknowledge",
         "kind": "breach", "occurred_on": on, "details": {}},  # the same step once more: counted once
        {"event_key": "reminder:r2:investigate", "case_key": "r2", "step_key": "r2:investigate",
         "kind": "reminder", "occurred_on": on, "details": {}},
        # one escalation for two of a case's overdue steps (no single step), each step its breach event
        {"event_key": "escalation:r3:escalate:overdue:2", "case_key": "r3", "step_key": None,
         "kind": "escalation", "occurred_on": on, "details": {"reason": "overdue"}},
        *({"event_key": f"breach:r3:{s}", "case_key": "r3", "step_key": f"r3:{s}", "kind": "breach",
           "occurred_on": on, "details": {}} for s in ("acknowledge", "investigate")),
    ]  # fmt: skip
    frames = {"sla_events": pd.DataFrame(events), "cases": pd.DataFrame([one_case()])}
    m = compute_metrics(from_ledger_frames(frames), Q, settings=SETTINGS)
    c = m.current
    assert (c["escalations"], c["cases_escalated"], c["sla_breaches"]) == (5, 3, 5)
    assert "3 cases were escalated (5 escalations)" in what_changed(m)


def test_a_case_closed_without_documentation_is_still_open():
    closed_day = utc(date(2026, 8, 14))
    cases = [
        one_case(case_key="r1", status="closed", closed_at=closed_day, root_cause="Missed requirement"),
        one_case(case_key="r2", account_id="a2", status="open", closed_at=closed_day),  # undocumented
    ]
    responses = [
        {"response_id": k, "account_id": a, "date_created": utc(RECEIVED), "negative": True}
        for k, a in (("r1", "a1"), ("r2", "a2"))
    ]
    accounts = [{"sf_id": "a1", "mrr": 12000.0}, {"sf_id": "a2", "mrr": 4250.0}]
    m = compute_metrics(data(responses=responses, cases=cases, accounts=accounts), Q, settings=SETTINGS)
    assert m.current["cases_closed"] == 1 and m.time_to_close.count == 1
    assert m.current["open_cases_at_end"] == m.open_cases == 1
    assert m.open_cases_mrr == 4250.0 and m.open_cases_without_mrr == 0
    assert "1 case was still open at the quarter end, representing $4,250 MRR" in what_changed(m)


def test_open_cases_mrr_counts_each_account_once_and_says_what_is_missing():
    cases = [one_case(case_key=k, account_id=a) for k, a in (("r1", "a1"), ("r2", "a1"), ("r3", "a3"))]
    responses = [
        {"response_id": k, "date_created": utc(RECEIVED), "negative": True} for k in ("r1", "r2", "r3")
    ]
    accounts = [{"sf_id": "a1", "mrr": 3500.0}, {"sf_id": "a3", "mrr": None}]
    m = compute_metrics(data(responses=responses, cases=cases, accounts=accounts), Q, settings=SETTINGS)
    assert (m.open_cases, m.open_cases_mrr, m.open_cases_without_mrr) == (3, 3500.0, 1)
    rows = {r[0]: r[2] for r in m.to_rows() if r[1] == Q.label}
    assert rows["open_cases_mrr"] == 3500.0 and rows["open_cases_without_mrr"] == 1


def _responses(label: str, total: int, negatives: int) -> list[dict]:
    mid = utc(Quarter.parse(label).start + timedelta(days=40))
    return [
        {"response_id": f"{label}-{i}", "date_created": mid, "negative": i < negatives, "account_id": f"{i}"}
        for i in range(total)
    ]


@pytest.mark.parametrize(
    "previous", [PB.report.min_responses_to_compare - 1, PB.report.min_responses_to_compare]
)
def test_a_change_needs_the_playbooks_minimum_of_responses(previous):
    responses = _responses("2026-Q2", previous, previous // 2) + _responses("2026-Q3", 40, 4)
    m = compute_metrics(data(responses=responses, cases=[{}]), Q, settings=SETTINGS)
    if previous < PB.report.min_responses_to_compare:
        assert m.negative_rate_change_pts is None and m.negative_rate_direction == "too_few"
        assert subject(m).endswith("negative rate 10% (too few to compare)")
        assert f"2026-Q2 had only {previous} responses, too few to compare" in what_changed(m)
    else:
        assert m.negative_rate_direction == "down" and "too few" not in subject(m)


def test_response_rate_is_per_send_and_responses_per_arrival_are_explained():
    sends = [
        {
            "send_key": f"s{i}",
            "kind": "invite",
            "status": "sent",
            "sent_at": utc(date(2026, 7, 1) + timedelta(i)),
        }
        for i in range(4)
    ] + [{"send_key": "old", "kind": "invite", "status": "sent", "sent_at": utc(date(2026, 6, 25))}]
    answered = ("s0", "s1", "old")  # two of this quarter's four invites, plus one of June's
    responses = [
        {"response_id": k, "send_key": k, "date_created": utc(date(2026, 7, 10)), "negative": False}
        for k in answered
    ]
    m = compute_metrics(data(responses=responses, cases=[{}], sends=sends), Q, settings=SETTINGS)
    c = m.current
    assert (c["surveys_sent"], c["responded_invites"], c["responses"]) == (4, 2, 3)
    assert c["response_rate"] == pytest.approx(2 / 4)
    assert m.responses_to_earlier_invites == 1
    text = what_changed(m)
    assert "2 of this quarter's invites have been answered (response rate 50%)" in text
    assert "1 response answered invites sent in an earlier quarter" in text


def test_charts_and_tables_list_the_same_items_and_topics_by_name():
    import io

    from PIL import Image

    from closed_loop.reporting.charts import DPI, MAX_ITEMS, render_charts

    labels = [f"Statement number {i} about the implementation" for i in range(MAX_ITEMS + 3)]
    responses = [
        {
            "response_id": f"r{i}",
            "date_created": utc(RECEIVED),
            "negative": True,
            "topics": ["product_support"],
        }
        for i in range(len(labels))
    ]
    triggers = [
        {"response_id": f"r{j}", "kind": "negative_answer", "heading": "Please rate", "row": label}
        for i, label in enumerate(labels)
        for j in range(len(labels) - i)  # distinct counts: 11, 10, ..., 1
    ]
    m = compute_metrics(data(responses=responses, triggers=triggers, cases=[{}]), Q, settings=SETTINGS)
    ctx = report_context(m)
    listed = [q["label"] for q in ctx["questions"]]
    assert listed == [*labels[: MAX_ITEMS - 1], "Other (4 more)"]
    assert sum(q["negatives"] for q in ctx["questions"]) == sum(range(1, len(labels) + 1))
    assert [t["topic"] for t in ctx["topics"]] == [PB.report.topic_names["product_support"]]
    height = Image.open(io.BytesIO(render_charts(m)["pareto_questions"])).height
    assert height == round((0.62 * len(listed) + 0.9) * DPI)  # one bar per listed row
