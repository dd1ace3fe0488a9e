"""Routing: LP by the MRR threshold (tie, missing, unparseable, no TSM), tiers and internal-call audience."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from closed_loop.domain.routing import AccountFacts, parse_mrr, route
from closed_loop.playbook import load_playbook

PB = load_playbook()
TSM = "tsm1@closedloop.example"


def account(mrr, tsm=TSM, active=True):
    return AccountFacts("001A", "Acme Dental", mrr, tsm, active)


@pytest.mark.parametrize(
    ("mrr", "role", "username", "tier", "channel", "flags"),
    [
        (Decimal("3000"), "doi", "doi@closedloop.example", "lower", "standard_email", ()),
        (Decimal("3000.01"), "tsm", TSM, "mid", "personalised_email", ()),
        ("3,000.00", "doi", "doi@closedloop.example", "lower", "standard_email", ()),
        ("$4,500", "tsm", TSM, "mid", "personalised_email", ()),
        (9999.99, "tsm", TSM, "mid", "personalised_email", ()),
        (10000, "tsm", TSM, "top", "phone_call_now", ()),
        (250, "doi", "doi@closedloop.example", "lower", "standard_email", ()),
        (None, "doi", "doi@closedloop.example", "mid", "personalised_email", ("mrr_missing",)),
        ("$4K", "doi", "doi@closedloop.example", "mid", "personalised_email", ("mrr_unparseable",)),
    ],
)
def test_lp_and_tier(mrr, role, username, tier, channel, flags):
    r = route(account(mrr), ("implementation",), PB)
    assert (r.lp_role, r.lp_username, r.tier, r.channel, r.flags) == (role, username, tier, channel, flags)
    assert r.customer_call_variant == ("attend_tsm_call" if role == "tsm" else "schedule_call")


@pytest.mark.parametrize(("tsm", "active"), [(None, True), ("", True), (TSM, False)])
def test_missing_or_inactive_tsm_falls_back_to_the_doi(tsm, active):
    r = route(account(Decimal("5000"), tsm, active), (), PB)
    assert (r.lp_role, r.lp_username, r.flags) == ("doi", "doi@closedloop.example", ("tsm_missing",))
    assert r.customer_call_variant == "schedule_call"
    assert r.tier == "mid"


def test_a_missing_tsm_below_the_threshold_is_not_a_problem():
    assert route(account(Decimal("1000"), None), (), PB).flags == ()


@pytest.mark.parametrize(
    ("topics", "audience"),
    [
        (("implementation",), ("doi",)),
        (("marketing",), ("ms",)),
        (("implementation", "marketing"), ("doi", "ms")),
        (("product_support",), ("doi",)),
        ((), ("doi",)),
    ],
)
def test_internal_call_audience(topics, audience):
    assert route(account(100), topics, PB).internal_call_audience == audience


@pytest.mark.parametrize(
    ("raw", "amount", "unparseable"),
    [
        ("3,000.00", Decimal("3000.00"), False),
        (" $12,345.6 ", Decimal("12345.6"), False),
        ("3000", Decimal("3000"), False),
        (3000.5, Decimal("3000.5"), False),
        (None, None, False),
        ("  ", None, False),
        ("$4K", None, True),
        ("3.000,00", None, True),
        ("-5", None, True),
        (float("nan"), None, True),
        ("NaN", None, True),
        (True, None, True),
        ("1,00", None, True),
    ],
)
def test_parse_mrr(raw, amount, unparseable):
    assert parse_mrr(raw) == (amount, unparseable)


@given(st.decimals(min_value=0, max_value=100000, places=2), st.booleans())
def test_threshold_is_strictly_greater(mrr, has_tsm):
    r = route(account(mrr, TSM if has_tsm else None), (), PB)
    above = mrr > 3000
    assert r.lp_role == ("tsm" if above and has_tsm else "doi")
    assert ("tsm_missing" in r.flags) == (above and not has_tsm)
    assert r.tier == ("top" if mrr >= 10000 else "mid" if above else "lower")
