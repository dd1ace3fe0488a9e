"""Plans: the Case and step Tasks with due dates, owners, priorities and rendered descriptions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from survey_builders import COMMENT, CONTACT, HAPPY, IPM, MATRIX, RECOMMEND, ROWS, response, survey_details

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.plan import ContactFacts, plan_activated_steps, plan_case, plan_escalation
from closed_loop.domain.routing import AccountFacts, route
from closed_loop.domain.scoring import score_responses
from closed_loop.playbook import load_playbook

PB = load_playbook()
CAL = BusinessCalendar.from_playbook(PB)
DETAILS = survey_details()
RECEIVED = date(2025, 7, 2)  # a Wednesday; Friday July 4 is a holiday
URL = "https://www.surveymonkey.com/analyze/browse/abc?respondent_id=r1"
TSM = "tsm1@closedloop.example"


def make_plan(answers, mrr=Decimal("4500"), tsm=TSM, name="Acme Dental"):
    score = score_responses(DETAILS, [response(DETAILS, "r1", {**HAPPY, **answers})], PB).scores[0]
    account = AccountFacts("001A", name, mrr, tsm, True)
    routing = route(account, score.topics, PB)
    return plan_case(score, account, ContactFacts("003C", "Dana", "Reyes"), routing, PB, CAL, RECEIVED, URL)


NEGATIVE = {
    MATRIX: {ROWS[0]: "Disagree", ROWS[3]: "Strongly Disagree"},
    COMMENT: "Billing exports are still not working.",
    CONTACT: "Yes",
}


def test_case_fields():
    plan = make_plan(NEGATIVE)
    fields = plan.case_fields(PB)
    assert fields["Survey_Response_Id__c"] == "r1"
    assert fields["Origin"] == "Post-Implementation Survey" and fields["Status"] == "New"
    assert fields["Priority"] == "High" and fields["AccountId"] == "001A" and fields["ContactId"] == "003C"
    assert "Acme Dental" in fields["Subject"]
    assert plan.owner_username == TSM
    for text in (ROWS[0], ROWS[3], '"Disagree"', '"Strongly Disagree"', CONTACT, NEGATIVE[COMMENT], URL):
        assert text in fields["Description"]
    assert f'Answered "Strongly Disagree" to "{MATRIX} \u2014 {ROWS[3]}"' in fields["Description"]
    assert "tsm1@closedloop.example" not in fields["Description"]  # people, not usernames


def test_on_open_steps_due_dates_and_owners():
    plan = make_plan(NEGATIVE)
    got = {s.step: (s.key, s.owner_username, s.owner_role, s.due_date, s.priority) for s in plan.steps}
    assert list(got) == [
        "acknowledge",
        "investigate",
        "internal_call",
        "customer_call",
        "corrective_action",
        "document",
    ]
    assert got["acknowledge"] == ("r1:acknowledge", TSM, "lp", date(2025, 7, 8), "High")
    assert got["investigate"][3] == date(2025, 7, 10)
    assert got["internal_call"][3] == date(2025, 7, 17)
    assert got["customer_call"][3] == date(2025, 7, 17)
    assert got["corrective_action"][3] == date(2025, 8, 1)
    assert got["document"][3] == date(2025, 8, 1)
    assert plan.steps[0].start_date == date(2025, 7, 3)
    task = plan.steps[0].task_fields(PB)
    assert task["Closed_Loop_Key__c"] == "r1:acknowledge" and task["ActivityDate"] == "2025-07-08"
    assert task["Status"] == "Not Started"


def test_step_descriptions_carry_the_rendered_templates():
    steps = {s.step: s for s in make_plan(NEGATIVE).steps}
    ack = steps["acknowledge"].description
    assert "Hi Dana," in ack and "Northwind Billing" in ack and "Transition Success Manager" in ack
    assert "the implementation and the marketing onboarding" in ack  # personalised (mid tier)
    call = steps["internal_call"].description
    assert "Call attendees: Director of Implementations, Marketing Specialist" in call
    assert NEGATIVE[COMMENT] in call and URL in call
    assert steps["customer_call"].subject == "Attend the customer's next TSM call: Acme Dental"
    assert "Root Cause, Actions Taken, Outcome" in steps["document"].description


def test_variants_for_small_and_top_accounts():
    small = {s.step: s for s in make_plan(NEGATIVE, mrr=Decimal("3000")).steps}
    assert small["customer_call"].subject.startswith("Schedule a call with the customer")
    assert small["acknowledge"].owner_username == "doi@closedloop.example"
    assert "Director of Implementations" in small["acknowledge"].description
    assert "Thank you for taking the time to provide feedback" in small["acknowledge"].description
    top = {s.step: s for s in make_plan(NEGATIVE, mrr=Decimal("25000")).steps}
    assert top["acknowledge"].description.count("Call first") == 1


@pytest.mark.parametrize(
    ("answers", "mrr", "case", "task"),
    [
        ({IPM: "Not very helpful"}, Decimal("3500"), "Medium", "Normal"),
        ({IPM: "Not very helpful"}, Decimal("15000"), "High", "High"),
        ({CONTACT: "Yes"}, Decimal("100"), "Low", "Low"),
        ({RECOMMEND: "2"}, Decimal("100"), "High", "High"),
    ],
)
def test_priority_matrix(answers, mrr, case, task):
    plan = make_plan(answers, mrr=mrr)
    assert plan.priority == case
    assert {s.priority for s in plan.steps} == {task}


def test_follow_up_is_anchored_on_the_acknowledgement_completion():
    plan = make_plan(NEGATIVE)
    (follow,) = plan_activated_steps(plan, "acknowledge", date(2025, 7, 10), PB, CAL)
    assert follow.key == "r1:follow_up" and follow.owner_username == TSM
    assert follow.due_date == date(2025, 7, 10) + timedelta(weeks=3) == date(2025, 7, 31)  # SOP: 3 weeks
    assert "Hi Dana," in follow.description and "Checking in" in follow.description
    same_from_context = plan_activated_steps(plan.context, "acknowledge", date(2025, 7, 10), PB, CAL)
    assert same_from_context == [follow]
    assert plan_activated_steps(plan, "investigate", date(2025, 7, 10), PB, CAL) == []


def test_escalations():
    plan = make_plan(NEGATIVE)
    late = plan.steps[0]
    overdue = plan_escalation(plan, "overdue", date(2025, 7, 9), PB, CAL, late)
    assert (overdue.key, overdue.owner_role, overdue.owner_username) == (
        "r1:escalate:overdue:acknowledge",
        "doi",
        "doi@closedloop.example",
    )
    assert overdue.due_date == date(2025, 7, 11) and overdue.priority == "High"
    assert "due 2025-07-08, 1 business day late" in overdue.description
    unhappy = plan_escalation(plan, "dissatisfied", date(2025, 8, 4), PB, CAL)
    assert (unhappy.key, unhappy.owner_username) == ("r1:escalate:dissatisfied", "vp.cs@closedloop.example")
    doi_led = make_plan(NEGATIVE, mrr=Decimal("100"))
    up = plan_escalation(doi_led, "overdue", date(2025, 7, 9), PB, CAL, doi_led.steps[0])
    assert up.owner_username == "vp.cs@closedloop.example"  # never back to the late DOI


def test_long_subjects_are_clipped_and_positive_responses_refused():
    plan = make_plan(NEGATIVE, name="A" * 400)
    assert all(len(s.subject) <= 255 for s in plan.steps) and len(plan.subject) <= 255
    score = score_responses(DETAILS, [response(DETAILS, "r2", HAPPY)], PB).scores[0]
    routing = route(AccountFacts("001A", "Acme", Decimal("1")), (), PB)
    with pytest.raises(ValueError, match="not negative"):
        plan_case(score, AccountFacts("001A", "Acme"), None, routing, PB, CAL, RECEIVED, URL)
    assert replace(score, negative=True, severity="low").negative
