"""Templates: HTML autoescaped (customer text is inert), text drafts plain, missing variables fail."""

from __future__ import annotations

from datetime import date

import pytest
from jinja2 import UndefinedError

from closed_loop.templating import environment, render

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_escalation_notice_escapes_customer_text():
    html = render(
        "escalation_notice.html",
        company="Northwind Billing",
        reason="overdue",
        owner_name="Dana",
        account_name="O'Brien & <Sons>",
        case_subject="Follow-up",
        case_url="https://example.my.salesforce.com/500X",
        response_url=None,
        owner_title="Director of Implementations",
        late_steps=[{"subject": "Acknowledge", "due_date": date(2025, 7, 8), "days_late": 2}],
        why=[f'Wrote: "{EVIL}"'],
        comments=[("Anything else?", EVIL)],
        mrr=None,
        lead="Tess Manager (Transition Success Manager)",
    )
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "O&#39;Brien &amp; &lt;Sons&gt;" in html
    assert "due 2025-07-08, 2 business day(s) late" in html and "Hello Dana," in html


def test_lp_overdue_notice_escapes_account_names():
    html = render(
        "lp_overdue_notice.html",
        company="Northwind Billing",
        lp_name="Tess",
        steps=[
            {
                "account_name": EVIL,
                "subject": "Acknowledge",
                "due_date": "2025-07-08",
                "case_url": "https://x/500",
                "overdue": True,
            }
        ],
    )
    assert "<script>" not in html and "overdue" in html


def test_text_drafts_are_not_escaped():
    text = render(
        "follow_up_email.txt",
        company="O'Brien & Sons",
        contact_first_name="Dana",
        sender_name="Tess Manager",
        sender_title="TSM",
    )
    assert "O'Brien & Sons" in text and "Hi Dana," in text


def test_missing_variables_fail_loudly():
    with pytest.raises(UndefinedError):
        render("follow_up_email.txt", company="Northwind Billing")


def test_strings_autoescape_by_default():
    assert environment().from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
