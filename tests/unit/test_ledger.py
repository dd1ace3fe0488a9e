"""The ledger's repository on SQLite; tests/integration/test_ledger_postgres.py reruns them on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import math
import threading
from decimal import Decimal
from types import SimpleNamespace

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from closed_loop.ledger import Base, Ledger
from closed_loop.ledger.core import VERSION_TABLE, url_from_connection
from closed_loop.ledger.models import TABLES, Response, Watermark

UTC = dt.UTC
D = dt.date


@pytest.fixture
def ledger(tmp_path):
    led = Ledger.from_url(f"sqlite:///{tmp_path / 'ledger.db'}")
    led.migrate()
    yield led
    led.dispose()


def table_rows(ledger, name):
    model = TABLES[name]
    with ledger.session() as s:
        return sorted(
            (tuple(getattr(r, c.key) for c in model.__table__.columns) for r in s.scalars(select(model))),
            key=repr,
        )


def account(sf_id="001A", **kw):
    row = {"sf_id": sf_id, "name": "Acme", "go_live_date": D(2025, 3, 3), "mrr": Decimal("1500.00"),
           "tsm_user_id": "005T1", "tsm_username": "tsm1@closedloop.example", "at_risk": False,
           "system_modstamp": "2025-03-01T10:00:00.000+0000"}  # fmt: skip
    return row | kw


def send(key="invite:003A:2025-03-03", **kw):
    row = {"send_key": key, "kind": "invite", "account_id": "001A", "contact_id": "003A",
           "go_live_date": D(2025, 3, 3), "due_date": D(2025, 3, 17)}  # fmt: skip
    return row | kw


# -- schema --------------------------------------------------------------------------------------
def test_migrations_match_models_and_rerun(ledger):
    ledger.migrate()  # second run is a no-op
    with ledger.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(ctx, Base.metadata) == []
        names = set(inspect(conn).get_table_names())
    assert set(Base.metadata.tables) | {VERSION_TABLE} == names


def test_url_from_connection_variants():
    def conn(**kw):
        base = {"conn_id": "closed_loop_db", "conn_type": None, "host": None, "login": None,
                "password": None, "port": None, "schema": None, "extra_dejson": {}}  # fmt: skip
        return SimpleNamespace(**(base | kw))

    assert url_from_connection(conn(conn_type="sqlite", host="/tmp/l.db")) == "sqlite:////tmp/l.db"
    pg = url_from_connection(
        conn(conn_type="postgres", host="db", login="u", password="p@ss/w", port=5433, schema="ledger")
    )
    assert pg.render_as_string(hide_password=False) == "postgresql+psycopg2://u:p%40ss%2Fw@db:5433/ledger"
    extra = conn(conn_type="postgres", extra_dejson={"sqlalchemy_url": "sqlite://"})
    assert url_from_connection(extra) == "sqlite://"
    with pytest.raises(ValueError, match="unsupported"):
        url_from_connection(conn(conn_type="mysql"))


def test_from_conn_id_reads_the_airflow_connection(tmp_path, monkeypatch):
    path = tmp_path / "viaconn.db"
    monkeypatch.setenv("AIRFLOW_CONN_CLOSED_LOOP_DB", f'{{"conn_type": "sqlite", "host": "{path}"}}')
    led = Ledger.from_conn_id()
    led.migrate()
    assert led.engine.url.database == str(path) and path.exists()
    led.dispose()


# -- accounts and contacts -----------------------------------------------------------------------
def test_upsert_accounts_is_idempotent_and_updates(ledger):
    ledger.upsert_accounts([account(), account("001B", mrr=None)])
    first = [r[:-1] for r in table_rows(ledger, "accounts")]  # all but synced_at
    ledger.upsert_accounts([account(), account("001B", mrr=None)])
    assert [r[:-1] for r in table_rows(ledger, "accounts")] == first
    ledger.upsert_accounts([{"sf_id": "001A", "go_live_date": "2025-03-10"}])  # partial row
    acme = ledger.get_account("001A")
    assert acme["go_live_date"] == D(2025, 3, 10) and acme["name"] == "Acme"
    assert acme["mrr"] == Decimal("1500.00") and ledger.get_account("001B")["mrr"] is None
    assert acme["system_modstamp"] == dt.datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert acme["synced_at"].tzinfo is not None


def test_upsert_rejects_unknown_columns(ledger):
    with pytest.raises(ValueError, match="Go_Live_Date__c"):
        ledger.upsert_accounts([{"sf_id": "001A", "Go_Live_Date__c": "2025-01-01"}])


def test_upsert_contacts(ledger):
    rows = [{"sf_id": "003A", "account_id": "001A", "email": "a@x.example", "is_impl_pm": True},
            {"sf_id": "003B", "account_id": "001A", "email": "b@x.example", "opted_out": True}]  # fmt: skip
    assert ledger.upsert_contacts(rows) == 2
    ledger.upsert_contacts(rows)
    got = ledger.contacts_for_accounts(["001A"])
    assert [(c["sf_id"], c["is_impl_pm"], c["opted_out"]) for c in got] == [
        ("003A", True, False),
        ("003B", False, True),
    ]


# -- sends ---------------------------------------------------------------------------------------
def test_plan_sends_inserts_once_and_moves_planned_dates(ledger):
    assert ledger.plan_sends([send()])["inserted"] == ["invite:003A:2025-03-03"]
    again = ledger.plan_sends([send()])
    assert again == {"inserted": [], "moved": [], "superseded": []}
    moved = ledger.plan_sends([send(due_date=D(2025, 3, 24))])
    assert moved["moved"] == ["invite:003A:2025-03-03"]
    assert ledger.get_send("invite:003A:2025-03-03")["due_date"] == D(2025, 3, 24)


def test_plan_sends_never_touches_a_sent_row(ledger):
    ledger.plan_sends([send()])
    ledger.mark_send_intent(["invite:003A:2025-03-03"], run_id="r1")
    ledger.mark_sent([{"send_key": "invite:003A:2025-03-03", "recipient_id": "R1"}])
    out = ledger.plan_sends([send(due_date=D(2025, 4, 1), status="planned")])
    assert out["moved"] == [] and out["inserted"] == []
    row = ledger.get_send("invite:003A:2025-03-03")
    assert (row["status"], row["due_date"]) == ("sent", D(2025, 3, 17))


def test_new_go_live_key_supersedes_the_planned_invite(ledger):
    ledger.plan_sends([send()])
    out = ledger.plan_sends(
        [send("invite:003A:2025-04-07", go_live_date=D(2025, 4, 7), due_date=D(2025, 4, 21))]
    )
    assert out["superseded"] == ["invite:003A:2025-03-03"]
    old = ledger.get_send("invite:003A:2025-03-03")
    assert old["status"] == "skipped" and "invite:003A:2025-04-07" in old["reason"]
    assert [r["send_key"] for r in ledger.sends_due(D(2025, 5, 1))] == ["invite:003A:2025-04-07"]


def test_plan_sends_rejects_unknown_status(ledger):
    with pytest.raises(ValueError, match="unknown send status"):
        ledger.plan_sends([send(status="mailed")])


def test_intent_claim_release_and_outcomes(ledger):
    keys = ["invite:003A:2025-03-03", "invite:003B:2025-03-03", "invite:003C:2025-03-03"]
    ledger.plan_sends([send(k, contact_id=k.split(":")[1]) for k in keys])
    claimed = ledger.mark_send_intent(keys[:2], run_id="r1", message_id="M1", collector_id="C1")
    assert claimed == keys[:2]
    assert ledger.mark_send_intent(keys, run_id="r2") == keys[2:]  # the others are taken
    assert {r["send_key"] for r in ledger.pending_intents("r1")} == set(keys[:2])
    assert ledger.release_intents([keys[2]]) == 1
    assert ledger.get_send(keys[2])["status"] == "planned"
    results = [{"send_key": keys[0], "recipient_id": "R0", "message_id": "M1", "survey_id": "S1"},
               {"send_key": keys[1], "status": "bounced", "reason": "mailbox full"}]  # fmt: skip
    assert ledger.mark_sent(results) == 2
    assert ledger.mark_sent(results[:1]) == 0  # a sent row is never re-sent
    assert ledger.pending_intents() == []
    sent = ledger.get_send(keys[0])
    assert (sent["status"], sent["recipient_id"], sent["run_id"]) == ("sent", "R0", "r1")
    assert sent["sent_at"].tzinfo is not None and sent["collector_id"] == "C1"
    assert ledger.mark_sent([{"send_key": keys[0], "status": "opted_out"}]) == 1  # after-the-fact opt-out
    assert ledger.mark_sent([{"send_key": keys[0], "status": "sent"}]) == 0
    assert ledger.send_by_recipient(["R0"])["R0"]["send_key"] == keys[0]
    with pytest.raises(ValueError, match="outcome"):
        ledger.mark_sent([{"send_key": keys[2], "status": "planned"}])


def test_sends_due_window_and_kind(ledger):
    ledger.plan_sends([
        send("invite:1:x", contact_id="1", due_date=D(2025, 3, 1)),
        send("invite:2:x", contact_id="2", due_date=D(2025, 3, 10)),
        send("invite:3:x", contact_id="3", due_date=D(2025, 3, 11)),
        send("recovery:case1", kind="recovery", contact_id="4", due_date=D(2025, 3, 5)),
        send("invite:5:x", contact_id="5", due_date=D(2025, 3, 2), status="opted_out"),
    ])  # fmt: skip
    due = lambda **kw: [r["send_key"] for r in ledger.sends_due(D(2025, 3, 10), **kw)]  # noqa: E731
    assert due() == ["invite:1:x", "recovery:case1", "invite:2:x"]
    assert due(kind="invite", not_before=D(2025, 3, 2)) == ["invite:2:x"]
    assert [r["send_key"] for r in ledger.sends_for_contacts(["5"])] == ["invite:5:x"]


def test_reminders_after_delay_once_and_not_to_responders(ledger):
    keys = ["invite:1:x", "invite:2:x", "invite:3:x"]
    ledger.plan_sends([send(k, contact_id=k.split(":")[1]) for k in keys])
    ledger.mark_send_intent(keys, run_id="r1")
    sent_at = dt.datetime(2025, 3, 17, 23, 30, tzinfo=UTC)
    ledger.mark_sent(
        [{"send_key": k, "recipient_id": f"R{i}", "sent_at": sent_at} for i, k in enumerate(keys)]
    )
    ledger.record_responses([{"response_id": "900", "recipient_id": "R2", "send_key": "invite:3:x"}])
    assert ledger.sends_needing_reminder(D(2025, 3, 23), delay_days=7) == []
    need = [r["send_key"] for r in ledger.sends_needing_reminder(D(2025, 3, 24), delay_days=7)]
    assert need == keys[:2]
    assert ledger.claim_reminders(need, "reminder:M1") == keys[:2]
    assert ledger.claim_reminders(need, "reminder:M2") == []
    assert {r["send_key"] for r in ledger.pending_reminders()} == set(keys[:2])
    assert ledger.mark_reminders_sent(need, "M9") == 2
    assert ledger.mark_reminders_sent(need, "M10") == 0
    assert ledger.pending_reminders() == []
    assert ledger.sends_needing_reminder(D(2025, 4, 30), delay_days=7) == []
    assert ledger.set_lp_reminder_tasks({keys[0]: "00TLP"}) == 1
    assert ledger.get_send(keys[0])["lp_reminder_task_id"] == "00TLP"


# -- responses -----------------------------------------------------------------------------------
def response(rid="R-1", **kw):
    row = {"response_id": rid, "survey_id": "S1", "collector_id": "C1", "recipient_id": "RC1",
           "send_key": "invite:003A:2025-03-03", "account_id": "001A", "contact_id": "003A",
           "response_status": "completed", "date_created": "2025-03-18T09:00:00+00:00",
           "date_modified": "2025-03-18T09:05:00+00:00", "raw": {"id": rid, "pages": []}}  # fmt: skip
    return row | kw


ANSWERS = {"R-1": [{"question_id": "Q4", "heading": "recommend", "choice_id": "c3", "choice_text": "3"},
                   {"question_id": "Q7", "text": "slow go-live", "topic": "implementation"}]}  # fmt: skip
TRIGGERS = {"R-1": [{"kind": "nps", "question_id": "Q4", "answer": "3", "rule": "<=6", "severity": "high"}]}
SCORES = {"R-1": {"negative": True, "severity": "high", "topics": ["implementation"]}}


def test_record_responses_idempotent_with_watermark(ledger):
    for _ in range(2):
        ledger.record_responses(
            [response()], SCORES, ANSWERS, TRIGGERS, "sm_responses", "2025-03-18T09:05:00"
        )
    got = ledger.get_response("R-1")
    assert got["negative"] is True and got["topics"] == ["implementation"] and got["raw"]["id"] == "R-1"
    assert got["date_modified"] == dt.datetime(2025, 3, 18, 9, 5, tzinfo=UTC)
    assert [a["question_id"] for a in got["answers"]] == ["Q4", "Q7"]
    assert [t["kind"] for t in got["triggers"]] == ["nps"]
    assert ledger.get_watermark("sm_responses") == "2025-03-18T09:05:00"
    assert len(table_rows(ledger, "answers")) == 2 and len(table_rows(ledger, "triggers")) == 1


def test_answers_and_triggers_are_replaced_wholesale(ledger):
    ledger.record_responses([response()], SCORES, ANSWERS, TRIGGERS)
    edited = {"R-1": [{"question_id": "Q4", "choice_id": "c9", "choice_text": "9"}]}
    positive = {"R-1": {"negative": False, "severity": None, "topics": []}}
    ledger.record_responses([response(date_modified="2025-03-19T00:00:00Z")], positive, edited, {"R-1": []})
    got = ledger.get_response("R-1")
    assert [a["choice_text"] for a in got["answers"]] == ["9"] and got["triggers"] == []
    assert got["negative"] is False


def test_unscored_responses_are_listed(ledger):
    ledger.record_responses([response("R-1"), response("R-2")], scores={"R-1": SCORES["R-1"]})
    assert [r["response_id"] for r in ledger.responses_to_score()] == ["R-2"]
    assert ledger.get_response("R-2")["negative"] is None


def test_data_and_watermark_commit_together_or_not_at_all(ledger):
    ledger.set_watermark("sm_responses", "2025-03-01T00:00:00")
    bad_triggers = {"R-1": [{"question_id": "Q4"}]}  # kind is NOT NULL: fails after the responses went in
    with pytest.raises(IntegrityError):
        ledger.record_responses([response()], SCORES, ANSWERS, bad_triggers, "sm_responses", "2025-03-18")
    assert ledger.get_response("R-1") is None and table_rows(ledger, "answers") == []
    assert ledger.get_watermark("sm_responses") == "2025-03-01T00:00:00"


def test_failure_after_watermark_write_rolls_back_everything(ledger, monkeypatch):
    def write_then_crash(session, name, value):
        session.merge(Watermark(name=name, value=value, updated_at=dt.datetime.now(UTC)))
        session.flush()
        raise RuntimeError("worker killed")

    monkeypatch.setattr(Ledger, "_set_watermark", staticmethod(write_then_crash))
    with pytest.raises(RuntimeError):
        ledger.record_responses([response()], SCORES, ANSWERS, TRIGGERS, "sm_responses", "2025-03-18")
    assert ledger.get_watermark("sm_responses", default="none") == "none"
    with ledger.session() as s:
        assert s.scalar(select(Response.response_id)) is None


def test_watermark_set_and_default(ledger):
    assert ledger.get_watermark("x") is None and ledger.get_watermark("x", "0") == "0"
    ledger.set_watermark("x", "1")
    ledger.set_watermark("x", "2")
    assert ledger.get_watermark("x") == "2"


# -- cases and steps -----------------------------------------------------------------------------
def case(key="R-1", **kw):
    row = {"case_key": key, "account_id": "001A", "contact_id": "003A", "lp_role": "doi",
           "lp_username": "doi@closedloop.example", "tier": "top", "channel": "call", "severity": "high",
           "priority": "High", "topics": ["implementation"]}  # fmt: skip
    return row | kw


def steps(key="R-1"):
    return [
        {
            "step_key": f"{key}:acknowledge",
            "case_key": key,
            "step": "acknowledge",
            "due_date": D(2025, 3, 20),
        },
        {"step_key": f"{key}:follow_up", "case_key": key, "step": "follow_up", "due_date": "2025-04-08"},
    ]


def test_case_lifecycle_is_idempotent(ledger):
    assert ledger.upsert_case(case()) is True
    assert ledger.upsert_case(case(priority="Low")) is False  # a rerun never clobbers
    assert ledger.upsert_case_steps(steps()) == ["R-1:acknowledge", "R-1:follow_up"]
    assert ledger.upsert_case_steps(steps()) == []
    pending = ledger.cases_needing_salesforce()
    assert [c["case_key"] for c in pending] == ["R-1"] and len(pending[0]["pending_steps"]) == 2
    assert ledger.mark_case_created("R-1", "500A") is True
    assert ledger.mark_case_created("R-1", "500A") is False
    with pytest.raises(ValueError, match="already linked"):
        ledger.mark_case_created("R-1", "500B")
    c = ledger.get_case("R-1")
    assert (c["status"], c["priority"], c["sf_case_id"]) == ("open", "High", "500A")
    assert ledger.mark_steps_created({"R-1:acknowledge": "00T1"}) == 1
    assert ledger.mark_steps_created({"R-1:acknowledge": "00T9"}) == 0
    pending = ledger.cases_needing_salesforce()
    assert [s["step_key"] for s in pending[0]["pending_steps"]] == ["R-1:follow_up"]
    ledger.mark_steps_created({"R-1:follow_up": "00T2"})
    assert ledger.cases_needing_salesforce() == []


def test_open_cases_steps_status_and_closing(ledger):
    ledger.upsert_case(case("R-1"))
    ledger.upsert_case(case("R-2", account_id="001B"))
    ledger.upsert_case_steps(steps("R-1"))
    assert ledger.open_case_for_account("001A")["case_key"] == "R-1"
    first = dt.datetime(2025, 3, 19, 15, tzinfo=UTC)
    upd = [
        {
            "step_key": "R-1:acknowledge",
            "status": "completed",
            "sf_status": "Completed",
            "completed_at": first,
        }
    ]
    assert ledger.record_step_status(upd) == 1
    later = [upd[0] | {"completed_at": first + dt.timedelta(days=2)}]
    ledger.record_step_status(later)
    open_ = {c["case_key"]: c for c in ledger.open_cases_and_steps()}
    assert set(open_) == {"R-1", "R-2"} and open_["R-2"]["steps"] == []
    ack = open_["R-1"]["steps"][0]
    assert (ack["step"], ack["status"], ack["completed_at"]) == ("acknowledge", "completed", first)
    closed_at = dt.datetime(2025, 4, 2, tzinfo=UTC)
    doc = {"root_cause": "training", "actions_taken": "retrained", "outcome": "ok"}
    ledger.record_case_status([{"case_key": "R-1", "status": "closed", "closed_at": closed_at} | doc])
    assert ledger.open_case_for_account("001A") is None
    assert [c["case_key"] for c in ledger.open_cases_and_steps()] == ["R-2"]
    with pytest.raises(ValueError, match="unknown fields"):
        ledger.record_case_status([{"case_key": "R-2", "Status": "Closed"}])


# -- events, emails, quarantine ------------------------------------------------------------------
def test_sla_events_once_per_key(ledger):
    ev = {"event_key": "breach:R-1:acknowledge", "case_key": "R-1", "step_key": "R-1:acknowledge",
          "kind": "breach", "occurred_on": D(2025, 3, 21), "details": {"days_late": 1}}  # fmt: skip
    assert ledger.add_sla_event(ev) is True
    assert ledger.add_sla_event(ev | {"occurred_on": D(2025, 3, 22)}) is False
    assert [e["occurred_on"] for e in ledger.sla_events("R-1")] == [D(2025, 3, 21)]
    assert [e["event_key"] for e in ledger.events_without_task(["breach"])] == [ev["event_key"]]
    assert ledger.set_sla_event_task(ev["event_key"], "00TE") == 1
    assert ledger.events_without_task(["breach"]) == [] and ledger.sla_events(kind="escalation") == []


def test_email_intent_once_then_sent(ledger):
    assert ledger.email_intent("digest:2025-03-21", "digest", ["ops@x.example"], "Digest", "r1") is True
    assert ledger.email_intent("digest:2025-03-21", "digest", ["ops@x.example"], "Digest", "r2") is False
    assert [e["email_key"] for e in ledger.unsent_emails()] == ["digest:2025-03-21"]
    assert ledger.mark_email_sent("digest:2025-03-21") == 1
    assert ledger.mark_email_sent("digest:2025-03-21") == 0
    got = ledger.get_email("digest:2025-03-21")
    assert (got["status"], got["to"], got["run_id"]) == ("sent", ["ops@x.example"], "r1")
    assert ledger.unsent_emails() == []


def test_quarantine_idempotent_and_reported_once(ledger):
    assert ledger.quarantine("no_mrr:001A", "accounts", "001A", "MRR missing", {"sf_id": "001A"}) is True
    assert ledger.quarantine("no_mrr:001A", "accounts", "001A", "MRR missing", {"sf_id": "001A"}) is False
    ledger.quarantine("unknown_recipient:R9", "responses", "R9", "no send for recipient")
    assert [q["q_key"] for q in ledger.unreported_quarantine()] == ["no_mrr:001A", "unknown_recipient:R9"]
    assert ledger.mark_quarantine_reported(["no_mrr:001A"]) == 1
    assert ledger.resolve_quarantine(["unknown_recipient:R9"]) == 1
    assert ledger.unreported_quarantine() == []


def test_api_usage_is_overwritten_per_run(ledger):
    ledger.record_api_usage("r1", "surveymonkey", 3)
    ledger.record_api_usage("r1", "surveymonkey", 4)
    ledger.record_api_usage("r1", "salesforce", 2)
    assert [(r[1], r[2]) for r in table_rows(ledger, "api_usage")] == [("salesforce", 2), ("surveymonkey", 4)]


# -- concurrency ---------------------------------------------------------------------------------
def _race(n, fn):
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return results


def test_concurrent_intent_claims_only_one_wins(ledger):
    keys = [f"invite:{i}:x" for i in range(20)]
    ledger.plan_sends([send(k, contact_id=str(i)) for i, k in enumerate(keys)])
    results = _race(6, lambda i: ledger.mark_send_intent(keys, run_id=f"run{i}"))
    claimed = [k for r in results for k in r]
    assert sorted(claimed) == sorted(keys)  # every key claimed exactly once
    winner = results.index(sorted(keys))  # one statement: the winner takes the whole batch
    assert {r["run_id"] for r in ledger.pending_intents()} == {f"run{winner}"}


def test_concurrent_event_and_email_claims_only_one_wins(ledger):
    ev = {
        "event_key": "escalation:R-1:ack",
        "case_key": "R-1",
        "kind": "escalation",
        "occurred_on": D(2025, 3, 3),
    }
    assert sum(_race(6, lambda i: ledger.add_sla_event(ev))) == 1
    assert sum(_race(6, lambda i: ledger.email_intent("e1", "digest", ["a@x.example"], "s", f"r{i}"))) == 1


# -- frames --------------------------------------------------------------------------------------
def test_read_frame_types_and_empty_frames(ledger):
    empty = ledger.read_frame("cases")
    assert empty.empty and "closed_at" in empty.columns
    ledger.upsert_accounts([account(), account("001B", mrr=None)])
    frame = ledger.read_frame("accounts").set_index("sf_id")
    assert frame.loc["001A", "mrr"] == 1500.0 and frame["mrr"].isna().sum() == 1
    assert str(frame["system_modstamp"].dtype).startswith("datetime64") and frame["system_modstamp"].dt.tz
    assert str(frame["go_live_date"].dtype).startswith("datetime64")


def test_frames_filter_by_period(ledger):
    q1, q2 = (D(2025, 1, 1), D(2025, 4, 1)), (D(2025, 4, 1), D(2025, 7, 1))
    batch = [response("R-1", date_created="2025-03-18T09:00:00Z"), response("R-2", date_created="2025-04-02")]
    ledger.record_responses(batch, SCORES, ANSWERS, TRIGGERS)
    ledger.upsert_case(case("R-1"))
    ledger.mark_case_created("R-1", "500A", opened_at=dt.datetime(2025, 3, 18, 10, tzinfo=UTC))
    ledger.upsert_case_steps(steps("R-1"))
    ledger.add_sla_event({"event_key": "breach:R-1:ack", "case_key": "R-1", "kind": "breach",
                          "occurred_on": D(2025, 4, 3)})  # fmt: skip
    f1, f2 = ledger.frames(*q1), ledger.frames(*q2)
    assert set(f1) == set(TABLES)
    assert list(f1["responses"]["response_id"]) == ["R-1"] and list(f2["responses"]["response_id"]) == ["R-2"]
    assert len(f1["answers"]) == 2 and f2["answers"].empty and len(f1["triggers"]) == 1
    assert list(f1["cases"]["case_key"]) == ["R-1"] == list(f2["cases"]["case_key"])  # still open in Q2
    assert len(f2["case_steps"]) == 2
    assert f1["sla_events"].empty and len(f2["sla_events"]) == 1
    ledger.record_case_status([{"case_key": "R-1", "status": "closed", "closed_at": "2025-03-30T00:00:00Z"}])
    assert ledger.frames(*q2)["cases"].empty
    assert len(ledger.frames()["responses"]) == 2


def _statements(ledger):
    """Count the statements the ledger sends (an executemany is one statement with many parameter sets)."""
    from sqlalchemy import event

    seen = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            seen.append(statement.split()[0].upper())

    event.listen(ledger.engine, "before_cursor_execute", before)
    return seen, lambda: event.remove(ledger.engine, "before_cursor_execute", before)


def test_batched_writes_are_one_statement_per_batch_with_the_same_contents(ledger):
    n = 600
    for i in range(n):
        ledger.upsert_case(case(f"R-{i:04d}"))  # setup, one by one
    seen, stop = _statements(ledger)
    try:
        keys = ledger.upsert_case_steps(s for i in range(n) for s in steps(f"R-{i:04d}"))
        inserts = len(seen)
        changed = ledger.mark_steps_created({f"R-{i:04d}:acknowledge": f"00T{i:015d}" for i in range(n)})
        first = dt.datetime(2025, 3, 19, 15, tzinfo=UTC)
        done = [{"step_key": f"R-{i:04d}:acknowledge", "status": "completed", "completed_at": first}
                for i in range(0, n, 2)]  # fmt: skip
        completed = ledger.record_step_status(done)
        statuses = ledger.record_case_status(
            {"case_key": f"R-{i:04d}", "sf_status": "Working"} for i in range(n)
        )
    finally:
        stop()
    assert len(keys) == 2 * n and inserts <= math.ceil(2 * n / 500)  # multi-row INSERT ... RETURNING
    assert (changed, completed, statuses) == (n, n // 2, n)
    assert len(seen) - inserts == 3  # one UPDATE per batch (same-shaped rows), not one per row
    rows = {s["step_key"]: s for c in ledger.open_cases_and_steps() for s in c["steps"]}
    assert (
        rows["R-0000:acknowledge"]["status"] == "completed"
        and rows["R-0001:acknowledge"]["status"] == "created"
    )
    assert (
        rows["R-0002:acknowledge"]["completed_at"] == first and rows["R-0003:follow_up"]["sf_task_id"] is None
    )
    assert ledger.mark_steps_created({"R-0000:acknowledge": "00T9"}) == 0  # a recorded Task id is kept
    assert {c["sf_status"] for c in ledger.open_cases_and_steps()} == {"Working"}
