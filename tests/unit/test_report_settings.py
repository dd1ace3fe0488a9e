"""The report reads the survey's questions and the SOP step order from the playbook, not from code."""

from __future__ import annotations

import math

import pandas as pd

from closed_loop.pipeline.report import report_settings
from closed_loop.playbook import load_playbook
from closed_loop.reporting.data import ReportData
from closed_loop.reporting.metrics import RECOMMEND_HEADING, ReportSettings, compute_metrics
from closed_loop.reporting.quarters import Quarter
from devtools.synthetic import synthetic_report_data

Q = Quarter.parse("2026-Q3")


def _without_nps(data: ReportData, heading: str | None = None) -> ReportData:
    responses = data.responses.assign(nps=pd.NA)  # as in the ledger: scores come from the answers
    answers = data.answers
    if heading:
        answers = answers.assign(heading=answers["heading"].replace(RECOMMEND_HEADING, heading))
    return ReportData(**{**data.__dict__, "responses": responses, "answers": answers})


def test_recommend_question_comes_from_the_settings():
    base = synthetic_report_data(Q.trailing(2), seed=3, invites_per_quarter=60)
    expected = compute_metrics(_without_nps(base), Q).figures(Q.label)["nps"]
    assert expected is not None and not math.isnan(expected)

    renamed = _without_nps(base, heading="On a scale of 0-10, would you recommend us?")
    tuned = ReportSettings(recommend_heading="On a scale of 0-10, would you recommend us?")
    assert compute_metrics(renamed, Q, settings=tuned).figures(Q.label)["nps"] == expected
    untuned = compute_metrics(renamed, Q).figures(Q.label)["nps"]
    assert untuned is None or math.isnan(untuned)


def test_settings_are_read_from_the_playbook():
    pb = load_playbook()
    settings = report_settings(pb)
    assert settings.recommend_heading == pb.triggers.low_score.question
    assert settings.satisfaction_heading == pb.recovery.satisfaction_question
    assert settings.satisfied_choices == frozenset(pb.recovery.satisfied_answers)
    assert settings.step_order[0] == "acknowledge" and len(settings.step_order) == len(pb.steps)
