"""The context a planned Case keeps for its later steps: every field, from the playbook's routing, tiers and
priority tables (include/playbook.yaml) and the scored response."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal

import pytest
from survey_builders import HAPPY, MATRIX, ROWS, response
from test_plan import CAL, DETAILS, NEGATIVE, PB, RECEIVED, TSM, URL

from closed_loop.domain.plan import ContactFacts, StepContext, plan_case
from closed_loop.domain.routing import AccountFacts, route
from closed_loop.domain.scoring import score_responses

DOI = "doi@closedloop.example"
# every StepContext field but the triggers and comments (the scored response's, checked as they are)
FIELDS = (
    "response_id account_id account_name contact_id contact_first_name lp_role lp_username tier channel "
    "severity case_priority task_priority response_url topics audience customer_call_variant mrr flags "
    "inactive_roles problems lead_name lead_title case_url"
).split()
CASES = {
    # MRR 4500 > 3000: the TSM leads; mid tier (3000 < MRR < 10000): personalised email; "Strongly
    # Disagree" is high severity: Case priority high x mid = High, Task priority High -> High; both
    # topics fired: topics.audience of both
    "tsm": (
        NEGATIVE,
        AccountFacts("001A", "Acme Dental", Decimal("4500"), TSM, True),
        ContactFacts("003C", "Dana", "Reyes"),
        ("r1", "001A", "Acme Dental", "003C", "Dana", "tsm", TSM, "mid", "personalised_email")
        + ("high", "High", "High", URL, ("implementation", "marketing"), ("doi", "ms"), "attend_tsm_call")
        + ("4,500.00", (), (), (), None, None, None),
    ),
    # no MRR: the DOI leads, flag mrr_missing, tier missing_mrr_tier = mid; "Disagree" is medium: Case
    # priority medium x mid = Medium, Task priority Medium -> Normal; no contact
    "doi": (
        {MATRIX: {ROWS[1]: "Disagree"}},
        AccountFacts("001B", "Beta", None, None, True),
        None,
        ("r1", "001B", "Beta", None, None, "doi", DOI, "mid", "personalised_email", "medium", "Medium")
        + ("Normal", URL, ("implementation",), ("doi",), "schedule_call", None, ("mrr_missing",), (), ())
        + (None, None, None),
    ),
}


def test_the_table_names_every_context_field():
    assert {f.name for f in fields(StepContext)} == {*FIELDS, "triggers", "comments"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_planned_context(case):
    answers, account, contact, expected = CASES[case]
    score = score_responses(DETAILS, [response(DETAILS, "r1", {**HAPPY, **answers})], PB).scores[0]
    plan = plan_case(score, account, contact, route(account, score.topics, PB), PB, CAL, RECEIVED, URL)
    ctx = plan.context
    assert {f: getattr(ctx, f) for f in FIELDS} == dict(zip(FIELDS, expected, strict=True))
    assert (ctx.triggers, ctx.comments) == (score.triggers, score.comments)
    assert (plan.priority, plan.contact_id, plan.owner_username) == (expected[10], expected[3], expected[6])
