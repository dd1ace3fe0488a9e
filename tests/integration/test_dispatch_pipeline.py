"""survey_dispatch pipeline on the sandbox: exactly-once invites, one reminder, crash safety, API calls."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from closed_loop.pipeline import dispatch

START = dt.date(2026, 7, 1)  # the sandbox's default start clock


@dataclass
class Env:
    stack: object
    sf: object
    sm: object
    playbook: object

    @property
    def ledger(self):
        return self.stack.ledger

    def admin(self, method, path, body=None):
        return self.stack.sandbox.admin(method, path, body)

    def move_clock(self, day: dt.date) -> None:
        target = f"{day.isoformat()}T14:00:00Z"
        if self.admin("GET", "clock")["now"] < target:
            self.admin("POST", "clock", {"now": target})

    def run_day(self, day: dt.date, reminders: bool = True) -> dict:
        self.move_clock(day)
        out = {"sync": dispatch.sync_go_lives(self.sf, self.ledger, self.playbook, day)}
        out["invites"] = dispatch.send_invites(self.sm, self.ledger, self.playbook, day, run_id=f"run-{day}")
        if reminders:
            out["reminders"] = dispatch.send_reminders(
                self.sm, self.sf, self.ledger, self.playbook, day, run_id=f"run-{day}"
            )
        return out


@pytest.fixture
def env(stack):
    from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
    from closed_loop.playbook import load_playbook

    with stack.connections():
        yield Env(stack, ClosedLoopSalesforceHook(), SurveyMonkeyHook(), load_playbook())


def messages(env, kind: str) -> list[dict]:
    return [m for m in env.admin("GET", "messages") if m["type"] == kind and m["status"] == "sent"]


def invited(env) -> Counter:
    return Counter(r["email"].lower() for m in messages(env, "invite") for r in m["recipients"])


def post_calls(env) -> dict:
    """Writes by endpoint; a Composite call counts by its subrequests (queries travel in it too)."""
    counters = env.admin("GET", "counters")
    out = {
        k: v
        for s in ("sm", "sf")
        for k, v in counters[s]["endpoints"].items()
        if not k.startswith("GET") and k != "POST composite"
    }
    subs = counters["sf"].get("subrequests", {})
    return out | {f"composite: {k}": v for k, v in subs.items() if not k.startswith("GET")}


def due_contacts(env, first_due: dt.date, last_due: dt.date) -> dict[str, dict]:
    """Ground truth: flagged, reachable contacts whose account's survey falls due in the period."""
    accounts = {a["Id"]: a for a in env.admin("GET", "records/Account")}
    state = env.admin("GET", "state")
    blocked = {e.lower() for e in state["sm"]["opted_out"] + state["sm"]["bounced"]}
    out = {}
    for c in env.admin("GET", "records/Contact"):
        account = accounts.get(c["AccountId"]) or {}
        go_live = account.get("Go_Live_Date__c")
        if (
            not (go_live and c["Implementations_Project_Manager__c"] and c["Email"])
            or c["HasOptedOutOfEmail"]
        ):
            continue
        due = dt.date.fromisoformat(go_live) + dt.timedelta(days=14)
        if first_due <= due <= last_due and c["Email"].lower() not in blocked:
            out[c["Email"].lower()] = c
    return out


def sends(env, **where) -> list[dict]:
    rows = env.ledger.sends_for_contacts([c["Id"] for c in env.admin("GET", "records/Contact")])
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


# -- the simulated month -------------------------------------------------------------------------------


def test_simulated_month_exactly_one_invite_one_reminder_and_reruns_send_nothing(env):
    days = [START + dt.timedelta(days=i) for i in range(30)]
    sm_calls, sf_calls = [], []
    for day in days:
        sf_before = env.sf.calls_made
        out = env.run_day(day)
        sf_calls.append(out["sync"]["accounts"] and env.sf.calls_made - sf_before - _lp_calls(out))
        sm_calls.append((out["invites"]["sent"] + out["invites"]["rejected"], out["invites"]["api_calls"]))
        assert max(invited(env).values(), default=0) == 1, f"{day}: someone got two invites"

    # each due contact exactly one invite (catch-up: due up to 30 days before the first run)
    expected = due_contacts(env, START - dt.timedelta(days=30), days[-1])
    assert expected and invited(env) == Counter(dict.fromkeys(expected, 1))
    # reminders: once per batch, only to that batch's non-responders, nobody twice
    invites = messages(env, "invite")
    reminder_msgs = messages(env, "reminder")
    assert reminder_msgs
    by_collector = Counter(m["collector_id"] for m in reminder_msgs)
    assert max(by_collector.values()) == 1
    reminded = Counter(r["id"] for m in reminder_msgs for r in m["recipients"])
    assert max(reminded.values()) == 1
    invite_recipients = {r["id"]: m["collector_id"] for m in invites for r in m["recipients"]}
    for m in reminder_msgs:
        assert {r["id"] for r in m["recipients"]} <= {
            rid for rid, c in invite_recipients.items() if c == m["collector_id"]
        }
    # every batch old enough got its reminder unless everybody had answered
    for m in invites:
        sent_on = dt.date.fromisoformat(m["date_sent"][:10])
        if sent_on <= days[-1] - dt.timedelta(days=5):
            assert by_collector[m["collector_id"]] == 1 or env.ledger.get_watermark(
                dispatch._NO_REMINDER + m["collector_id"]
            )
    ledger_reminded = [r for r in sends(env, status="sent") if r["reminder_sent_at"]]
    assert {r["recipient_id"] for r in ledger_reminded} == set(reminded)
    assert all(r["lp_reminder_task_id"] for r in ledger_reminded)
    tasks = [
        t
        for t in env.admin("GET", "records/Task")
        if (t.get("Closed_Loop_Key__c") or "").startswith("survey-")
    ]
    assert len(tasks) == len(ledger_reminded) == len({t["Closed_Loop_Key__c"] for t in tasks})

    # API calls: Salesforce one page per object per day, both in one Composite call (5 query operations
    # per call, REST API Developer Guide); SurveyMonkey the minimum per batch
    assert all(n == 1 for n in sf_calls if n), sf_calls
    batches = [(n, calls) for n, calls in sm_calls if n]
    # per batch: the survey's collectors (checked against the ledger, issue 19 item 7), collector, message,
    # bulk adds, send; the first batch also finds the survey by title
    assert batches[0][1] == 1 + 4 + math.ceil(batches[0][0] / dispatch.BULK_CHUNK)
    assert all(calls == 4 + math.ceil(n / dispatch.BULK_CHUNK) for n, calls in batches[1:]), batches
    assert all(calls == 0 for n, calls in sm_calls if not n)

    # reruns of past days and of the last day: nothing new goes out
    before_msgs, before_posts = env.admin("GET", "messages"), post_calls(env)
    for day in (days[0], days[9], days[20], days[-1]):
        out = env.run_day(day)
        assert out["invites"]["sent"] == 0 and out["reminders"]["reminded"] == 0
    assert env.admin("GET", "messages") == before_msgs
    assert post_calls(env) == before_posts


def _lp_calls(out) -> int:
    reminders = out.get("reminders") or {}
    return (reminders.get("api_calls") or {}).get("salesforce", 0)


# -- crash safety --------------------------------------------------------------------------------------


def test_crash_after_recipients_added_then_rerun_sends_once(env, monkeypatch):
    env.move_clock(START)
    dispatch.sync_go_lives(env.sf, env.ledger, env.playbook, START)

    def boom(*args, **kwargs):
        raise RuntimeError("crash between 'recipients added' and 'ledger recorded'")

    monkeypatch.setattr(env.ledger, "record_recipients", boom)
    with pytest.raises(RuntimeError, match="crash"):
        dispatch.send_invites(env.sm, env.ledger, env.playbook, START, run_id="first")
    [pending] = [m for m in env.admin("GET", "messages") if m["type"] == "invite"]
    assert pending["status"] == "not_sent" and pending["recipients"]
    assert len(env.ledger.pending_intents()) == len(pending["recipients"])
    monkeypatch.undo()

    calls = env.sm.calls_made
    out = dispatch.send_invites(env.sm, env.ledger, env.playbook, START, run_id="retry")
    assert out["reconciled"] == len(pending["recipients"]) and out["sent"] == 0
    assert env.sm.calls_made - calls == 3  # GET message, list recipients, send
    [sent] = messages(env, "invite")
    assert sent["id"] == pending["id"] and max(invited(env).values()) == 1
    assert not env.ledger.pending_intents()
    assert {r["recipient_id"] for r in sends(env, status="sent")} == {r["id"] for r in sent["recipients"]}
    # and once more: nothing
    assert dispatch.send_invites(env.sm, env.ledger, env.playbook, START, run_id="again")["api_calls"] == 0


def test_crash_after_send_before_ledger_then_rerun_only_reconciles(env, monkeypatch):
    env.move_clock(START)
    dispatch.sync_go_lives(env.sf, env.ledger, env.playbook, START)
    real = env.ledger.mark_sent

    def crash_on_sent(results):
        results = list(results)
        if any(r.get("status") == "sent" for r in results):
            raise RuntimeError("crash after send")
        return real(results)

    monkeypatch.setattr(env.ledger, "mark_sent", crash_on_sent)
    with pytest.raises(RuntimeError):
        dispatch.send_invites(env.sm, env.ledger, env.playbook, START, run_id="first")
    monkeypatch.undo()
    assert len(messages(env, "invite")) == 1
    out = dispatch.send_invites(env.sm, env.ledger, env.playbook, START, run_id="retry")
    assert out["reconciled"] > 0 and out["sent"] == 0
    assert len(messages(env, "invite")) == 1 and max(invited(env).values()) == 1
    assert not env.ledger.pending_intents()


def test_reminder_crash_after_claim_is_reconciled_without_a_second_reminder(env, monkeypatch):
    env.run_day(START)
    day = START + dt.timedelta(days=5)
    env.move_clock(day)
    real_send = env.sm.send_message
    monkeypatch.setattr(env.sm, "send_message", lambda *a, **k: (_ for _ in ()).throw(TimeoutError("lost")))
    with pytest.raises(TimeoutError):
        dispatch.send_reminders(env.sm, None, env.ledger, env.playbook, day, run_id="first")
    monkeypatch.setattr(env.sm, "send_message", real_send)
    assert env.ledger.pending_reminders()
    out = dispatch.send_reminders(env.sm, None, env.ledger, env.playbook, day, run_id="retry")
    assert out["reconciled"] > 0 and out["batches"] == 0
    assert len(messages(env, "reminder")) == 1 and not env.ledger.pending_reminders()
    dispatch.send_reminders(env.sm, None, env.ledger, env.playbook, day, run_id="rerun")
    assert len(messages(env, "reminder")) == 1


def test_no_reminder_for_invites_older_than_the_reminder_window(env):
    env.run_day(START)
    late = START + dt.timedelta(days=env.playbook.dispatch.reminder_window_days + 1)
    env.move_clock(late)
    out = dispatch.send_reminders(env.sm, None, env.ledger, env.playbook, late, run_id="late")
    assert out["batches"] == 0 and out["reminded"] == 0
    assert messages(env, "reminder") == []


# -- planning rules against the sandbox ----------------------------------------------------------------


def _make_due(env, day: dt.date, count: int = 1) -> list[dict]:
    """Move the go-live of ``count`` accounts (outside the catch-up horizon, each with a reachable flagged
    contact) so that their survey falls due on ``day``."""
    state = env.admin("GET", "state")
    blocked = {e.lower() for e in state["sm"]["opted_out"] + state["sm"]["bounced"]}
    old = START - dt.timedelta(days=14 + 30 + 5)  # due long before the catch-up window
    chosen = []
    for account in env.admin("GET", "records/Account"):
        reachable = [
            c for c in _flagged_contacts(env, account["Id"])
            if c["Email"] and not c["HasOptedOutOfEmail"] and c["Email"].lower() not in blocked
        ]  # fmt: skip
        if reachable and dt.date.fromisoformat(account["Go_Live_Date__c"]) < old:
            go_live = (day - dt.timedelta(days=14)).isoformat()
            env.sf.get_conn().Account.update(account["Id"], {"Go_Live_Date__c": go_live})
            chosen.append(account | {"Go_Live_Date__c": go_live})
            if len(chosen) == count:
                return chosen
    raise AssertionError("not enough accounts in the seed")


def _flagged_contacts(env, account_id: str) -> list[dict]:
    return [
        c
        for c in env.admin("GET", "records/Contact")
        if c["AccountId"] == account_id and c["Implementations_Project_Manager__c"]
    ]


def test_moved_go_live_moves_the_send_and_after_the_send_nothing_is_resent(env):
    sfc = env.sf.get_conn()
    [account] = _make_due(env, START)
    contact = _flagged_contacts(env, account["Id"])[0]
    new_go_live = START - dt.timedelta(days=14) + dt.timedelta(days=3)
    sfc.Account.update(account["Id"], {"Go_Live_Date__c": new_go_live.isoformat()})
    for i in range(4):
        env.run_day(START + dt.timedelta(days=i), reminders=False)
        got = invited(env)[contact["Email"].lower()]
        assert got == (1 if i == 3 else 0), f"day {i}"
    [row] = sends(env, contact_id=contact["Id"])
    assert row["due_date"] == START + dt.timedelta(days=3) and row["status"] == "sent"
    # moved again after the survey went out: nothing re-sent
    sfc.Account.update(account["Id"], {"Go_Live_Date__c": (new_go_live + dt.timedelta(days=2)).isoformat()})
    for i in range(4, 7):
        env.run_day(START + dt.timedelta(days=i), reminders=False)
    assert invited(env)[contact["Email"].lower()] == 1
    skipped = sends(env, contact_id=contact["Id"], status="skipped")
    assert len(skipped) == 1 and "go-live moved after the send" in skipped[0]["reason"]


def test_opt_outs_and_bounces_are_recorded_with_reasons(env):
    sfc = env.sf.get_conn()
    accounts = _make_due(env, START, count=2)
    opted, bouncing = (_flagged_contacts(env, a["Id"])[0] for a in accounts)
    bounced_email = env.admin("GET", "state")["sm"]["bounced"][0]
    sfc.Contact.update(opted["Id"], {"HasOptedOutOfEmail": True})
    sfc.Contact.update(bouncing["Id"], {"Email": bounced_email})
    env.run_day(START, reminders=False)
    [o] = sends(env, contact_id=opted["Id"])
    assert o["status"] == "skipped" and o["reason"] == "opted out of email in Salesforce"
    [b] = sends(env, contact_id=bouncing["Id"])
    assert b["status"] == "bounced"
    assert opted["Email"].lower() not in invited(env) and bounced_email.lower() not in invited(env)


def test_a_contact_who_opts_out_after_the_invite_gets_no_reminder_and_ops_are_told(env):
    rules = env.playbook.dispatch
    env.run_day(START, reminders=False)
    remind_day = START + dt.timedelta(days=rules.reminder_delay_days)
    env.move_clock(remind_day)
    state = env.admin("GET", "state")
    waiting = [r for r in state["sm"]["recipients"].values()
               if r.get("date_sent") and r["survey_response_status"] == "not_responded"]  # fmt: skip
    assert len(waiting) >= 2, "seed 7 has non-responders in the first batch"
    by_email = {c["Email"].lower(): c for c in env.admin("GET", "records/Contact") if c["Email"]}
    leaver = by_email[waiting[0]["email"].lower()]
    env.sf.get_conn().Contact.update(leaver["Id"], {"HasOptedOutOfEmail": True})  # after the invite

    out = env.run_day(remind_day)

    reminded = {r["email"].lower() for m in messages(env, "reminder") for r in m["recipients"]}
    assert leaver["Email"].lower() not in reminded, "no email after an opt-out (CAN-SPAM, SOP)"
    assert out["reminders"]["withheld"] == len(waiting)
    [item] = [q for q in env.ledger.unreported_quarantine() if "reminder_withheld" in q["q_key"]]
    assert "opted out of email in Salesforce after the invite" in item["reason"]
    assert item["payload"]["opted_out"] == [s["send_key"] for s in sends(env, contact_id=leaver["Id"])]
    env.run_day(remind_day + dt.timedelta(days=1))  # decided once: not retried, nobody reminded later
    assert leaver["Email"].lower() not in {r["email"].lower() for m in messages(env, "reminder")
                                            for r in m["recipients"]}  # fmt: skip


def test_the_same_person_on_two_accounts_with_the_same_go_live_is_surveyed_for_each(env):
    sfc = env.sf.get_conn()
    [first] = _make_due(env, START)
    person = _flagged_contacts(env, first["Id"])[0]
    old = START - dt.timedelta(days=60)
    other = next(a for a in env.admin("GET", "records/Account")
                 if a["Id"] != first["Id"] and dt.date.fromisoformat(a["Go_Live_Date__c"]) < old)  # fmt: skip
    sfc.Account.update(other["Id"], {"Go_Live_Date__c": first["Go_Live_Date__c"]})
    twin = sfc.Contact.create({"AccountId": other["Id"], "FirstName": person["FirstName"],
                               "LastName": person["LastName"], "Email": person["Email"],
                               "Implementations_Project_Manager__c": True})["id"]  # fmt: skip
    env.run_day(START, reminders=False)
    env.run_day(START + dt.timedelta(days=1), reminders=False)
    email = person["Email"].lower()
    assert invited(env)[email] == 2, "one survey per account (SOP: each flagged contact)"
    rows = sends(env, contact_id=person["Id"]) + sends(env, contact_id=twin)
    assert {r["account_id"] for r in rows} == {first["Id"], other["Id"]}
    assert all(r["status"] == "sent" for r in rows), [(r["status"], r["reason"]) for r in rows]
    assert len({r["collector_id"] for r in rows}) == 2, "a collector holds an address once"


def test_invites_write_nothing_into_the_address_book_and_carry_the_documented_tags(env):
    """Issue 13 items 1 and 3: bulk recipients with custom_fields overwrite (clear) the SurveyMonkey
    contacts' custom fields; invites must carry the four merge tags SurveyMonkey requires."""
    accounts = _make_due(env, START, count=2)
    env.run_day(START, reminders=False)
    sent = messages(env, "invite")
    recipients = [r for m in sent for r in m["recipients"]]
    assert recipients and all(r["custom_fields"] == {} for r in recipients)
    for tag in ("[SurveyLink]", "[OptOutLink]", "[PrivacyLink]", "[FooterLink]"):
        assert all(tag in m["body_html"] for m in sent)
    # the ledger joins responses by the recipient ids SurveyMonkey returned
    by_account = {s["account_id"]: s for a in accounts for s in sends(env, account_id=a["Id"])}
    assert {s["recipient_id"] for s in by_account.values()} <= {r["id"] for r in recipients}
    assert all(s["recipient_id"] for s in by_account.values())


def test_open_follow_up_case_holds_the_survey_until_closed(env):
    [account] = _make_due(env, START)
    env.ledger.upsert_case({"case_key": "resp-1", "account_id": account["Id"], "status": "open"})
    out = env.run_day(START, reminders=False)
    assert out["invites"]["held"] >= 1
    held = [r for r in sends(env) if r["account_id"] == account["Id"]]
    assert held and all(r["status"] == "planned" and "open follow-up case" in r["reason"] for r in held)
    with env.ledger.session() as s:
        from sqlalchemy import update

        from closed_loop.ledger.models import Case

        s.execute(update(Case).values(status="closed"))
    env.run_day(START + dt.timedelta(days=1), reminders=False)
    assert all(r["status"] == "sent" for r in sends(env) if r["account_id"] == account["Id"])


def test_budget_guard_carries_the_batch_over(env):
    from closed_loop.hooks import SurveyMonkeyHook

    env.admin("POST", "config", {"sm_day_limit": 12})
    env.admin("POST", "rate-limits/reset")
    out = env.run_day(START, reminders=False)
    assert out["invites"]["carried_over"] > 0 and out["invites"]["sent"] == 0
    assert not messages(env, "invite") and not env.ledger.pending_intents()
    env.admin("POST", "config", {"sm_day_limit": 500})
    env.sm = SurveyMonkeyHook()  # each task run builds its hook (and learns the budget) afresh
    out = env.run_day(START + dt.timedelta(days=1), reminders=False)
    assert out["invites"]["sent"] > 0 and max(invited(env).values()) == 1


def test_dry_run_writes_nothing(env):
    env.move_clock(START)
    assert dispatch.sync_go_lives(env.sf, env.ledger, env.playbook, START, dry_run=True)["accounts"] > 0
    assert env.ledger.get_watermark(dispatch.ACCOUNT_WATERMARK) is None
    dispatch.sync_go_lives(env.sf, env.ledger, env.playbook, START)
    out = dispatch.send_invites(env.sm, env.ledger, env.playbook, START, run_id="dry", dry_run=True)
    assert out["due"] > 0 and out["sent"] == 0 and out["api_calls"] == 0
    assert not sends(env) and not env.admin("GET", "messages")


def test_hostile_values_are_escaped_in_soql(env):
    """The hostile account syncs intact, and a hostile username in the User lookup is escaped (an
    unescaped quote would be a MALFORMED_QUERY); the Task falls back to the DOI."""
    hostile = next(a for a in env.admin("GET", "records/Account") if a["Name"].startswith("O'Brien"))
    env.sf.get_conn().Account.update(
        hostile["Id"], {"Go_Live_Date__c": (START - dt.timedelta(days=14)).isoformat()}
    )
    env.run_day(START, reminders=False)
    assert env.ledger.get_account(hostile["Id"])["name"] == hostile["Name"]
    key = next(r["send_key"] for r in sends(env, status="sent") if r["account_id"] == hostile["Id"])
    with env.ledger.session() as s:
        from sqlalchemy import update

        from closed_loop.ledger.models import Account, SurveySend

        s.execute(update(Account).where(Account.sf_id == hostile["Id"])
                  .values(tsm_username="o'brien\\\" OR Username != '@x.example", mrr=9000))  # fmt: skip
        s.execute(update(SurveySend).where(SurveySend.send_key == key)
                  .values(reminder_key="r", reminder_sent_at=dt.datetime.now(dt.UTC)))  # fmt: skip
    assert dispatch.create_lp_reminder_tasks(env.sf, env.ledger, env.playbook, START) == 1
    [task] = [
        t for t in env.admin("GET", "records/Task") if t.get("Closed_Loop_Key__c") == f"survey-reminder:{key}"
    ]
    assert task["Subject"] == f"Remind {hostile['Name']} to complete the post-implementation survey"
    users = {u["Id"]: u["Username"] for u in env.admin("GET", "records/User")}
    assert users[task["OwnerId"]] == "doi@closedloop.example"


def test_the_lp_reminder_task_carries_the_survey_link(env):
    """Issue 17: the SOP asks to remind the biller and gives the survey's link; the Task carries it."""
    env.run_day(START, reminders=False)
    key = sends(env, status="sent")[0]["send_key"]
    with env.ledger.session() as s:
        from sqlalchemy import update

        from closed_loop.ledger.models import SurveySend

        s.execute(update(SurveySend).where(SurveySend.send_key == key)
                  .values(reminder_key="r", reminder_sent_at=dt.datetime.now(dt.UTC)))  # fmt: skip
    assert dispatch.create_lp_reminder_tasks(env.sf, env.ledger, env.playbook, START) == 1
    [task] = [
        t for t in env.admin("GET", "records/Task") if t.get("Closed_Loop_Key__c") == f"survey-reminder:{key}"
    ]
    # the SOP's Background: "The survey can be found here: https://www.surveymonkey.com/r/..."
    assert "https://www.surveymonkey.com/r/Post_Implementation_Feedback" in task["Description"]


def test_a_replayed_lp_reminder_task_keeps_what_the_lp_did(env):
    """Issue 19 item 7: after a ledger restore the LP reminder Task is found by its key, not duplicated,
    and the LP's Status (completed) and the Owner they reassigned it to stay as they are."""
    env.run_day(START, reminders=False)
    key = sends(env, status="sent")[0]["send_key"]
    with env.ledger.session() as s:
        from sqlalchemy import update

        from closed_loop.ledger.models import SurveySend

        s.execute(update(SurveySend).where(SurveySend.send_key == key)
                  .values(reminder_key="r", reminder_sent_at=dt.datetime.now(dt.UTC)))  # fmt: skip
    assert dispatch.create_lp_reminder_tasks(env.sf, env.ledger, env.playbook, START) == 1
    task_key = f"survey-reminder:{key}"
    [task] = [t for t in env.admin("GET", "records/Task") if t.get("Closed_Loop_Key__c") == task_key]
    users = {u["Username"]: u["Id"] for u in env.admin("GET", "records/User") if u.get("IsActive")}
    other = next(uid for uid in users.values() if uid != task["OwnerId"])
    env.sf.update_records("Task", [{"Id": task["Id"], "Status": "Completed", "OwnerId": other}])
    with env.ledger.session() as s:  # the ledger restored from a backup taken before the Task
        s.execute(update(SurveySend).where(SurveySend.send_key == key).values(lp_reminder_task_id=None))
    assert dispatch.create_lp_reminder_tasks(env.sf, env.ledger, env.playbook, START) == 1
    [again] = [t for t in env.admin("GET", "records/Task") if t.get("Closed_Loop_Key__c") == task_key]
    assert again["Id"] == task["Id"]
    assert (again["Status"], again["OwnerId"]) == ("Completed", other)
    assert env.ledger.get_send(key)["lp_reminder_task_id"] == task["Id"]


# -- a ledger restored from backup (issue 19 item 7) ------------------------------------------------------


def _backup(env, to):
    """An online backup of the SQLite ledger (sqlite3's backup API: a consistent copy)."""
    import sqlite3

    src, dst = sqlite3.connect(env.ledger.engine.url.database), sqlite3.connect(to)
    with dst:
        src.backup(dst)
    src.close(), dst.close()


def _restore(env, copy):
    """The ledger restored from that backup: every connection dropped, the file overwritten."""
    import sqlite3

    env.ledger.dispose()
    src, dst = sqlite3.connect(copy), sqlite3.connect(env.ledger.engine.url.database)
    with dst:
        src.backup(dst)
    src.close(), dst.close()


def _collectors(env, name):
    return [c for c in env.admin("GET", "state")["sm"]["collectors"].values() if c["name"] == name]


@pytest.mark.parametrize("rerun_after_days", [0, 1], ids=["rerun-same-day", "rerun-next-day"])
def test_a_ledger_restored_from_backup_sends_no_invite_twice(env, tmp_path, rerun_after_days):
    """Backup, dispatch, restore the backup, dispatch again (the same logical date, or the next day's run):
    SurveyMonkey's own record shows each due contact invited exactly once and one collector per batch;
    the ledger has adopted the sends it had lost (recipient ids, so responses still join)."""
    day = START + dt.timedelta(days=9)  # a day the seeded go-lives make invites due on
    env.move_clock(day)
    dispatch.sync_go_lives(env.sf, env.ledger, env.playbook, day)
    _backup(env, tmp_path / "backup.db")
    first = env.run_day(day, reminders=False)["invites"]
    # ground truth from the seeded org: flagged, reachable contacts due within the catch-up window
    due = due_contacts(env, day - dt.timedelta(days=30), day)
    assert first["sent"] == len(due) > 0 and invited(env) == Counter(dict.fromkeys(due, 1))

    _restore(env, tmp_path / "backup.db")
    assert not sends(env, status="sent")  # the restored ledger has forgotten the batch
    again = env.run_day(day + dt.timedelta(days=rerun_after_days), reminders=False)["invites"]

    assert invited(env) == Counter(dict.fromkeys(due, 1))  # nobody surveyed twice
    batches = [c for c in env.admin("GET", "state")["sm"]["collectors"].values()]
    assert [c["name"] for c in batches] == [dispatch.batch_name(day)]  # no second collector, none new
    assert (again["sent"], again["adopted"]) == (0, len(due))
    # the survey found by title again (its cached id was not in the backup), its collectors, the unknown
    # batch's messages, the invite's recipients, then the message and its recipients (complete_message)
    assert again["api_calls"] == 1 + 1 + 1 + 1 + 2
    recipients = {r["email"].lower(): r["id"] for m in messages(env, "invite") for r in m["recipients"]}
    adopted = {r["recipient_id"] for r in sends(env, status="sent")}
    assert adopted == set(recipients.values())
    # and the next normal run: nothing more
    assert env.run_day(day + dt.timedelta(days=2), reminders=False)["invites"]["sent"] == 0
    assert invited(env) == Counter(dict.fromkeys(due, 1))


def test_a_ledger_restored_from_before_the_reminder_sends_no_second_reminder(env, tmp_path):
    """The backup was taken after the invites and before the reminder: after the restore the batch's
    reminder is found on its collector and adopted, not sent again (SurveyMonkey sends a reminder to every
    non-responder of the collector)."""
    env.run_day(START, reminders=False)
    _backup(env, tmp_path / "backup.db")
    day = START + dt.timedelta(days=5)
    env.move_clock(day)
    first = dispatch.send_reminders(env.sm, None, env.ledger, env.playbook, day, run_id="r1")
    [reminder] = messages(env, "reminder")
    assert first["reminded"] == len(reminder["recipients"]) > 0

    _restore(env, tmp_path / "backup.db")
    again = dispatch.send_reminders(env.sm, None, env.ledger, env.playbook, day, run_id="r2")
    assert [m["id"] for m in messages(env, "reminder")] == [reminder["id"]]  # one reminder, still
    assert (again["batches"], again["adopted"]) == (0, first["reminded"])
    reminded = [r for r in sends(env, status="sent") if r["reminder_sent_at"]]
    assert {r["reminder_message_id"] for r in reminded} == {reminder["id"]}
    assert len(reminded) == first["reminded"]


# -- pure planning ---------------------------------------------------------------------------------------

RULES = SimpleNamespace(
    survey_delay_days=14, catch_up_window_days=30, resurvey_quarantine_days=90, hold_while_open_case=True
)
TODAY = dt.date(2026, 7, 15)


def _plan(history=(), open_cases=(), go_live=dt.date(2026, 7, 1), rules=RULES, **contact):
    account = {"sf_id": "A1", "go_live_date": go_live}
    person = {
        "sf_id": "C1",
        "account_id": "A1",
        "email": "a@b.example",
        "is_impl_pm": True,
        "opted_out": False,
    }
    return dispatch.plan_invites([account], [person | contact], list(history), set(open_cases), TODAY, rules)


def _sent(key="invite:C1:2026-01-01", account="A0", days_ago=30, status="sent"):
    return {"send_key": key, "kind": "invite", "account_id": account, "contact_id": "C1", "status": status,
            "sent_at": dt.datetime.combine(TODAY - dt.timedelta(days=days_ago), dt.time()),
            "go_live_date": dt.date(2026, 1, 1), "due_date": None, "reason": None}  # fmt: skip


def test_plan_due_today_and_catch_up_window():
    [d] = _plan()
    assert (d.action, d.send_key, d.due_date) == ("send", "invite:C1:2026-07-01", TODAY)
    assert _plan(go_live=dt.date(2026, 7, 2)) == []  # not due yet
    assert _plan(go_live=dt.date(2026, 6, 1))[0].action == "send"  # 30 days late: caught up
    assert _plan(go_live=dt.date(2026, 5, 31)) == []  # 31 days late: never


@pytest.mark.parametrize(
    ("history", "contact", "open_cases", "action", "reason"),
    [
        ([_sent(days_ago=30)], {}, (), "hold", "re-survey quarantine until 2026-09-13"),
        ([_sent(days_ago=91)], {}, (), "send", None),
        ([_sent(account="A1", days_ago=5)], {}, (), "skip", "go-live moved after the send"),
        ([_sent(status="bounced")], {}, (), "skip", "an earlier survey bounced"),
        ([_sent(status="opted_out")], {}, (), "skip", "opted out in SurveyMonkey"),
        ([], {"opted_out": True}, (), "skip", "opted out of email in Salesforce"),
        ([], {"email": None}, (), "skip", "no email address"),
        ([], {}, ("A1",), "hold", "open follow-up case"),
    ],
)
def test_plan_rules(history, contact, open_cases, action, reason):
    [d] = _plan(history=history, open_cases=open_cases, **contact)
    assert d.action == action
    assert (reason or "") in (d.reason or "")


def test_plan_hold_on_open_case_is_configurable():
    [d] = _plan(open_cases=("A1",), rules=SimpleNamespace(**{**vars(RULES), "hold_while_open_case": False}))
    assert d.action == "send"


def test_plan_already_sent_is_final_and_stale_planned_rows_are_skipped():
    done = _sent(key="invite:C1:2026-07-01", account="A1", days_ago=0) | {"go_live_date": dt.date(2026, 7, 1)}
    assert _plan(history=[done]) == []
    stale = _sent(key="invite:C1:2026-06-25", account="A1", status="planned") | {
        "go_live_date": dt.date(2026, 6, 25), "due_date": dt.date(2026, 7, 9)}  # fmt: skip
    decisions = {d.send_key: d for d in _plan(history=[stale])}
    assert decisions["invite:C1:2026-06-25"].action == "skip"
    assert decisions["invite:C1:2026-06-25"].reason == "go-live moved to 2026-07-01"
    assert decisions["invite:C1:2026-07-01"].action == "send"


def test_an_earlier_survey_of_the_same_person_is_not_adopted_for_a_new_go_live():
    """Reconciling a restored ledger: an invite goes out on or after its due date, so a message older than
    the planned send's due date (the 90-day re-survey quarantine apart) is another survey, not this one."""
    from closed_loop.pipeline.dispatch_adopt import _sent_for

    row = {"due_date": dt.date(2026, 7, 15)}
    assert _sent_for(row, dt.date(2026, 7, 15)) and _sent_for(row, dt.date(2026, 7, 20))
    assert _sent_for(row, dt.date(2026, 7, 14))  # a day's slack: the message's date is SurveyMonkey's
    assert not _sent_for(row, dt.date(2026, 7, 15) - dt.timedelta(days=90))
    assert not _sent_for(None, dt.date(2026, 7, 15))  # an address with no planned send
