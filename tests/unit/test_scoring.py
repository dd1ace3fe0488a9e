"""Scoring: every trigger kind, text matching, matrix rows, "other", problems, vectorised == naive."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from scoring_reference import score_responses_naive
from survey_builders import (
    AGREE,
    COMMENT,
    CONTACT,
    HAPPY,
    HELPFUL,
    IPM,
    MARKETING,
    MATRIX,
    RECOMMEND,
    RESOLVED,
    ROWS,
    playbook_with,
    response,
    survey_details,
)

from closed_loop.domain.scoring import ANSWER_COLUMNS, score_responses
from closed_loop.domain.triggers import REGISTRY, AlarmingComment, Fired, TriggerKind, register
from closed_loop.playbook import PlaybookError, Severity, Triggers, load_playbook

PB = load_playbook()
DETAILS = survey_details()


def score(answers: dict, *, details=None, playbook=PB, **kwargs):
    details = details or DETAILS
    result = score_responses(details, [response(details, "r1", {**HAPPY, **answers})], playbook, **kwargs)
    naive = score_responses_naive(
        details, [response(details, "r1", {**HAPPY, **answers})], playbook, **kwargs
    )
    assert result.scores == naive.scores and result.problems == naive.problems
    return result.scores[0]


def kinds(s):
    return [(t.kind, t.answer, t.severity) for t in s.triggers]


def test_happy_response_is_not_negative():
    s = score({})
    assert (s.negative, s.severity, s.topics, s.triggers, s.problems) == (False, None, (), (), ())
    assert s.comments == ((COMMENT, "All good, thank you."),)


@pytest.mark.parametrize(
    ("text", "severity"),
    [("Not helpful at all", "high"), ("Not very helpful", "medium"), ("Somewhat helpful", None)],
)
def test_negative_answer_on_single_choice(text, severity):
    s = score({IPM: text})
    assert s.severity == severity
    if severity:
        (t,) = s.triggers
        assert (t.kind, t.heading, t.answer, t.topic) == ("negative_answer", IPM, text, "implementation")
        assert t.rule == f"answer '{text}' is in the SOP's negative answers"
        assert s.topics == ("implementation",)


def test_matrix_rows_fire_individually_with_their_own_topics():
    s = score({MATRIX: {ROWS[0]: "Disagree", ROWS[3]: "Strongly Disagree", ROWS[4]: "Agree"}})
    assert [(t.row, t.answer, t.severity, t.topic) for t in s.triggers] == [
        (ROWS[0], "Disagree", "medium", "implementation"),
        (ROWS[3], "Strongly Disagree", "high", "marketing"),
    ]
    assert s.severity == "high"
    assert s.topics == ("implementation", "marketing")


def test_matching_ignores_case_and_whitespace():
    details = survey_details()
    q = details["pages"][0]["questions"][1]["answers"]["choices"]
    q[4]["text"] = "  not   HELPFUL at all "
    s = score({IPM: "  not   HELPFUL at all "}, details=details)
    assert kinds(s) == [("negative_answer", "  not   HELPFUL at all ", "high")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", None), ("6", "medium"), ("4", "medium"), ("3", "high"), ("0", "high"), ("10", None)],
)
def test_low_score_bands(value, expected):
    s = score({RECOMMEND: value})
    assert s.severity == expected
    if expected:
        (t,) = s.triggers
        assert t.kind == "low_score" and t.answer == value
        assert t.rule.startswith(f"score {value} is at or below ") and t.rule.endswith("on the 0-10 scale")


def test_score_comes_from_the_choice_position_not_its_label():
    """Issue 13 item 7: a labelled scale ("0 - Not at all likely") keeps its worst detractor scored."""
    details = survey_details()
    choices = details["pages"][1]["questions"][0]["answers"]["choices"]
    choices[0]["text"] = "0 - Not at all likely"
    choices[10]["text"] = "10 - Extremely likely"
    choices[2]["text"] = "two"
    worst = score({RECOMMEND: "0 - Not at all likely"}, details=details)
    # position 1 of an 11-point 0..10 scale is 0; the playbook's lowest band (at or below 3) is high
    assert [(t.kind, t.answer, t.severity) for t in worst.triggers] == [("low_score", "0", "high")]
    assert [(t.kind, t.answer) for t in score({RECOMMEND: "two"}, details=details).triggers] == [
        ("low_score", "2")
    ]
    assert not score({RECOMMEND: "10 - Extremely likely"}, details=details).negative


def test_choice_positions_order_the_scale_even_when_listed_out_of_order():
    details = survey_details()
    choices = details["pages"][1]["questions"][0]["answers"]["choices"]
    choices.reverse()  # the API lists them 10..0 but positions still say 0 is first
    assert score({RECOMMEND: "0"}, details=details).severity == "high"
    assert not score({RECOMMEND: "9"}, details=details).negative


def test_score_question_without_one_choice_per_point_is_a_problem():
    details = survey_details()
    details["pages"][1]["questions"][0]["answers"]["choices"].pop()  # 0..9: ten choices for 11 points
    s = score({RECOMMEND: "2"}, details=details)
    assert not s.negative
    assert s.problems == (
        "answer '2' to the score question has no place on the 0..10 scale "
        "(the question needs exactly one choice per point, in position order)",
    )


@pytest.mark.parametrize(("value", "fires"), [("No", True), ("Partially", True), ("Yes", False)])
def test_unresolved_issue(value, fires):
    s = score({RESOLVED: value})
    assert kinds(s) == ([("unresolved_issue", value, "medium")] if fires else [])


def test_follow_up_request_alone_is_low_and_uses_the_default_topic():
    s = score({CONTACT: "Yes"})
    assert kinds(s) == [("follow_up_request", "Yes", "low")]
    assert s.negative and s.severity == "low" and s.topics == ("implementation",)
    assert not score({CONTACT: "No"}).negative


@pytest.mark.parametrize(
    ("comment", "pattern"),
    [
        ("We are thinking about CANCELLING.", r"\bcancel"),
        ("The export still doesn't work", "still (does not|doesn't|doesnt) work"),
        ("Sync is not working since go-live", "not working"),
        ("Very frustrated with support", "frustrat"),
        ("Great team, thanks!", None),
        ("We appreciated the refundable deposit", r"\brefund"),
    ],
)
def test_alarming_comment(comment, pattern):
    s = score({COMMENT: comment})
    if pattern is None:
        assert not s.negative
    else:
        (t,) = s.triggers
        assert (t.kind, t.answer, t.severity) == ("alarming_comment", comment, "high")
        assert t.rule == f"comment matches the alarming pattern '{pattern}'"
    assert s.comments == ((COMMENT, comment),)


def test_other_text_is_read_as_a_comment():
    s = score({MARKETING: ("other", "Honestly disappointing")})
    assert kinds(s) == [("alarming_comment", "Honestly disappointing", "high")]
    assert s.topics == ("marketing",)
    quiet = playbook_with(triggers__alarming_comment__include_other_text=False)
    assert not score({MARKETING: ("other", "Honestly disappointing")}, playbook=quiet).negative


def test_disabled_trigger_does_not_fire():
    off = playbook_with(triggers__negative_answer__enabled=False)
    assert not score({IPM: "Not helpful at all"}, playbook=off).negative


def test_at_risk_account_with_a_neutral_answer():
    args = {"accounts_at_risk": {"001A": True}, "respondent_account": {"rcp-r1": "001A"}}
    s = score({IPM: "Somewhat helpful", MATRIX: {ROWS[1]: "Neither Agree nor Disagree"}}, **args)
    assert kinds(s) == [("at_risk", "Neither Agree nor Disagree", "high")]
    assert s.account_id == "001A" and s.recipient_id == "rcp-r1"
    assert "flagged at risk" in s.triggers[0].rule
    assert kinds(score({RECOMMEND: "8"}, **args)) == [("at_risk", "8", "high")]
    assert not score({RECOMMEND: "9"}, **args).negative
    calm = {"accounts_at_risk": {"001A": False}, "respondent_account": {"rcp-r1": "001A"}}
    assert not score({IPM: "Somewhat helpful"}, **calm).negative


def test_unknown_ids_are_reported_and_the_rest_is_scored():
    raw = response(DETAILS, "r1", {**HAPPY, IPM: "Not very helpful"})
    questions = raw["pages"][0]["questions"]
    questions[0]["answers"].append({"row_id": "999", "choice_id": questions[0]["answers"][0]["choice_id"]})
    questions[2]["answers"] = [{"choice_id": "123456"}]
    questions.append({"id": "42", "answers": [{"choice_id": "1"}]})
    result = score_responses(DETAILS, [raw], PB)
    (s,) = result.scores
    assert kinds(s) == [("negative_answer", "Not very helpful", "medium")]
    assert s.problems == (
        f"unknown row id 999 for question '{MATRIX}'",
        f"unknown choice id 123456 for question '{MARKETING}'",
        "unknown question id 42",
    )
    assert result.problems == [f"response r1: {p}" for p in s.problems]
    assert len(result.answers) == 13  # 11 answers + 2 bad ones: reported, not dropped
    assert result.answers["problem"].notna().sum() == 3


def test_malformed_answers_and_responses():
    raw = response(DETAILS, "r1", {**HAPPY, RESOLVED: "No"})
    questions = raw["pages"][0]["questions"]
    questions[1]["answers"] = ["Very helpful"]
    questions[2]["answers"] = [{"choice_id": ["a"]}]
    questions[0]["answers"].append({"choice_id": questions[0]["answers"][0]["choice_id"]})
    raw["pages"][1]["questions"].append({"answers": "nope"})
    batch = [raw, {"pages": []}, "junk", dict(raw)]
    for scorer in (score_responses, score_responses_naive):
        result = scorer(DETAILS, batch, PB)
        (s,) = result.scores
        assert kinds(s) == [("unresolved_issue", "No", "medium")]
        assert len(s.problems) == 5
        assert any("expected an object, got str" in p for p in s.problems)
        assert any("choice_id is not an id" in p for p in s.problems)
        assert any("a matrix answer without row_id" in p for p in s.problems)
        assert any("without an id or an 'answers' list" in p for p in s.problems)
        assert any("duplicate response" in p for p in s.problems)
        assert "response #1: no id, skipped" in result.problems
        assert "response #2: no id, skipped" in result.problems


def test_answers_frame_and_empty_batch():
    result = score_responses(DETAILS, [response(DETAILS, "r1", HAPPY)], PB)
    assert list(result.answers.columns) == ANSWER_COLUMNS
    assert set(result.answers["topic"].dropna()) == {"implementation", "marketing", "product_support"}
    empty = score_responses(DETAILS, [], PB)
    assert empty.scores == [] and empty.problems == [] and empty.answers.empty


# --- vectorised and naive agree on random batches -----------------------------------------------------

QUESTIONS = [q for page in DETAILS["pages"] for q in page["questions"]]
SNIPPETS = ["fine", "we will cancel", "Still doesn't work", "NOT WORKING", "worst", "ok", "<b>refund</b>"]


@st.composite
def raw_answer(draw, question):
    answers = question.get("answers", {})
    choices = [c["id"] for c in answers.get("choices", [])] + ["bogus"]
    kind = draw(st.sampled_from(["ok", "ok", "ok", "other", "broken"]))
    if kind == "broken":
        return draw(st.sampled_from(["x", {}, {"choice_id": None}, {"text": 5}, {"row_id": "r"}]))
    if not answers:
        return {"text": draw(st.sampled_from(SNIPPETS))}
    if kind == "other" and "other" in answers:
        return {"other_id": answers["other"]["id"], "text": draw(st.sampled_from(SNIPPETS))}
    answer = {"choice_id": draw(st.sampled_from(choices))}
    if answers.get("rows"):
        answer["row_id"] = draw(st.sampled_from([r["id"] for r in answers["rows"]] + ["bogus"]))
    return answer


@st.composite
def raw_response(draw, rid):
    questions = []
    for question in QUESTIONS:
        if draw(st.booleans()):
            n = draw(st.integers(1, 3))
            questions.append(
                {"id": question["id"], "answers": [draw(raw_answer(question)) for _ in range(n)]}
            )
    if draw(st.integers(0, 9)) == 0:
        questions.append({"id": "404", "answers": [{"choice_id": "1"}]})
    return {"id": rid, "recipient_id": f"rc{rid}", "pages": [{"id": "p", "questions": questions}]}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 6).flatmap(lambda n: st.tuples(*[raw_response(str(i)) for i in range(n)])),
    st.dictionaries(st.sampled_from(["A", "B"]), st.booleans()),
)
def test_vectorised_equals_naive(batch, risk):
    accounts = {f"rc{i}": "A" if i % 2 else "B" for i in range(len(batch))}
    fast = score_responses(DETAILS, list(batch), PB, risk, accounts)
    slow = score_responses_naive(DETAILS, list(batch), PB, risk, accounts)
    assert fast.scores == slow.scores
    assert fast.problems == slow.problems
    assert len(fast.answers) == len(slow.answers)


def test_agree_and_helpful_scales_are_in_the_fixture():
    assert AGREE[-1] == "Strongly Disagree" and HELPFUL[-1] == "Not helpful at all"


def test_a_catastrophic_pattern_cannot_stall_scoring():
    """``(a+)+$`` on 40 a's and a '!' is 2**40 backtracking paths for Python's re (hours); scoring uses
    RE2, whose work grows with the text, so both scorers finish and agree (no trigger: no match)."""
    redos = playbook_with(triggers__alarming_comment__patterns=["(a+)+$", r"\bcancel"])
    comments = AlarmingComment(redos.triggers.alarming_comment, redos)
    assert all(type(p).__module__.startswith("re2") for _, p in comments.patterns)
    s = score({COMMENT: "a" * 40 + "!"}, playbook=redos)
    assert not s.negative
    assert kinds(score({COMMENT: "We may cancel"}, playbook=redos)) == [
        ("alarming_comment", "We may cancel", "high")
    ]


# --- the registry is the one source of trigger kinds ----------------------------------------------------


@pytest.fixture
def registry():
    """The registry, restored (same kinds, same order) after the test."""
    saved = dict(REGISTRY)
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(saved)


def test_every_playbook_trigger_section_has_one_registered_kind():
    # the registration order is the order of the triggers fired by one answer
    assert list(REGISTRY) == [
        "negative_answer",
        "low_score",
        "unresolved_issue",
        "follow_up_request",
        "alarming_comment",
        "at_risk",
    ]
    assert set(REGISTRY) == set(Triggers.model_fields)
    assert all(cls.kind == section for section, cls in REGISTRY.items())


class ShoutingSection(BaseModel):
    """The new kind's playbook section."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    severity: Severity
    min_letters: int


class ShoutingComment(TriggerKind):
    """A new kind, written the way the built-in ones are: an open-ended answer all in capitals."""

    def __init__(self, section, playbook):
        super().__init__(section, playbook)
        self.min_letters = section.min_letters

    def fire(self, answers):
        a = answers.frame
        text = a["text"].where(answers.ok & (a["family"] == "open_ended"))
        letters = text.str.count("[A-Za-z]")
        shouted = text.notna() & (text.str.upper() == text) & (letters >= self.min_letters)
        return Fired(shouted, text, (letters,), self.severity)

    def explain(self, letters):
        return f"a comment of {int(letters)} letters, all in capitals"


def with_shouting(**section):
    """A copy of the playbook with a ``triggers.shouting_comment`` section."""

    class TriggersWithShouting(Triggers):
        shouting_comment: ShoutingSection

    extended = TriggersWithShouting(**dict(PB.triggers), shouting_comment=ShoutingSection(**section))
    return PB.model_copy(update={"triggers": extended})


def score_one(answers: dict, playbook):
    return score_responses(DETAILS, [response(DETAILS, "r1", {**HAPPY, **answers})], playbook).scores[0]


def test_a_new_kind_is_one_class_and_its_playbook_section(registry):
    register("shouting_comment")(ShoutingComment)
    playbook = with_shouting(severity="medium", min_letters=10)
    text = "THIS IS NOT WHAT WE PAID FOR"
    letters = sum(c.isalpha() for c in text)  # 22 >= 10
    s = score_one({COMMENT: text}, playbook)
    assert kinds(s) == [("shouting_comment", text, "medium")]
    (t,) = s.triggers
    assert (t.heading, t.row, t.rule) == (COMMENT, None, f"a comment of {letters} letters, all in capitals")
    assert (s.negative, s.severity, s.topics) == (True, "medium", (PB.topics.default_topic,))

    assert not score_one({COMMENT: "OK THANKS"}, playbook).negative  # 8 letters: below min_letters
    assert not score_one({COMMENT: text.capitalize()}, playbook).negative
    assert not score_one(
        {COMMENT: text}, with_shouting(enabled=False, severity="medium", min_letters=10)
    ).negative
    # on one answer, the new kind comes after the built-in ones; the worst severity wins
    both = score_one({COMMENT: "WE WILL CANCEL THE CONTRACT"}, playbook)
    assert kinds(both) == [
        ("alarming_comment", "WE WILL CANCEL THE CONTRACT", "high"),
        ("shouting_comment", "WE WILL CANCEL THE CONTRACT", "medium"),
    ]
    assert both.severity == "high"
    with pytest.raises(PlaybookError, match=r"triggers\.shouting_comment"):
        score_one({COMMENT: text}, PB)  # registered, but this playbook has no section for it


def test_a_kind_out_of_the_registry_no_longer_fires(registry):
    answers = {RESOLVED: "No", CONTACT: "Yes"}
    assert kinds(score_one(answers, PB)) == [
        ("unresolved_issue", "No", "medium"),
        ("follow_up_request", "Yes", "low"),
    ]
    del registry["follow_up_request"]
    assert kinds(score_one(answers, PB)) == [("unresolved_issue", "No", "medium")]
