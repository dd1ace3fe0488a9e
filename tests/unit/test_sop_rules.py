"""SOP rules from issue 14, domain side: one text normalisation, the lead decided from the account AND
the users' state, the summary of issues to DOI & MS, and step windows in the SOP's own units.

Expected values come from the SOP's words and the playbook file, computed here (dates with
python-holidays), never from the code under test.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import holidays
import pytest
from scoring_reference import score_responses_naive
from survey_builders import COMMENT, HAPPY, MATRIX, ROWS, response, survey_details

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.plan import ContactFacts, plan_activated_steps, plan_case
from closed_loop.domain.routing import AccountFacts, route
from closed_loop.domain.scoring import score_responses
from closed_loop.playbook import load_playbook, normalise

PB = load_playbook()
CAL = BusinessCalendar.from_playbook(PB)
DETAILS = survey_details()
TSM = "tsm1@closedloop.example"
DOI, MS, VP = "doi@closedloop.example", "ms@closedloop.example", "vp.cs@closedloop.example"
US = holidays.country_holidays("US")


# --- item 2: one normalisation for every text match ----------------------------------------------------


@pytest.mark.parametrize(
    "comment",
    [
        "it still doesn't work",
        "it still\ndoesn't work",
        "it still\r\n  doesn't   work",
        "It STILL doesn\u2019t work",  # typographic apostrophe (phones)
        "it\u00a0still doesn\u02bct\twork",  # no-break space, modifier apostrophe, tab
        "\uff49\uff54 still doesn't work",  # full-width letters (NFKC)
    ],
)
@pytest.mark.parametrize("scorer", [score_responses, score_responses_naive])
def test_an_alarming_comment_is_found_whatever_its_spacing_quotes_or_case(comment, scorer):
    score = scorer(DETAILS, [response(DETAILS, "r1", {**HAPPY, COMMENT: comment})], PB).scores[0]
    kinds = {t.kind for t in score.triggers}
    assert score.negative and kinds == {"alarming_comment"}, comment
    assert score.triggers[0].answer == comment, "the customer's words are shown as written"


@pytest.mark.parametrize("answer", ["Strongly\nDisagree", "strongly  DISAGREE", "Strongly\u00a0Disagree"])
def test_choice_texts_with_odd_spacing_match_the_sop_answers(answer):
    edited = survey_details()
    matrix = next(q for q in edited["pages"][0]["questions"] if q["headings"][0]["heading"] == MATRIX)
    choice = next(c for c in matrix["answers"]["choices"] if c["text"] == "Strongly Disagree")
    choice["text"] = answer  # the survey was edited in SurveyMonkey with a stray line break
    answered = response(DETAILS, "r1", {**HAPPY, MATRIX: {ROWS[0]: "Strongly Disagree"}})
    score = score_responses(edited, [answered], PB).scores[0]
    assert score.negative and score.severity == "high"


def test_normalise_folds_quotes_dashes_spacing_and_case():
    text = "  It\u2019s \u201cnot\u201d\n\nworking \u2014 at ALL "
    assert normalise(text) == 'it\'s "not" working - at all'


# --- item 1: the lead is decided from the account and the users' state ---------------------------------


def _score(answers):
    return score_responses(DETAILS, [response(DETAILS, "r1", {**HAPPY, **answers})], PB).scores[0]


def _plan(account, inactive=()):
    score = _score({MATRIX: {ROWS[0]: "Strongly Disagree", ROWS[3]: "Disagree"}})
    routing = route(account, score.topics, PB, inactive)
    return plan_case(score, account, ContactFacts("003C", "Dana"), routing, PB, CAL, date(2026, 11, 2), "u")


def test_an_inactive_tsm_is_never_the_lead_person():
    account = AccountFacts("001A", "Acme", Decimal("4500"), TSM, tsm_active=False)
    plan = _plan(account)
    steps = {s.step: s for s in plan.steps}
    assert plan.owner_username == DOI and plan.routing.flags == ("tsm_missing",)
    assert {s.owner_username for s in plan.steps} == {DOI}
    assert steps["customer_call"].subject.startswith("Schedule a call with the customer")
    assert "Transition Success Manager" not in steps["acknowledge"].description
    assert "Director of Implementations" in steps["acknowledge"].description  # the draft's signature


@pytest.mark.parametrize(
    ("mrr", "inactive", "lead", "attendees"),
    [
        (Decimal("1000"), ("doi",), VP, ("ms", "management")),  # DOI would lead and attend
        (Decimal("1000"), ("ms",), DOI, ("doi", "management")),  # MS would attend (marketing row)
        (Decimal("4500"), ("doi", "ms"), TSM, ("management",)),  # the TSM still leads
    ],
)
def test_an_inactive_doi_or_ms_hands_their_part_to_management_flagged(mrr, inactive, lead, attendees):
    plan = _plan(AccountFacts("001A", "Acme", mrr, TSM), inactive)
    assert plan.owner_username == lead and "role_inactive" in plan.routing.flags
    order = list(PB.people.roles)
    assert plan.routing.internal_call_audience == tuple(sorted(attendees, key=order.index))
    call = next(s for s in plan.steps if s.step == "internal_call")
    titles = {r: PB.people.roles[r].title for r in PB.people.roles}
    summary_to = [titles[PB.routing.inactive_user.role if r in inactive else r] for r in ("doi", "ms")]
    assert f"To: {', '.join(dict.fromkeys(summary_to))}" in call.description


# --- item 7: the summary of issues goes to DOI & MS; attendees follow the topics ------------------------


@pytest.mark.parametrize(
    ("answers", "attendees"),
    [
        ({MATRIX: {ROWS[0]: "Strongly Disagree"}}, "Director of Implementations"),
        ({MATRIX: {ROWS[3]: "Strongly Disagree"}}, "Marketing Specialist"),
    ],
)
def test_the_summary_goes_to_doi_and_ms_while_attendees_follow_the_topics(answers, attendees):
    score = _score(answers)
    account = AccountFacts("001A", "Acme", Decimal("1000"))
    plan = plan_case(score, account, None, route(account, score.topics, PB), PB, CAL, date(2026, 7, 1), "u")
    call = next(s for s in plan.steps if s.step == "internal_call").description
    assert "To: Director of Implementations, Marketing Specialist" in call  # SOP 3.1
    assert f"Invite to the call: {attendees}\n" in call  # SOP 3.2: by topic


# --- item 10: windows in the SOP's units ----------------------------------------------------------------


def _business_days_after(day: date, n: int) -> date:
    while n:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in US and day not in PB.calendar.closures:
            n -= 1
    return day


def test_the_follow_up_is_due_three_weeks_after_the_acknowledgement_across_thanksgiving():
    acknowledged = date(2026, 11, 10)  # Tuesday; Veterans Day (11th) and Thanksgiving (26th) follow
    plan = _plan(AccountFacts("001A", "Acme", Decimal("4500"), TSM))
    (follow,) = plan_activated_steps(plan, "acknowledge", acknowledged, PB, CAL)
    three_weeks = acknowledged + timedelta(weeks=3)  # SOP 5: "within 3 weeks of initial contact"
    assert follow.due_date == three_weeks == date(2026, 12, 1)
    assert _business_days_after(acknowledged, 15) > three_weeks, "15 business days would be later"
    assert "within 2-3 weeks of the acknowledgement" in follow.description


def test_a_calendar_window_ending_on_a_holiday_is_due_the_last_business_day_inside_it():
    day = date(2026, 12, 4)  # three weeks later is Friday Dec 25 (Christmas), the 24th is a closure
    due = CAL.add_window(day, 3, "weeks")
    expected = day + timedelta(weeks=3)
    while expected.weekday() >= 5 or expected in US or expected in PB.calendar.closures:
        expected -= timedelta(days=1)
    assert due == expected == date(2026, 12, 23)
    assert CAL.add_window(day, 10, "calendar_days") == date(2026, 12, 14)  # a Monday
    assert CAL.add_window(day, 3, "business_days") == _business_days_after(day, 3)
