"""Playbook vs survey drift (issue 19 item 5): each playbook text the survey lacks, named by key path."""

from __future__ import annotations

import copy

from survey_builders import IPM, RESOLVED, playbook_with, survey_details

from closed_loop.domain.drift import main_survey_drift, pulse_survey_drift
from closed_loop.domain.survey import parse_survey_details
from closed_loop.playbook import load_playbook

PB = load_playbook()


def _reword(old: str, new: str) -> dict:
    details = copy.deepcopy(survey_details())
    for page in details["pages"]:
        for q in page["questions"]:
            if q["headings"][0]["heading"] == old:
                q["headings"][0]["heading"] = new
            for item in (q.get("answers") or {}).get("choices", []) + (q.get("answers") or {}).get(
                "rows", []
            ):
                if item["text"] == old:
                    item["text"] = new
    return details


def test_the_survey_as_built_matches_the_playbook():
    assert main_survey_drift(parse_survey_details(survey_details()), PB) == []


def test_a_reworded_question_is_named_with_its_playbook_key():
    index = parse_survey_details(_reword(RESOLVED, "Were all your implementation issues resolved?"))
    found = [str(m) for m in main_survey_drift(index, PB)]
    assert found == [
        f"triggers.unresolved_issue.question: no question with this heading in survey "
        f"{index.title!r} ({RESOLVED!r})",
        f"topics.by_heading.{RESOLVED}: no question or matrix row with this text ({RESOLVED!r})",
    ]


def test_a_reworded_answer_and_a_playbook_typo():
    index = parse_survey_details(_reword("Not helpful at all", "Not at all helpful"))
    keys = {m.key for m in main_survey_drift(index, PB)}
    assert keys == {
        "triggers.negative_answer.answers[1].text",
        "triggers.at_risk.neutral_or_worse_answers[5]",
    }
    typo = playbook_with(triggers__unresolved_issue__answers=["No", "Partialy"])
    [m] = main_survey_drift(parse_survey_details(survey_details()), typo)
    assert (m.key, m.text, m.problem) == (
        "triggers.unresolved_issue.answers[1]",
        "Partialy",
        f"not a choice of {RESOLVED!r}",
    )


def test_matching_ignores_case_spacing_and_typography():
    index = parse_survey_details(_reword(IPM, "  how HELPFUL was your implementation   project manager? "))
    assert main_survey_drift(index, PB) == []


def test_pulse_survey():
    details = {
        "id": "9",
        "title": "Pulse",
        "pages": [{"questions": [{
            "id": "1", "family": "single_choice", "subtype": "vertical",
            "headings": [{"heading": "How satisfied are you with how we handled your feedback?"}],
            "answers": {"choices": [{"id": str(i), "text": t} for i, t in enumerate(
                ["Very satisfied", "Satisfied", "Neutral", "Dissatisfied", "Very dissatisfied"])]},
        }]}],
    }  # fmt: skip
    assert pulse_survey_drift(parse_survey_details(details), PB) == []
    details["pages"][0]["questions"][0]["answers"]["choices"][1]["text"] = "Happy"
    [m] = pulse_survey_drift(parse_survey_details(details), PB)
    assert m.key == "recovery.satisfied_answers[1]" and m.text == "Satisfied"
