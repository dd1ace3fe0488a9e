"""What the report templates print: every entry of the context, formatted as text, for hand-made figures
(the formats are the ones summary.py documents: "18%", "2.5", "3.5 h", "2.5 days", "$4,250", "n/a")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from closed_loop.reporting.email import report_context
from closed_loop.reporting.metrics import Durations, QuarterlyMetrics, Recovery
from closed_loop.reporting.quarters import Quarter

DASH = "\u2014"
TREND = {  # 2026-Q2, 2026-Q3
    "surveys_sent": [40, 50],
    "responded_invites": [20, 30],
    "response_rate": [0.5, 0.6],
    "responses": [20, 30],
    "negatives": [6, 6],
    "negative_rate": [0.3, 0.2],
    "nps": [12.5, np.nan],
    "cases_opened": [6, 5],
    "cases_closed": [4, 6],
    "open_cases_at_end": [3, 2],
    "steps_due": [30, 28],
    "steps_on_time": [27, 21],
    "sla_on_time_share": [0.9, 0.75],
    "escalations": [2, 3],
    "cases_escalated": [1, 2],
    "sla_breaches": [3, 7],
}


def metrics() -> QuarterlyMetrics:
    return QuarterlyMetrics(
        quarter=Quarter(2026, 3),
        trend=pd.DataFrame(TREND, index=pd.Index(["2026-Q2", "2026-Q3"], name="quarter")),
        negative_rate_change_pts=-10.0,
        negative_rate_direction="down",
        by_topic=pd.DataFrame(
            {
                "topic": ["implementation", "marketing"],
                "name": ["Implementation", "Marketing"],
                "negatives": [4, 2],
                "share": [4 / 6, 2 / 6],
                "cumulative_share": [4 / 6, 1.0],
            }
        ),
        by_question=pd.DataFrame(
            {
                "question": ["Please rate", "How helpful?"],
                "row": ["Training <b>", ""],
                "label": ["Training <b>", "How helpful?"],
                "negatives": [3, 1],
                "share": [0.75, 0.25],
                "cumulative_share": [0.75, 1.0],
            }
        ),
        signals=pd.DataFrame(
            {"kind": ["follow_up_request"], "label": ["Asked to be contacted"], "responses": [2]}
        ),
        root_causes=pd.DataFrame(
            {"root_cause": ["billing export bug", "training gaps"], "cases": [4, 2], "share": [4 / 6, 2 / 6]}
        ),
        sla_by_step=pd.DataFrame(
            {
                "step": ["acknowledge", "internal_call"],
                "steps_due": [10, 8],
                "completed": [10, 6],
                "on_time": [9, 4],
                "on_time_share": [0.9, 0.5],
                "median_bd": [1.0, np.nan],
                "p90_bd": [2.5, np.nan],
            }
        ),
        time_to_acknowledge=Durations(5, 1.0, 2.6, 3.0),
        time_to_close=Durations(0, None, None, None),
        intake_delay_hours=Durations(5, 3.5, 60.0, 70.0),
        open_case_age_days=Durations(2, 10.5, 20.0, 21.0),
        open_cases_mrr=4250.0,
        open_cases_without_mrr=1,
        responses_to_earlier_invites=3,
        min_responses_to_compare=10,
        repeat_negative_accounts=1,
        accounts_with_negatives=4,
        recovery=Recovery(4, 3, 2.0, 7.5, 2, 2 / 3, 0.75, 1),
        workload=pd.DataFrame(
            [{"username": "tsm1@x", "cases_opened": 2, "open_cases": 1, "steps_due": 5, "steps_completed": 4}]
        ),
    )


def test_every_entry_of_the_context():
    ctx = report_context(metrics(), "Summary <text>")
    assert ctx == {
        "quarter": "2026-Q3",
        "previous_quarter": "2026-Q2",
        "period": "01 Jul 2026 \u2013 30 Sep 2026",
        "subject": "Closed-loop quarterly report 2026-Q3: negative rate 20% (down 10 pts)",
        "headline": "negative rate 20% (down 10 pts)",
        "summary": "Summary <text>",
        "empty": False,
        "key_figures": [
            {"label": "Surveys sent", "now": "50", "before": "40"},
            {"label": "Response rate", "now": "60%", "before": "50%"},
            {"label": "Responses", "now": "30", "before": "20"},
            {"label": "Negative rate", "now": "20%", "before": "30%"},
            {"label": "NPS (main survey)", "now": DASH, "before": "12.5"},
            {"label": "Cases opened", "now": "5", "before": "6"},
            {"label": "Cases closed", "now": "6", "before": "4"},
            {"label": "Cases open at quarter end", "now": "2", "before": "3"},
            {"label": "SOP steps on time", "now": "75%", "before": "90%"},
            {"label": "SOP steps overdue", "now": "7", "before": "3"},
            {"label": "Cases escalated", "now": "2", "before": "1"},
            {"label": "Escalations raised", "now": "3", "before": "2"},
        ],
        "negative_rate_phrase": "20% (down 10 pts)",
        "trend": [
            {"quarter": "2026-Q2", "surveys_sent": "40", "response_rate": "50%", "responses": "20"}
            | {"negative_rate": "30%", "nps": "12.5", "cases_opened": "6", "cases_closed": "4"}
            | {"open_cases_at_end": "3", "sla_on_time_share": "90%", "sla_breaches": "3"}
            | {"cases_escalated": "1", "escalations": "2"},
            {"quarter": "2026-Q3", "surveys_sent": "50", "response_rate": "60%", "responses": "30"}
            | {"negative_rate": "20%", "nps": DASH, "cases_opened": "5", "cases_closed": "6"}
            | {"open_cases_at_end": "2", "sla_on_time_share": "75%", "sla_breaches": "7"}
            | {"cases_escalated": "2", "escalations": "3"},
        ],
        "questions": [
            {"label": "Training <b>", "question": "Please rate", "negatives": 3, "share": "75%"}
            | {"cumulative": "75%"},
            {"label": "How helpful?", "question": "How helpful?", "negatives": 1, "share": "25%"}
            | {"cumulative": "100%"},
        ],
        "signals": [{"label": "Asked to be contacted", "responses": 2}],
        "topics": [
            {"topic": "Implementation", "negatives": 4, "share": "67%", "cumulative": "67%"},
            {"topic": "Marketing", "negatives": 2, "share": "33%", "cumulative": "100%"},
        ],
        "root_causes": [
            {"cause": "Billing export bug", "cases": 4, "share": "67%"},
            {"cause": "Training gaps", "cases": 2, "share": "33%"},
        ],
        "sla": [
            {"step": "Acknowledge", "due": 10, "on_time": 9, "share": "90%", "median": "1", "p90": "2.5"},
            {"step": "Internal call", "due": 8, "on_time": 4, "share": "50%", "median": "n/a", "p90": "n/a"},
        ],
        "ack": {"n": 5, "median": "1", "p90": "2.6", "max": "3"},
        "close": {"n": 0, "median": "n/a", "p90": "n/a", "max": "n/a"},
        "open_age": {"n": 2, "median": "10.5", "p90": "20", "max": "21"},
        "intake_delay": {"n": 5, "median": "3.5 h", "p90": "2.5 days"},
        "open_mrr": "$4,250",
        "open_without_mrr": 1,
        "responded_invites": 30,
        "surveys_sent": 50,
        "responses": 30,
        "earlier_invites": 3,
        "min_responses": 10,
        "repeat_accounts": 1,
        "accounts_with_negatives": 4,
        "recovery": {"pulses": 4, "pairs": 3, "improved": 2, "improved_share": "67%", "before": "2"}
        | {"after": "7.5", "satisfied": "75%", "escalated": 1},
        "workload": [
            {"username": "tsm1@x", "cases_opened": 2, "open_cases": 1, "steps_due": 5, "steps_completed": 4}
        ],
    }


def test_open_cases_without_any_mrr_and_no_comparison():
    m = replace(
        metrics(),
        open_cases_mrr=0.0,
        open_cases_without_mrr=2,
        negative_rate_change_pts=None,
        negative_rate_direction=None,
    )
    ctx = report_context(m, "s")
    assert (ctx["open_mrr"], ctx["open_without_mrr"]) == ("no", 2)
    assert ctx["negative_rate_phrase"] == "20%"
    assert ctx["headline"] == "negative rate 20%"
    assert report_context(replace(m, open_cases_without_mrr=0), "s")["open_mrr"] == "$0"
