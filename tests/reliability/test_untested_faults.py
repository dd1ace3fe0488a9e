"""Faults nobody had tested (issue 19): a CR/LF account name, a lost SMTP reply after DATA, recipients the
mail server refuses. Each scenario runs the real sweep against the local stack and audits it."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import json
from email import policy

import pytest
from reliability_helpers import PB, SWEEP_DAY, assert_clean, audit, sweep_run, sweep_setup
from sqlalchemy import update

from closed_loop.ledger.models import Case
from closed_loop.pipeline import outbox

EVIL = "Evil\r\nBcc: attacker@evil.example\r\nX-Injected: 1"


class _Smtp:
    """aiosmtpd handler writing accepted messages into the stack's outbox (the audit reads it), with two
    faults: drop the connection after the data of the first ``lose_replies`` messages (the message was
    accepted, its 250 reply is lost), and refuse (550) recipients containing ``refuse``."""

    def __init__(self, stack, lose_replies: int = 0):
        from devtools.mail_sink import EmlWriter

        self.writer, self.lose, self.refused = EmlWriter(stack.outbox), lose_replies, []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if "refuse" in address:
            self.refused.append(address)
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        reply = await self.writer.handle_DATA(server, session, envelope)
        if self.lose > 0:
            self.lose -= 1
            server.transport.close()  # accepted and stored, but the client never hears the 250
        return reply


@contextlib.contextmanager
def mail_server(world, monkeypatch, **faults):
    from aiosmtpd.controller import Controller

    from devtools.mail_sink import _free_port

    handler = _Smtp(world.stack, **faults)
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port("127.0.0.1"))
    controller.start()
    try:
        conn = json.loads(world.stack.conn_env["AIRFLOW_CONN_SMTP_DEFAULT"])
        conn["port"] = controller.port
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(conn))
        world.fresh_hooks()
        yield handler
    finally:
        controller.stop()


def _messages(stack):
    return [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in stack.emails()]


def test_a_crlf_account_name_never_stops_the_days_notices(world, record):
    """Before: ``ValueError`` building the first Subject with the name aborted every notice of the day."""
    sweep_setup(world)
    with world.ledger.session() as s:  # every account's name carries a header injection
        s.execute(update(Case).values(account_name=EVIL))
    out = sweep_run(world)
    emails = out["progress"]["emails"]
    assert emails.get("sent", 0) >= 3 and set(emails) == {"sent"}, emails
    notices = [m for m in _messages(world.stack) if not m[outbox.KEY_HEADER].startswith("digest")]
    assert len(notices) == emails["sent"]
    subjects = [m["Subject"] for m in notices]
    assert any("Evil Bcc: attacker@evil.example X-Injected: 1" in s for s in subjects), subjects
    for message in notices:
        assert message["Bcc"] is None and message["X-Injected"] is None
        assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    sweep_run(world.fresh_hooks(), run_id="rerun")
    report = audit(world)
    assert_clean(report)
    record("Account Name with CR/LF in every notice Subject", "all notices sent, header single-line",
           sent=emails["sent"], injected_headers=0, **report["totals"])  # fmt: skip


def test_a_lost_250_reply_is_unconfirmed_never_resent(world, monkeypatch, record):
    """The server stored the first notice and the connection dropped before its 250 reply. Before: "failed",
    intent deleted, the retry sent it a second time."""
    sweep_setup(world)
    with mail_server(world, monkeypatch, lose_replies=1):
        first = sweep_run(world)
        assert first["progress"]["emails"].get("unconfirmed") == 1, first["progress"]["emails"]
        assert first["digest"]["unconfirmed"] == 1 and first["digest"]["outcome"] == "sent"
        sweep_run(world.fresh_hooks(), run_id="retry")
        sweep_run(world.fresh_hooks(), run_id="rerun")
    report = audit(world)
    assert_clean(report)  # the lost-reply email reached the sink once: no duplicate, not withheld
    [digest] = [m for m in _messages(world.stack) if m[outbox.KEY_HEADER] == f"digest:{SWEEP_DAY}"]
    assert "1 unconfirmed email(s)" in digest.get_body(("plain",)).get_content()
    assert outbox.unconfirmed_emails(world.ledger, older_than=dt.timedelta(0)) == []  # reported once
    record("SMTP reply lost after DATA (notice stored by the server)", "unconfirmed, not resent, in digest",
           **report["totals"])  # fmt: skip


def test_a_sweeps_notices_share_one_smtp_connection_and_each_is_sent_once(world, monkeypatch):
    """Before: one SMTP session (connect, EHLO, QUIT) per notice. Now the progress step opens one for all
    of them; every notice still reaches the server once, and a rerun sends none again."""
    import smtplib

    from closed_loop.pipeline import sweep

    sweep_setup(world)
    connects = []
    plain_connect = smtplib.SMTP.connect

    def counting_connect(self, *args, **kwargs):
        connects.append(args)
        return plain_connect(self, *args, **kwargs)

    monkeypatch.setattr(smtplib.SMTP, "connect", counting_connect)
    out = sweep.progress_and_escalate(world.sf, world.mail, world.ledger, PB, _cal(), SWEEP_DAY, run_id="run")
    emails = out["emails"]
    keys = [m[outbox.KEY_HEADER] for m in _messages(world.stack)]
    assert emails.get("sent", 0) >= 3 and set(emails) == {"sent"}, emails
    assert len(keys) == emails["sent"] and len(set(keys)) == len(keys)  # each notice once
    assert len(connects) == 1  # one connection for the batch, however many notices
    again = sweep.progress_and_escalate(
        world.fresh_hooks().sf, world.mail, world.ledger, PB, _cal(), SWEEP_DAY, run_id="rerun"
    )
    assert again["emails"].get("sent", 0) == 0 and len(world.stack.emails()) == len(keys)


def test_a_lost_reply_to_the_digest_is_not_resent(world, monkeypatch):
    sweep_setup(world)
    from closed_loop.pipeline import sweep

    sweep.progress_and_escalate(world.sf, world.mail, world.ledger, PB, _cal(), SWEEP_DAY, run_id="run")
    with mail_server(world, monkeypatch, lose_replies=1):
        first = sweep.ops_digest(world.mail, world.ledger, PB, SWEEP_DAY, run_id="run")
        again = sweep.ops_digest(world.fresh_hooks().mail, world.ledger, PB, SWEEP_DAY, run_id="retry")
    assert (first["outcome"], again["outcome"]) == ("unconfirmed", "unconfirmed")
    digests = [m for m in _messages(world.stack) if m[outbox.KEY_HEADER] == f"digest:{SWEEP_DAY}"]
    assert len(digests) == 1


def _cal():
    from reliability_helpers import CAL

    return CAL


def test_refused_recipients_are_recorded_and_reported(world, monkeypatch, record):
    """550 for one of two digest recipients: before, the digest was "sent" and nothing recorded it."""
    from closed_loop.pipeline import sweep
    from tests.unit.survey_builders import playbook_with

    sweep_setup(world)
    pb = playbook_with(people__ops_digest_emails=["ops@northwind-billing.example", "refuse-me@example.test"])
    sweep.progress_and_escalate(world.sf, world.mail, world.ledger, pb, _cal(), SWEEP_DAY, run_id="run")
    with mail_server(world, monkeypatch) as server:
        out = sweep.ops_digest(world.mail, world.ledger, pb, SWEEP_DAY, run_id="run")
        assert out["outcome"] == "sent"
        assert server.refused == ["refuse-me@example.test"]
        [row] = [q for q in world.ledger.unreported_quarantine() if q["source"] == "smtp"]
        assert row["record_id"] == f"digest:{SWEEP_DAY}"
        assert row["reason"].startswith("mail server refused a recipient of the digest email: 550")
        assert row["payload"]["recipient"] == "refuse-me@example.test"
        nxt = SWEEP_DAY + dt.timedelta(days=1)
        later = sweep.ops_digest(world.fresh_hooks().mail, world.ledger, pb, nxt, run_id="next")
    assert later["outcome"] == "sent" and later["quarantined"] >= 1
    [report_mail] = [m for m in _messages(world.stack) if m[outbox.KEY_HEADER] == f"digest:{nxt}"]
    assert "mail server refused a recipient" in report_mail.get_body(("plain",)).get_content()
    record("mail server refuses 1 of 2 digest recipients (550)", "sent to the other, refusal quarantined "
           "and in the next digest", refused=1)  # fmt: skip


def test_every_recipient_refused_is_refused_not_retried_forever(world, monkeypatch):
    """All recipients 550: nothing was sent; "refused" (no task failure, no retry loop), each recorded."""
    sweep_setup(world)
    with mail_server(world, monkeypatch):
        message = outbox.build_message("report:2026-Q3", ["refuse-a@x.test", "refuse-b@x.test"], "Q3", "t")
        got = outbox.send_once(world.ledger, world.mail, "report:2026-Q3", message, "quarterly_report", "r")
    assert got == "refused"
    rows = [q for q in world.ledger.unreported_quarantine() if q["source"] == "smtp"]
    assert sorted(q["payload"]["recipient"] for q in rows) == ["refuse-a@x.test", "refuse-b@x.test"]
    assert world.ledger.get_email("report:2026-Q3") is None and world.stack.emails() == []


@pytest.mark.parametrize("subject", ["Acme\r\nBcc: x@evil.example", "Acme\nX: y", "Acme\x00\x1b[31m"])
def test_header_values_are_single_line(subject):
    message = outbox.build_message("k\r\n1", ["lp@example.test\r\nBcc: x@evil.example"], subject, "body")
    for name in ("Subject", "To", outbox.KEY_HEADER):
        assert not any(c in str(message[name]) for c in "\r\n\x00\x1b"), (name, message[name])
    assert message["Bcc"] is None


def test_one_message_that_cannot_be_built_is_quarantined_and_the_rest_sent(world, monkeypatch):
    from closed_loop.pipeline import sweep

    sweep_setup(world)
    real = sweep.notices.render

    def render(name, **ctx):
        if name.startswith("escalation_notice"):
            raise ValueError("template broke")
        return real(name, **ctx)

    monkeypatch.setattr(sweep.notices, "render", render)
    out = sweep.progress_and_escalate(world.sf, world.mail, world.ledger, PB, _cal(), SWEEP_DAY, run_id="r")
    emails = out["emails"]
    assert emails["quarantined"] >= 1 and emails["sent"] >= 1, emails
    bad = [q for q in world.ledger.unreported_quarantine() if q["q_key"].startswith("sla_sweep:bad_email:")]
    assert len(bad) == emails["quarantined"]
    assert bad[0]["reason"] == "the escalation email could not be built: ValueError: template broke"


def _close_day(world):
    """The sweep of SWEEP_DAY closed the documented cases in the ledger (and sent their pulses)."""
    sweep_setup(world)
    sweep_run(world)
    closed = [c for c in world.ledger.read_frame("cases").to_dict("records") if c["status"] == "closed"]
    assert closed, "the scenario closes documented cases"
    return closed


def _next_sweep(world, day):
    from closed_loop.pipeline import sweep

    world.clock(day, hour=11)
    back = sweep.read_back(world.sf, world.ledger, PB, _cal(), day)
    out = sweep.progress_and_escalate(world.sf, world.mail, world.ledger, PB, _cal(), day, run_id=f"r{day}")
    return back, out


def test_a_reopened_case_is_escalated_as_still_dissatisfied(world, record):
    """SOP 6.1: the customer called back; the LP set the closed Case to "Still Dissatisfied". Before: the
    ledger had closed it, read_back and the plan skipped it, nobody was escalated."""
    reopened = _close_day(world)[0]
    world.sf.update_records("Case", [{"Id": reopened["sf_case_id"], "Status": "Still Dissatisfied"}])
    day = SWEEP_DAY + dt.timedelta(days=3)
    back, out = _next_sweep(world, day)
    assert back["cases_reopened"] == 1 and out["dissatisfied_start"] == 1
    case = world.ledger.get_case(reopened["case_key"])
    assert (case["status"], case["dissatisfied"], case["sf_closed"]) == ("open", True, False)
    [event] = [e for e in world.ledger.sla_events()
               if e["case_key"] == reopened["case_key"] and e["occurred_on"] == day
               and (e["details"] or {}).get("reason") == "dissatisfied"]  # fmt: skip
    assert event["sf_task_id"], "the escalation Task was created"
    tasks = {t["Id"]: t for t in world.admin("GET", "records/Task")}
    users = {u["Id"]: u["Username"] for u in world.admin("GET", "records/User")}
    assert users[tasks[event["sf_task_id"]]["OwnerId"]] == PB.username(PB.sla.escalation_owners.dissatisfied)
    assert world.ledger.get_email(event["event_key"])["status"] == "sent"  # the owner was told
    again_back, again = _next_sweep(world.fresh_hooks(), day)  # a rerun: nothing twice
    assert again["dissatisfied_start"] == 0 and again_back["cases_reopened"] == 0
    assert_clean(audit(world))
    record("closed Case set to Still Dissatisfied in Salesforce 3 days later", "reopened, escalated to "
           "management with a Task and a notice", reopened=1, escalations=1)  # fmt: skip


def test_a_reopen_after_the_look_back_window_is_left_alone(world):
    closed = _close_day(world)
    world.sf.update_records("Case", [{"Id": closed[0]["sf_case_id"], "Status": "Working"}])
    day = SWEEP_DAY + dt.timedelta(days=PB.sla.reopen_lookback_days + 5)  # beyond the look-back window
    back, _ = _next_sweep(world, day)
    assert back["cases_reopened"] == 0  # too old to watch: left alone
    assert world.ledger.get_case(closed[0]["case_key"])["status"] == "closed"


def test_a_task_completed_after_its_case_closed_is_read_back(world):
    """Issue 17 item 6: read_back read only open cases, so a step completed after the close stayed open."""
    closed = _close_day(world)
    steps = [s for s in world.ledger.read_frame("case_steps").to_dict("records")
             if s["case_key"] in {c["case_key"] for c in closed} and s["status"] != "completed"
             and s["sf_task_id"]]  # fmt: skip
    assert steps, "the closed cases have steps still open in the ledger"
    world.sf.update_records("Task", [{"Id": steps[0]["sf_task_id"], "Status": "Completed"}])
    _next_sweep(world, SWEEP_DAY + dt.timedelta(days=1))
    [row] = [s for s in world.ledger.read_frame("case_steps").to_dict("records")
             if s["step_key"] == steps[0]["step_key"]]  # fmt: skip
    assert row["status"] == "completed" and row["sf_status"] == "Completed"
    assert world.ledger.get_case(steps[0]["case_key"])["status"] == "closed"  # still closed: not a reopen


# -- issue 19 item 2: notices owed until sent or expired ---------------------------------------------


class _NoticesDown:
    """A mail hook whose server is down for notices (connection refused) and up for the digest."""

    def __init__(self, mail):
        self.mail = mail

    def send_message(self, msg):
        if not msg[outbox.KEY_HEADER].startswith("digest:"):
            raise ConnectionRefusedError("mail server down")
        return self.mail.send_message(msg)


def _notice_events(world, day):
    from closed_loop.pipeline import sweep

    events = [
        e for e in world.ledger.sla_events() if e["occurred_on"] == day and e["kind"] in sweep.NOTICE_KINDS
    ]
    cases = {c: world.ledger.get_case(c) for c in {e["case_key"] for e in events}}
    return events, cases


def test_smtp_down_for_a_whole_sweep_then_healthy_sends_every_owed_notice(world, monkeypatch, record):
    """Before: the failed sends deleted their intents, the next day sent only its own notices and its
    digest said nothing about the day before: the day's notices were lost for good."""
    from closed_loop.pipeline import sweep
    from devtools.mail_sink import _free_port

    sweep_setup(world)
    up = world.stack.conn_env["AIRFLOW_CONN_SMTP_DEFAULT"]
    down = json.loads(up) | {"port": _free_port("127.0.0.1")}  # nothing listens there
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(down))
    world.fresh_hooks()
    with pytest.raises(RuntimeError, match="not accepted"):
        sweep.progress_and_escalate(world.sf, world.mail, world.ledger, PB, _cal(), SWEEP_DAY, run_id="down")
    with pytest.raises(RuntimeError, match="not accepted"):
        sweep.ops_digest(world.mail, world.ledger, PB, SWEEP_DAY, run_id="down")
    assert world.stack.emails() == []
    events, cases = _notice_events(world, SWEEP_DAY)
    assert len(events) >= 5

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", up)  # the next day the server is back
    day = SWEEP_DAY + dt.timedelta(days=1)
    back, out = _next_sweep(world.fresh_hooks(), day)
    digest = sweep.ops_digest(world.mail, world.ledger, PB, day, run_id="up")
    for e in events:  # every notice of the down day went out today (its own key, or inside today's)
        own = world.ledger.get_email(sweep._notice_key(e, cases, SWEEP_DAY))
        assert own and own["status"] in ("sent", "carried"), e["event_key"]
    breaches = sum(1 for e in events if (e["details"] or {}).get("reason") == "overdue")
    assert digest["outcome"] == "sent" and digest["breaches"] >= breaches > 0  # yesterday's, reported
    assert world.ledger.get_email(f"digest:{SWEEP_DAY}")["status"] == "carried"
    _next_sweep(world.fresh_hooks(), day)  # a rerun sends nothing twice
    sweep.ops_digest(world.fresh_hooks().mail, world.ledger, PB, day, run_id="rerun")
    report = audit(world)
    assert_clean(report)
    record(
        "SMTP down for a whole sweep, healthy the next day",
        "every owed notice sent the next day, the digest carries the missed day",
        owed=len(events),
        **report["totals"],
    )


def test_owed_notices_are_listed_in_the_digest_and_expire(world, record):
    from closed_loop.pipeline import sweep

    sweep_setup(world)
    flaky = _NoticesDown(world.mail)
    with pytest.raises(RuntimeError):
        sweep.progress_and_escalate(world.sf, flaky, world.ledger, PB, _cal(), SWEEP_DAY, run_id="r")
    events, _ = _notice_events(world, SWEEP_DAY)
    digest = sweep.ops_digest(flaky, world.ledger, PB, SWEEP_DAY, run_id="r")
    assert digest["outcome"] == "sent" and digest["owed"] == len(events) > 0
    [mail] = [m for m in _messages(world.stack) if m[outbox.KEY_HEADER] == f"digest:{SWEEP_DAY}"]
    expires = SWEEP_DAY + dt.timedelta(days=PB.sla.notice_expiry_days)
    text = mail.get_body(("plain",)).get_content()
    assert f"{len(events)} notice(s) owed" in text and f"until {expires}" in text
    late = expires + dt.timedelta(days=1)  # the server comes back after the expiry: nothing old is sent
    world.clock(late, hour=11)
    sweep.read_back(world.sf, world.ledger, PB, _cal(), late)
    out = sweep.progress_and_escalate(world.sf, world.mail, world.ledger, PB, _cal(), late, run_id="late")
    old = {sweep._notice_key(e, _notice_events(world, SWEEP_DAY)[1], SWEEP_DAY) for e in events}
    assert all(world.ledger.get_email(k) is None for k in old), "expired notices are not sent"
    assert sweep._owed_notices(world.ledger, PB, late) == [] or all(
        o["since"] != SWEEP_DAY.isoformat() for o in sweep._owed_notices(world.ledger, PB, late)
    )
    assert out["emails"].get("failed", 0) == 0
    record(
        "notices failing while the digest goes out",
        "listed as owed with their expiry; not sent after it",
        owed=len(events),
    )
