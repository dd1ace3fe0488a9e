"""Survey /details documents are indexed by question id; malformed ones fail with the bad part."""

from __future__ import annotations

import pytest
from survey_builders import IPM, MARKETING, MATRIX, ROWS, survey_details

from closed_loop.domain.survey import SurveyDetailsError, parse_survey_details


def test_index_of_the_main_survey():
    index = parse_survey_details(survey_details())
    assert index.title == "Post-Implementation Feedback"
    assert len(index.questions) == 7
    matrix = index.by_heading("  please rate your AGREEMENT with each statement about your implementation. ")
    assert matrix is not None and matrix.heading == MATRIX and matrix.family == "matrix"
    assert list(matrix.rows.values()) == ROWS
    assert "Strongly Disagree" in matrix.choices.values()
    marketing = index.by_heading(MARKETING)
    assert marketing.other_id is not None and marketing.other_text == "Other (please specify)"
    assert index.by_heading(IPM).other_id is None
    assert index.by_heading("Not a question") is None


def _broken(change):
    details = survey_details()
    change(details)
    return details


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("pages"), "missing 'pages'"),
        (lambda d: d["pages"][0].pop("questions"), r"pages\[0\]: missing 'questions'"),
        (
            lambda d: d["pages"][0]["questions"][1].update(headings=[]),
            r"pages\[0\]\.questions\[1\]\.headings",
        ),
        (
            lambda d: d["pages"][0]["questions"][0]["answers"].update(rows="x"),
            r"answers\.rows: expected a list",
        ),
        (
            lambda d: d["pages"][0]["questions"][1]["answers"]["choices"][0].pop("id"),
            r"choices\[0\]: missing 'id'",
        ),
        (
            lambda d: d["pages"][1]["questions"][0].update(id=d["pages"][0]["questions"][0]["id"]),
            "duplicate id",
        ),
        (lambda d: d["pages"][0]["questions"][2]["answers"].update(other="x"), r"answers\.other"),
    ],
)
def test_malformed_details_name_the_part(change, message):
    with pytest.raises(SurveyDetailsError, match=message):
        parse_survey_details(_broken(change))


def test_not_an_object():
    with pytest.raises(SurveyDetailsError):
        parse_survey_details([])  # type: ignore[arg-type]
