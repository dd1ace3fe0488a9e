"""Send-once email through the ledger: intent first, clear on SMTP failure, never resend an unconfirmed."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from closed_loop.ledger.models import Email
from closed_loop.pipeline import outbox


class FakeSender:
    def __init__(self, fail: int = 0):
        self.sent = []
        self.fail = fail

    def send_message(self, msg):
        if self.fail:
            self.fail -= 1
            raise ConnectionRefusedError("smtp down")
        self.sent.append(msg)


@pytest.fixture
def ledger(sqlite_ledger):
    return sqlite_ledger


def message(key="k1"):
    return outbox.build_message(key, ["lp@example.test"], "Subject", "text body", "<p>html</p>")


def test_sends_once_and_skips_reruns(ledger):
    sender = FakeSender()
    assert outbox.send_once(ledger, sender, "k1", message(), "lp_notice", "run") == "sent"
    assert outbox.send_once(ledger, sender, "k1", message(), "lp_notice", "run2") == "already_sent"
    assert len(sender.sent) == 1
    assert sender.sent[0][outbox.KEY_HEADER] == "k1"
    assert sender.sent[0].get_body(("html",)).get_content().strip() == "<p>html</p>"
    row = ledger.get_email("k1")
    assert row["status"] == "sent" and row["to"] == ["lp@example.test"] and row["run_id"] == "run"


def test_smtp_failure_clears_the_intent_so_a_retry_sends(ledger):
    sender = FakeSender(fail=1)
    assert outbox.send_once(ledger, sender, "k1", message(), "digest", "run") == "failed"
    assert ledger.get_email("k1") is None
    assert outbox.send_once(ledger, sender, "k1", message(), "digest", "run") == "sent"
    assert len(sender.sent) == 1


def test_intent_left_by_a_crash_is_never_resent_and_reported_once(ledger):
    sender = FakeSender()
    ledger.email_intent("crashed", "lp_notice", ["lp@example.test"], "S", "run")  # SMTP accepted, then crash
    again = outbox.send_once(ledger, sender, "crashed", message("crashed"), "lp_notice", "run")
    assert again == "unconfirmed"
    assert sender.sent == []
    assert outbox.unconfirmed_emails(ledger) == []  # too fresh: may be in flight elsewhere
    with ledger.session() as s:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        s.execute(update(Email).where(Email.email_key == "crashed").values(created_at=old))
    assert [u["email_key"] for u in outbox.unconfirmed_emails(ledger)] == ["crashed"]
    assert outbox.mark_unconfirmed(ledger, ["crashed"]) == 1
    assert outbox.unconfirmed_emails(ledger) == []
    again = outbox.send_once(ledger, sender, "crashed", message("crashed"), "lp_notice", "run")
    assert again == "unconfirmed"
    assert sender.sent == []


def test_dry_run_writes_nothing(ledger):
    sender = FakeSender()
    assert outbox.send_once(ledger, sender, "k1", message(), "digest", "run", dry_run=True) == "planned"
    assert ledger.get_email("k1") is None and sender.sent == []


def test_smtp_hook_sends_an_email_message_with_inline_image(stack):
    from email import policy
    from email.parser import BytesParser

    from closed_loop.hooks.mail import ClosedLoopSmtpHook

    msg = outbox.build_message("img", ["ops@example.test"], "Chart", "see chart", '<img src="cid:chart">')
    msg.get_body(("html",)).add_related(b"\x89PNG fake", maintype="image", subtype="png", cid="<chart>")
    with stack.connections():
        ClosedLoopSmtpHook().send_message(msg)
    [eml] = stack.emails()
    got = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
    assert got["From"] == "closed-loop@northwind.example" and got[outbox.KEY_HEADER] == "img"
    assert any(part.get("Content-ID") == "<chart>" for part in got.walk())
