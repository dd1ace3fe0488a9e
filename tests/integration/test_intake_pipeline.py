"""Response intake against the sandbox: pipeline functions (no Airflow), checked on the sandbox's state.

Expected owners and due dates are computed here from the sandbox's ground-truth records and the
playbook's rules (MRR > 3000 -> the account's TSM, else the DOI; due = received + N business days,
weekends and US holidays skipped), independently of the routing/plan code under test.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import holidays
import pytest
from scoring_reference import score_responses_naive

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.playbook import load_playbook
from sandbox.testing import VALID_MESSAGE_BODY

PB = load_playbook()
CAL = BusinessCalendar.from_playbook(PB)
TODAY = date(2026, 7, 10)
MAIN_TITLE = "Post-Implementation Feedback"
PULSE_TITLE = "Post-Implementation Follow-up Pulse"
ON_OPEN = {"acknowledge": 3, "investigate": 5, "internal_call": 10, "customer_call": 10,
           "corrective_action": 21, "document": 21}  # fmt: skip


# --- test helpers (also used by the operator and DAG tests) -------------------------------------------


def sandbox_state(stack) -> dict:
    return stack.sandbox.admin("GET", "state")


def sync_ledger(stack) -> dict:
    """Accounts and contacts from the sandbox's ground truth into the ledger (what dispatch syncs)."""
    from devtools.stack import ledger_rows_from_sandbox

    state = sandbox_state(stack)
    accounts, contacts = ledger_rows_from_sandbox(state["sf"])
    stack.ledger.upsert_accounts(accounts)
    stack.ledger.upsert_contacts(contacts)
    return state


def send_invites(stack, title=MAIN_TITLE, kind="invite", contacts=None, key=None, record=True) -> dict:
    """Invite contacts (default: every flagged, not opted-out contact) through SurveyMonkeyHook and
    record the sends in the ledger (plan_sends -> mark_send_intent -> mark_sent with recipient ids).
    Returns {contact_id: send row}."""
    from closed_loop.hooks import SurveyMonkeyHook

    state = sandbox_state(stack)
    if contacts is None:
        contacts = [
            c
            for c in state["sf"]["Contact"].values()
            if c["Implementations_Project_Manager__c"] and not c["HasOptedOutOfEmail"]
        ]
    key = key or (lambda c: f"{kind}:{c['Id']}")
    with stack.connections():
        sm = SurveyMonkeyHook()
        survey = sm.find_survey(title)
        collector = sm.get_or_create_email_collector(survey["id"], f"closed-loop {kind}")
        message = sm.create_message(collector["id"], "invite", "Your feedback", VALID_MESSAGE_BODY)
        rows = [
            {"send_key": key(c), "kind": kind, "account_id": c["AccountId"], "contact_id": c["Id"],
             "due_date": "2026-07-01"}
            for c in contacts
        ]  # fmt: skip
        if record:
            stack.ledger.plan_sends(rows)
            stack.ledger.mark_send_intent([r["send_key"] for r in rows], "test-run", message["id"],
                                          collector["id"], survey["id"])  # fmt: skip
        payload = [{"email": c["Email"], "first_name": c["FirstName"], "last_name": c["LastName"]}
                   for c in contacts]  # fmt: skip
        added = sm.add_recipients_bulk(collector["id"], message["id"], payload)
        sm.send_message(collector["id"], message["id"])
    by_email = {r["email"].lower(): str(r["id"]) for r in added["succeeded"]}
    results = []
    for row, c in zip(rows, contacts, strict=True):
        rid = by_email.get(c["Email"].lower())
        results.append({"send_key": row["send_key"], "status": "sent" if rid else "skipped",
                        "recipient_id": rid, "survey_id": survey["id"]})  # fmt: skip
    if record:
        stack.ledger.mark_sent(results)
    return {c["Id"]: r for c, r in zip(contacts, results, strict=True)}


def advance(stack, **delta) -> None:
    stack.sandbox.admin("POST", "clock", delta)


def surveyed(stack, days: int = 6) -> dict:
    """Ledger synced, every flagged contact invited, the clock moved on so respondents answer."""
    sync_ledger(stack)
    send_invites(stack)
    advance(stack, advance_days=days)
    stack.sandbox.admin("POST", "counters/reset")
    return sandbox_state(stack)


def hooks(stack):
    from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook

    return SurveyMonkeyHook(), ClosedLoopSalesforceHook()


def run_intake(stack, dry_run=False, today=TODAY):
    """One run of both tasks in process: (ingest summary, open summary, sm hook, sf hook)."""
    from closed_loop.pipeline.intake import ingest_responses, open_cases

    with stack.connections():
        sm, sf = hooks(stack)
        ingest = ingest_responses(sm, stack.ledger, PB, CAL, today, dry_run=dry_run)
        opened = open_cases(sf, stack.ledger, PB, CAL, today, dry_run=dry_run)
    return ingest, opened, sm, sf


def survey_cases(state) -> list[dict]:
    return [c for c in state["sf"].get("Case", {}).values() if c.get("Survey_Response_Id__c")]


def survey_tasks(state) -> list[dict]:
    return [t for t in state["sf"].get("Task", {}).values() if t.get("Closed_Loop_Key__c")]


# --- the independent oracle ---------------------------------------------------------------------------

US = holidays.country_holidays("US")
CLOSURES = set(PB.calendar.closures)


def business_days_after(day: date, n: int) -> date:
    while n:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in US and day not in CLOSURES:
            n -= 1
    return day


def expected_lead(account: dict, users: dict) -> tuple[str, str | None]:
    """(lead username, flag) by the SOP: TSM when MRR > 3000 and a TSM exists, else the DOI."""
    mrr, tsm = account["MRR__c"], account["Transition_Success_Manager__c"]
    if mrr is None:
        return "doi@closedloop.example", "mrr_missing"
    if Decimal(str(mrr)) > 3000:
        if tsm and users[tsm]["IsActive"]:
            return users[tsm]["Username"], None
        return "doi@closedloop.example", "tsm_missing"
    return "doi@closedloop.example", None


def main_survey(state) -> dict:
    return next(s for s in state["sm"]["surveys"].values() if s["title"] == MAIN_TITLE)


def ground_truth(stack, state, responses=None) -> dict:
    """{response_id: expectation} for every completed main-survey response of a ledger recipient
    (``responses``: the responses as served, when a fault alters them; default the sandbox's own)."""
    survey = main_survey(state)
    if responses is not None:
        state = {**state, "sm": {**state["sm"], "responses": {r["id"]: r for r in responses}}}
    sends = stack.ledger.send_by_recipient([r["recipient_id"] for r in state["sm"]["responses"].values()])
    accounts = state["sf"]["Account"]
    users = {u["Id"]: u for u in state["sf"]["User"].values()}
    completed = [r for r in state["sm"]["responses"].values()
                 if r["survey_id"] == survey["id"] and r["response_status"] == "completed"]  # fmt: skip
    risk = {a["Id"]: a["At_Risk__c"] for a in accounts.values()}
    resp_account = {r["recipient_id"]: sends[r["recipient_id"]]["account_id"] for r in completed
                     if r["recipient_id"] in sends}  # fmt: skip
    scores = {s.response_id: s for s in score_responses_naive(
        {"id": survey["id"], "title": survey["title"], "pages": survey["pages"]}, completed, PB, risk,
        resp_account).scores}  # fmt: skip
    out = {}
    for r in completed:
        send = sends.get(r["recipient_id"])
        if send is None:
            continue
        account = accounts[send["account_id"]]
        lead, flag = expected_lead(account, users)
        received = datetime.fromisoformat(r["date_modified"]).astimezone(ZoneInfo("America/New_York")).date()
        out[r["id"]] = {
            "negative": scores[r["id"]].negative,
            "kinds": {t.kind for t in scores[r["id"]].triggers},
            "headings": {t.heading for t in scores[r["id"]].triggers},
            "topics": set(scores[r["id"]].topics),
            "profile": r.get("_profile"),
            "account": account,
            "contact_id": send["contact_id"],
            "lead": lead,
            "flag": flag,
            "due": {step: business_days_after(received, n) for step, n in ON_OPEN.items()},
            "raw": r,
        }
    return out


def user_ids(state) -> dict[str, str]:
    return {u["Username"]: u["Id"] for u in state["sf"]["User"].values()}


# --- tests --------------------------------------------------------------------------------------------


@pytest.fixture
def surveyed_stack(stack):
    surveyed(stack)
    return stack


def test_every_negative_gets_the_right_case_and_tasks_and_reruns_add_nothing(surveyed_stack):
    stack = surveyed_stack
    started = time.perf_counter()
    ingest, opened, sm, sf = run_intake(stack)
    wall = time.perf_counter() - started
    state = sandbox_state(stack)
    truth = ground_truth(stack, state)
    ids = user_ids(state)
    cases = {c["Survey_Response_Id__c"]: c for c in survey_cases(state)}
    tasks = {t["Closed_Loop_Key__c"]: t for t in survey_tasks(state)}
    negatives = {rid for rid, t in truth.items() if t["negative"]}

    # coverage of the seeded data: every trigger kind, both sides of the threshold, both topics
    kinds = set().union(*(truth[r]["kinds"] for r in negatives))
    assert kinds >= {"negative_answer", "low_score", "unresolved_issue", "follow_up_request",
                     "alarming_comment"}, kinds  # fmt: skip
    mrrs = [truth[r]["account"]["MRR__c"] for r in negatives]
    assert any(m is None for m in mrrs) and any(m is not None and m > 3000 for m in mrrs)
    assert any(m is not None and m <= 3000 for m in mrrs)
    topic_sets = [truth[r]["topics"] for r in negatives]
    assert {"implementation"} in topic_sets and any("marketing" in t for t in topic_sets)
    assert any({"implementation", "marketing"} <= t for t in topic_sets)
    assert len(truth) - len(negatives) > 0, "some positives"

    assert set(cases) == negatives, "one Case per negative response, none for positives"
    for rid in negatives:
        t, case = truth[rid], cases[rid]
        assert case["OwnerId"] == ids[t["lead"]], (rid, t["account"]["MRR__c"])
        assert case["AccountId"] == t["account"]["Id"] and case["ContactId"] == t["contact_id"]
        assert case["Origin"] == "Post-Implementation Survey" and case["Status"] == "New"
        for step, due in t["due"].items():
            task = tasks[f"{rid}:{step}"]
            assert task["OwnerId"] == ids[t["lead"]], (rid, step)
            assert task["ActivityDate"] == due.isoformat(), (rid, step)
            assert task["WhatId"] == case["Id"] and task["WhoId"] == t["contact_id"]
        assert all(h in case["Description"] for h in t["headings"]), rid
    step_tasks = [k for k in tasks if not k.startswith("dq:")]
    assert len(step_tasks) == len(negatives) * len(ON_OPEN)

    # MRR exactly 3000 goes to the DOI; a null MRR goes to the DOI with a data-quality Task
    at_3000 = [r for r in negatives if truth[r]["account"]["MRR__c"] == 3000]
    for rid in at_3000:
        assert cases[rid]["OwnerId"] == ids["doi@closedloop.example"]
    flagged = {truth[r]["flag"] for r in negatives} - {None}
    assert "mrr_missing" in flagged
    dq = [t for k, t in tasks.items() if k.startswith("dq:")]
    assert dq and all(t["OwnerId"] == ids["ops@closedloop.example"] for t in dq)
    assert stack.ledger.unreported_quarantine() == []

    # API calls equal the minimum
    n = ingest.fetched
    assert sm.calls_made == 1 + math.ceil(n / 100) + 1, "survey lookup + pages + details"
    n_tasks = len(step_tasks) + len(dq)
    # users + the batch's accounts re-read when the Cases open (issue 14) + Case and Task upserts
    # (Composite: 5 sObject Collections of 200 records per call, REST API Developer Guide) + the Cases'
    # OwnerId read-back after each Composite write (assignment rules, issue 13)
    assert sf.calls_made == 2 + 2 * math.ceil(len(negatives) / 1000) + math.ceil(n_tasks / 1000)
    counters = stack.sandbox.admin("GET", "counters")
    assert counters["sm"]["total"] == sm.calls_made and counters["sf"]["total"] == sf.calls_made
    print(f"\nintake run: {n} responses, {len(negatives)} cases, {n_tasks} tasks in {wall:.2f} s; "
          f"SM calls {sm.calls_made}, SF calls {sf.calls_made}")  # fmt: skip

    # reruns: nothing new, one SurveyMonkey call (survey id cached), no Salesforce call
    for _ in range(2):
        again, reopened, sm2, sf2 = run_intake(stack)
        assert again.cases_planned == 0 and reopened.cases_pending == 0
        assert sm2.calls_made == 1 and sf2.calls_made == 0  # one page (the overlap), nothing to score
    after = sandbox_state(stack)
    assert len(survey_cases(after)) == len(cases) and len(survey_tasks(after)) == len(tasks)


def _ledger_counts(ledger) -> dict:
    frames = ledger.frames()
    return {name: len(frame) for name, frame in frames.items() if name != "api_usage"}


def test_dry_run_writes_nothing(surveyed_stack):
    stack = surveyed_stack
    before_ledger = _ledger_counts(stack.ledger)
    ingest, opened, _, _ = run_intake(stack, dry_run=True)
    assert ingest.dry_run and ingest.fetched > 0 and ingest.cases_planned > 0
    state = sandbox_state(stack)
    assert survey_cases(state) == [] and survey_tasks(state) == []
    assert _ledger_counts(stack.ledger) == before_ledger
    writes = {k: v for k, v in stack.sandbox.admin("GET", "counters")["sf"]["endpoints"].items()
              if not k.startswith("GET")}  # fmt: skip
    assert writes == {}


def test_crash_between_salesforce_and_ledger_then_rerun_yields_one_case_and_one_set_of_tasks(
    surveyed_stack, monkeypatch
):
    stack = surveyed_stack
    ledger = stack.ledger
    real_cases, real_steps = ledger.mark_case_created, ledger.mark_steps_created
    boom = RuntimeError("worker killed")
    monkeypatch.setattr(ledger, "mark_case_created", lambda *a, **k: (_ for _ in ()).throw(boom))
    with pytest.raises(RuntimeError):
        run_intake(stack)
    state = sandbox_state(stack)
    first = len(survey_cases(state))
    assert first > 0 and survey_tasks(state) == []  # Cases reached Salesforce, the ledger never knew

    monkeypatch.setattr(ledger, "mark_case_created", real_cases)
    monkeypatch.setattr(ledger, "mark_steps_created", lambda *a, **k: (_ for _ in ()).throw(boom))
    with pytest.raises(RuntimeError):
        run_intake(stack)  # this time the Tasks reach Salesforce and the ledger misses them
    monkeypatch.setattr(ledger, "mark_steps_created", real_steps)
    _, opened, _, _ = run_intake(stack)
    assert opened.cases_created == 0 and opened.tasks_created == 0 and opened.tasks_updated > 0
    state = sandbox_state(stack)
    cases = survey_cases(state)
    keys = [t["Closed_Loop_Key__c"] for t in survey_tasks(state)]
    assert len(cases) == first == len({c["Survey_Response_Id__c"] for c in cases})
    assert len(keys) == len(set(keys)) and len([k for k in keys if not k.startswith("dq:")]) == first * 6
    assert ledger.cases_needing_salesforce() == []


def _backup(ledger) -> dict[str, list[dict]]:
    """Every ledger row (what a backup holds), on SQLite or PostgreSQL."""
    from closed_loop.ledger.models import Base

    with ledger.engine.connect() as conn:
        return {
            t.name: [dict(r._mapping) for r in conn.execute(t.select())] for t in Base.metadata.sorted_tables
        }


def _restore(ledger, rows: dict[str, list[dict]]) -> None:
    from closed_loop.ledger.models import Base

    with ledger.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        for table in Base.metadata.sorted_tables:
            if rows[table.name]:
                conn.execute(table.insert(), rows[table.name])


def test_a_ledger_restored_from_backup_never_resets_what_the_lp_did_in_salesforce(surveyed_stack):
    """Issue 19 item 7: the ledger is restored from a backup taken before open_cases wrote anything, so
    the next run creates every Case and Task again. Salesforce already has them (by external id): the
    replay updates them without Status, Priority or Owner, so the Task the LP completed stays completed
    and the Case the LP reassigned and reprioritised stays as the LP left it; nothing is duplicated."""
    from closed_loop.pipeline.intake import ingest_responses, open_cases

    stack = surveyed_stack
    with stack.connections():
        sm, sf = hooks(stack)
        ingest_responses(sm, stack.ledger, PB, CAL, TODAY)
    backup = _backup(stack.ledger)  # the nightly backup: cases planned, nothing in Salesforce yet
    with stack.connections():
        first = open_cases(sf, stack.ledger, PB, CAL, TODAY)
    state = sandbox_state(stack)
    case = survey_cases(state)[0]
    task = next(t for t in survey_tasks(state) if t["WhatId"] == case["Id"])
    other = next(
        u["Id"] for u in state["sf"]["User"].values() if u["IsActive"] and u["Id"] != case["OwnerId"]
    )
    lp_case = {
        "Status": "Working",
        "Priority": "Low" if case["Priority"] != "Low" else "High",
        "OwnerId": other,
    }
    with stack.connections():  # the LP works the Case and completes a step in Salesforce
        sf.update_records("Case", [{"Id": case["Id"], **lp_case}])
        sf.update_records("Task", [{"Id": task["Id"], "Status": PB.salesforce.task.completed_status}])
    _restore(stack.ledger, backup)  # the ledger restored: it has never heard of those Cases and Tasks
    with stack.connections():
        replay = open_cases(sf, stack.ledger, PB, CAL, TODAY)
    assert replay.cases_created == 0 and replay.cases_updated == first.cases_created
    assert replay.tasks_created == 0 and replay.tasks_updated == first.tasks_created
    after = sandbox_state(stack)
    assert len(survey_cases(after)) == len(survey_cases(state))  # no duplicate
    assert len(survey_tasks(after)) == len(survey_tasks(state))
    kept = after["sf"]["Case"][case["Id"]]
    assert {k: kept[k] for k in lp_case} == lp_case
    assert after["sf"]["Task"][task["Id"]]["Status"] == PB.salesforce.task.completed_status
    assert stack.ledger.cases_needing_salesforce() == []  # the restored ledger knows the ids again


def test_open_cases_in_chunks_writes_every_case_and_task_once(surveyed_stack, monkeypatch):
    """Issue 18 item 4: open_cases writes the backlog CASE_CHUNK cases at a time (memory flat). In chunks
    of 4, every negative still gets one Case and its SOP step Tasks, the data-quality alerts go out once
    (with the last chunk)."""
    import importlib

    module = importlib.import_module("closed_loop.pipeline.intake.open_cases")
    stack = surveyed_stack
    monkeypatch.setattr(module, "CASE_CHUNK", 4)
    ingest, opened, _, _ = run_intake(stack)
    assert ingest.cases_planned > 8, "the scenario needs several chunks"
    state = sandbox_state(stack)
    negatives = {rid for rid, t in ground_truth(stack, state).items() if t["negative"]}
    keys = [c["Survey_Response_Id__c"] for c in survey_cases(state)]
    assert sorted(keys) == sorted(negatives) and opened.cases_created == len(negatives)
    tasks = [t["Closed_Loop_Key__c"] for t in survey_tasks(state)]
    steps = [k for k in tasks if not k.startswith("dq:")]
    assert len(steps) == len(set(steps)) == len(negatives) * len(ON_OPEN) == opened.tasks_created
    dq = [k for k in tasks if k.startswith("dq:")]
    assert len(dq) == len(set(dq)) == opened.alerts_sent > 0
    assert stack.ledger.cases_needing_salesforce() == []


def test_a_crash_between_chunks_keeps_the_chunks_recorded_and_the_rerun_reads_only_the_rest(
    surveyed_stack, monkeypatch
):
    """Issue 18 item 4: intake streams the backlog chunk by chunk, each recorded with the watermark it
    reaches in one transaction. Killed while recording the second chunk, the first stays recorded with
    its watermark; the rerun reads on from there and ends with one Case per negative, none twice."""
    from closed_loop.pipeline.intake import fetch, watermark_name

    stack = surveyed_stack
    served = [
        r for r in sandbox_state(stack)["sm"]["responses"].values() if r["response_status"] == "completed"
    ]
    assert len(served) > 20, "the scenario needs more than one chunk"
    monkeypatch.setattr(fetch, "CHUNK", 10)
    real, calls = stack.ledger.record_responses, []

    def dies_on_the_second_chunk(rows, *args, **kwargs):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(rows, *args, **kwargs)

    monkeypatch.setattr(stack.ledger, "record_responses", dies_on_the_second_chunk)
    with pytest.raises(RuntimeError, match="killed"):
        run_intake(stack)
    recorded = stack.ledger.read_frame("responses")
    assert len(recorded) == calls[0] <= 10  # the first chunk only, with its watermark
    survey_id = main_survey(sandbox_state(stack))["id"]
    mark = stack.ledger.get_watermark(watermark_name(survey_id))
    assert mark == max(recorded["date_modified"]).isoformat()
    monkeypatch.setattr(stack.ledger, "record_responses", real)
    ingest, opened, _, _ = run_intake(stack)
    assert ingest.fetched == len(served) - len(recorded)  # read on from the watermark
    state = sandbox_state(stack)
    negatives = {rid for rid, t in ground_truth(stack, state).items() if t["negative"]}
    keys = [c["Survey_Response_Id__c"] for c in survey_cases(state)]
    assert sorted(keys) == sorted(negatives)  # one Case per negative: nothing lost, nothing twice
    assert set(stack.ledger.read_frame("responses")["response_id"]) == {r["id"] for r in served}


def test_crash_after_recording_before_planning_is_replanned(surveyed_stack, monkeypatch):
    from closed_loop.pipeline.intake import ingest

    stack = surveyed_stack
    monkeypatch.setattr(ingest, "_store_plans", lambda *a: (_ for _ in ()).throw(RuntimeError("kill")))
    with pytest.raises(RuntimeError):
        run_intake(stack)
    monkeypatch.undo()
    ingest, opened, sm, _ = run_intake(stack)
    assert ingest.fetched == 0 and ingest.replanned > 0 and ingest.cases_planned == ingest.replanned
    assert opened.cases_created == ingest.replanned
    assert sm.calls_made == 2  # the (empty) page and the details to re-score the stored raw JSON


def test_unknown_respondent_and_unknown_choice_ids_are_quarantined_and_the_batch_proceeds(stack):
    state = sync_ledger(stack)
    contacts = [c for c in state["sf"]["Contact"].values()
                if c["Implementations_Project_Manager__c"] and not c["HasOptedOutOfEmail"]]  # fmt: skip
    stranger = contacts[:25]  # invited by someone else: SurveyMonkey knows them, the ledger does not
    send_invites(stack, contacts=stranger, record=False, kind="manual")
    send_invites(stack, contacts=contacts[25:])
    advance(stack, advance_days=6)
    stack.sandbox.admin("POST", "faults", {"sm_unknown_choice_ids": True})  # one bad id per response
    with stack.connections():
        served = list(hooks(stack)[0].iter_responses(survey_id=main_survey(state)["id"]))
    ingest, opened, _, _ = run_intake(stack)
    assert ingest.unknown_respondents > 0 and ingest.answer_problems == ingest.fetched == len(served)
    assert ingest.recorded == ingest.fetched  # every response stored raw, none lost
    quarantine = stack.ledger.read_frame("quarantine")
    reasons = dict(zip(quarantine["q_key"], quarantine["reason"], strict=True))
    unknown = [k for k in reasons if k.startswith("intake:unknown_respondent:")]
    bad = [k for k in reasons if k.startswith("intake:answers:")]
    assert len(unknown) == ingest.unknown_respondents and len(bad) == len(served)
    assert all("unknown choice id" in reasons[k] for k in bad)
    assert quarantine["reported_at"].notna().all(), "every item was sent to the data-quality owner"
    state = sandbox_state(stack)
    tasks = {t["Closed_Loop_Key__c"]: t for t in survey_tasks(state)}
    ops = user_ids(state)["ops@closedloop.example"]
    for q_key in reasons:
        assert tasks[f"dq:{q_key}"]["OwnerId"] == ops
    cases = {c["Survey_Response_Id__c"] for c in survey_cases(state)}
    stored = {rid: stack.ledger.get_response(rid) for rid in (k.split(":")[-1] for k in unknown)}
    assert all(r is not None and r["raw"] and r["account_id"] is None for r in stored.values())
    assert not cases & set(stored), "no case for a respondent we cannot place"
    truth = ground_truth(stack, state, served)
    assert cases == {rid for rid, t in truth.items() if t["negative"]}, "the rest of the batch proceeded"
    rerun, reopened, _, _ = run_intake(stack)
    assert rerun.quarantined == 0 and reopened.alerts_sent == 0


def test_customer_html_stays_inert_text(surveyed_stack):
    stack = surveyed_stack
    run_intake(stack)
    state = sandbox_state(stack)
    html = [r for r in state["sm"]["responses"].values() if "<script>" in str(r["pages"])]
    assert html, "the seed has a <script> comment"
    cases = {c["Survey_Response_Id__c"]: c for c in survey_cases(state)}
    tasks = {t["Closed_Loop_Key__c"]: t for t in survey_tasks(state)}
    for r in html:
        comment = next(a["text"] for p in r["pages"] for q in p["questions"] for a in q["answers"]
                       if "<script>" in a.get("text", ""))  # fmt: skip
        if r["id"] in cases:  # plain-text fields hold the comment verbatim, as data
            assert comment in cases[r["id"]]["Description"]
            assert comment in tasks[f"{r['id']}:internal_call"]["Description"]
        stored = stack.ledger.get_response(r["id"])
        assert any(a["text"] == comment for a in stored["answers"])
    describe = stack.sandbox.salesforce().Case.describe()
    kind = next(f["type"] for f in describe["fields"] if f["name"] == "Description")
    assert kind == "textarea", "Description is plain text: Salesforce never renders it as HTML"


def test_salesforce_record_failures_are_quarantined_and_retried_next_run(surveyed_stack):
    stack = surveyed_stack
    stack.sandbox.admin("POST", "faults", {"sf_collection_fail_indexes": [0, 1]})  # first Case call
    _, opened, _, _ = run_intake(stack)
    assert opened.failures == 2 and opened.cases_created == opened.cases_pending - 2
    failed = [q for q in stack.ledger.unreported_quarantine() if q["q_key"].startswith("salesforce:")]
    assert len(failed) == 2 and all("UNABLE_TO_LOCK_ROW" in q["reason"] for q in failed)
    _, reopened, _, _ = run_intake(stack)
    # written on this run: the refusals are resolved, never alerted (an alarm must not outlive its cause)
    assert reopened.cases_created == 2 and reopened.tasks_created == 12 and reopened.alerts_sent == 0
    state = sandbox_state(stack)
    truth = ground_truth(stack, state)
    assert {c["Survey_Response_Id__c"] for c in survey_cases(state)} == {
        rid for rid, t in truth.items() if t["negative"]
    }
    assert stack.ledger.cases_needing_salesforce() == []


def test_inactive_owner_falls_back_to_the_doi_and_alerts(surveyed_stack):
    stack = surveyed_stack
    state = sandbox_state(stack)
    truth = ground_truth(stack, state)
    tsm_cases = {rid: t["lead"] for rid, t in truth.items() if t["negative"] and t["lead"].startswith("tsm")}
    assert tsm_cases
    gone = sorted(set(tsm_cases.values()))[0]
    sf = stack.sandbox.salesforce()
    sf.User.update(user_ids(state)[gone], {"IsActive": False})
    _, opened, _, _ = run_intake(stack)
    assert opened.failures == 0 and opened.rerouted > 0  # re-decided when the Cases open (issue 14)
    state = sandbox_state(stack)
    doi = user_ids(state)["doi@closedloop.example"]
    cases = {c["Survey_Response_Id__c"]: c for c in survey_cases(state)}
    for rid, lead in tsm_cases.items():
        assert cases[rid]["OwnerId"] == (doi if lead == gone else user_ids(state)[lead])
    keys = set(stack.ledger.read_frame("quarantine")["q_key"])
    assert any(k.startswith("intake:tsm_missing:") for k in keys)


def test_incremental_pulls_latency_and_recovery_pulses(surveyed_stack):
    """Each run picks up everything completed before it: a response completed just after a run has its
    Tasks at the end of the next one, i.e. within one schedule interval plus one run's wall time."""
    stack = surveyed_stack
    first, _, _, _ = run_intake(stack)
    case = stack.ledger.get_case(first.case_keys[0])  # a recovery pulse to its contact, keyed by the case
    contact = sandbox_state(stack)["sf"]["Contact"][case["contact_id"]]
    send_invites(stack, title=PULSE_TITLE, kind="recovery", contacts=[contact],
                 key=lambda c: f"recovery:{case['case_key']}")  # fmt: skip
    timings, later = [], 0
    for _ in range(8):
        advance(stack, advance_hours=12)
        started = time.perf_counter()
        ingest, _, sm, _ = run_intake(stack)
        timings.append(time.perf_counter() - started)
        later += ingest.fetched
        assert sm.calls_made <= 2 * (1 + math.ceil(ingest.fetched / 100)) + 1  # main + pulse (+ lookup)
        state = sandbox_state(stack)
        done = {r["id"] for r in state["sm"]["responses"].values() if r["response_status"] == "completed"}
        recorded = set(stack.ledger.read_frame("responses")["response_id"])
        assert done <= recorded, "every completed response is in the ledger after the next run"
        tasks = {t["Closed_Loop_Key__c"] for t in survey_tasks(state)}
        negatives = stack.ledger.read_frame("responses").query("negative == True and not is_recovery")
        assert all(f"{rid}:acknowledge" in tasks for rid in negatives["response_id"])
    responses = stack.ledger.read_frame("responses")
    pulses = responses[responses["is_recovery"]]
    assert later >= 1 and len(pulses) == 1, "the pulse arrived later and was pulled incrementally"
    assert list(pulses["case_key"]) == [case["case_key"]]  # negative pulses: test_sop_hostile_org
    assert len(survey_cases(sandbox_state(stack))) == first.cases_planned, "a pulse opens no new case"
    assert stack.ledger.get_response(pulses["response_id"].iloc[0])["answers"], "pulse answers stored"
    print(f"\nincremental runs: max {max(timings):.2f} s, mean {sum(timings) / len(timings):.2f} s")


def test_cases_and_steps_are_dated_by_the_logical_day_not_the_wall_clock(surveyed_stack):
    run_intake(surveyed_stack)
    cases = surveyed_stack.ledger.read_frame("cases")
    steps = surveyed_stack.ledger.read_frame("case_steps")
    assert len(cases) and cases["opened_at"].notna().all()
    assert set(cases["opened_at"].dt.date) == {TODAY}
    created = steps[steps["sf_task_id"].notna()]
    assert len(created) and set(created["created_at"].dt.date) == {TODAY}


def test_an_item_that_is_not_a_json_object_is_quarantined_not_dropped(surveyed_stack, monkeypatch):
    from closed_loop.hooks import SurveyMonkeyHook

    real = SurveyMonkeyHook.iter_responses

    def with_garbage(self, *args, **kwargs):
        yield ["not", "a", "response"]
        yield from real(self, *args, **kwargs)

    monkeypatch.setattr(SurveyMonkeyHook, "iter_responses", with_garbage)
    ingest, _, _, _ = run_intake(surveyed_stack)
    quarantine = surveyed_stack.ledger.read_frame("quarantine")
    reasons = list(quarantine["reason"])
    assert any("is not a JSON object (list)" in r for r in reasons), reasons
    assert len(surveyed_stack.ledger.read_frame("responses")) > 0  # the rest of the batch went on


def test_pulse_survey_is_polled_only_within_the_answer_window(surveyed_stack):
    """An unanswered pulse costs one SurveyMonkey page per intake run (96 a day at every 15 minutes) only
    for ``recovery.answer_window_days`` after it was sent, never for ever."""
    from sqlalchemy import update

    from closed_loop.ledger.models import SurveySend

    stack = surveyed_stack
    first, _, _, _ = run_intake(stack)
    case = stack.ledger.get_case(first.case_keys[0])
    contact = sandbox_state(stack)["sf"]["Contact"][case["contact_id"]]
    send_invites(stack, title=PULSE_TITLE, kind="recovery", contacts=[contact],
                 key=lambda c: f"recovery:{case['case_key']}")  # fmt: skip
    sent_at = datetime.combine(TODAY, datetime.min.time(), UTC)
    with stack.ledger.session() as s:
        s.execute(update(SurveySend).where(SurveySend.kind == "recovery").values(sent_at=sent_at))
    window = PB.recovery.answer_window_days

    def pages(day) -> int:
        stack.sandbox.admin("POST", "counters/reset")
        run_intake(stack, today=day)
        endpoints = stack.sandbox.admin("GET", "counters")["sm"]["endpoints"]
        return sum(n for k, n in endpoints.items() if k.endswith("/responses/bulk"))

    run_intake(stack)  # the pulse survey's id is looked up once (cached)
    assert pages(TODAY + timedelta(days=window - 1)) == 2  # main + the pulse inside the window
    assert pages(TODAY + timedelta(days=window + 1)) == 1  # main only: the pulse's window is over


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("id", "9" * 300, "id is 300 characters (at most 64)"),
        ("response_status", "completed" * 10, "response_status is 90 characters (at most 32)"),
        ("collector_id", "4" * 65, "collector_id is 65 characters (at most 64)"),
        ("question_id", "7" * 80, "pages[0].questions[0].id is 80 characters (at most 64)"),
    ],
)
def test_over_long_fields_are_quarantined_and_the_batch_proceeds(surveyed_stack, monkeypatch, field, value,
                                                                 expected):  # fmt: skip
    """The ledger's id columns are varchar(64) (status 32): PostgreSQL refuses a longer value and the whole
    batch failed on every run; SQLite stores it silently. Now the response is quarantined, raw kept."""
    from closed_loop.hooks import SurveyMonkeyHook

    real = SurveyMonkeyHook.iter_responses
    target: list[str] = []  # the first response's id: poisoned whenever it is read

    def with_poison(self, *args, **kwargs):
        for raw in real(self, *args, **kwargs):
            if not target:
                target.append(raw["id"])
            if raw["id"] == target[0]:
                raw = {**raw, "pages": [dict(p, questions=list(p["questions"])) for p in raw["pages"]]}
                if field == "question_id":
                    raw["pages"][0]["questions"][0] = {**raw["pages"][0]["questions"][0], "id": value}
                else:
                    raw[field] = value
            yield raw

    monkeypatch.setattr(SurveyMonkeyHook, "iter_responses", with_poison)
    run_intake(surveyed_stack)
    done = {r["id"] for r in sandbox_state(surveyed_stack)["sm"]["responses"].values()
            if r["response_status"] == "completed"}  # fmt: skip
    recorded = set(surveyed_stack.ledger.read_frame("responses")["response_id"])
    assert recorded == done - set(target) and len(recorded) > 10  # the rest of the batch was recorded
    quarantine = surveyed_stack.ledger.read_frame("quarantine")
    [row] = quarantine[quarantine["q_key"].str.startswith("intake:too_long")].to_dict("records")
    assert expected in row["reason"]
    assert (row["payload"]["raw"].get("id") == value) == (field == "id")  # the raw response kept
    assert run_intake(surveyed_stack)[0].recorded == 0  # a rerun: nothing new, no failure


def test_a_future_date_modified_never_freezes_intake(stack, monkeypatch):
    """One response dated 2031 moved the watermark to 2031: every later response was never fetched
    (24 of 36 in the issue). Now it is recorded, reported, and the watermark stays at the fetch time."""
    from closed_loop.hooks import SurveyMonkeyHook
    from closed_loop.pipeline.intake import watermark_name

    real = SurveyMonkeyHook.iter_responses
    dated: list[str] = []

    def one_from_2031(self, *args, **kwargs):
        for raw in real(self, *args, **kwargs):
            if not dated or raw["id"] == dated[0]:
                dated[:1] = [raw["id"]]
                raw = {**raw, "date_modified": "2031-03-01T00:00:00+00:00"}
            yield raw

    surveyed_stack = stack
    surveyed(stack, days=1)  # the first respondents only
    monkeypatch.setattr(SurveyMonkeyHook, "iter_responses", one_from_2031)
    run_intake(surveyed_stack)
    monkeypatch.undo()
    quarantine = surveyed_stack.ledger.read_frame("quarantine")
    [row] = quarantine[quarantine["q_key"].str.startswith("intake:future_timestamp")].to_dict("records")
    assert row["record_id"] == dated[0] and "2031-03-01" in row["reason"]
    (survey_id,) = set(surveyed_stack.ledger.read_frame("responses")["survey_id"])
    mark = datetime.fromisoformat(surveyed_stack.ledger.get_watermark(watermark_name(survey_id)))
    assert mark.year == 2026
    before = len(surveyed_stack.ledger.read_frame("responses"))
    advance(surveyed_stack, advance_days=4)  # more respondents answer
    run_intake(surveyed_stack)
    done = {r["id"] for r in sandbox_state(surveyed_stack)["sm"]["responses"].values()
            if r["response_status"] == "completed"}  # fmt: skip
    recorded = set(surveyed_stack.ledger.read_frame("responses")["response_id"])
    assert len(done) > before and recorded == done  # every later response fetched


def test_a_reworded_question_in_surveymonkey_is_quarantined_and_alerted(surveyed_stack, monkeypatch):
    """Rewording the "resolved?" question turned the unresolved-issue trigger off without a word (fewer
    negatives). Now each mismatch is quarantined with its playbook key and ops gets a data-quality Task."""
    from closed_loop.hooks import SurveyMonkeyHook

    resolved = PB.triggers.unresolved_issue.question
    real = SurveyMonkeyHook.survey_details

    def reworded(self, survey_id):
        details = real(self, survey_id)
        for page in details["pages"]:
            for q in page["questions"]:
                if q["headings"][0]["heading"] == resolved:
                    q["headings"][0]["heading"] = "Were all your implementation issues resolved?"
        return details

    monkeypatch.setattr(SurveyMonkeyHook, "survey_details", reworded)
    run_intake(surveyed_stack)
    quarantine = surveyed_stack.ledger.read_frame("quarantine")
    drift = quarantine[quarantine["q_key"].str.startswith("intake:drift:")].to_dict("records")
    assert sorted(r["payload"]["key"] for r in drift) == [
        "topics.by_heading." + resolved,
        "triggers.unresolved_issue.question",
    ]
    assert all(r["reported_at"] is not None for r in drift)  # each alerted to ops by a data-quality Task
    dq = [t for t in survey_tasks(sandbox_state(surveyed_stack)) if t["Closed_Loop_Key__c"].startswith("dq:")]
    assert sum("playbook/survey drift" in (t.get("Description") or "") + t["Subject"] for t in dq) == 2
    run_intake(surveyed_stack)  # the next run finds the same drift: no second alert
    dq_again = [
        t for t in survey_tasks(sandbox_state(surveyed_stack)) if t["Closed_Loop_Key__c"].startswith("dq:")
    ]
    assert len(dq_again) == len(dq)


def test_an_alarm_about_a_refused_case_is_closed_once_the_case_exists(surveyed_stack):
    """Issue 19 item 11a: a Case refused twice is alerted to ops; when a later run writes it, that alert's
    data-quality Task is completed (and a refusal written on the very next run is never alerted)."""
    stack = surveyed_stack
    for _ in range(2):  # refused on two runs: the second run alerts ops about the first refusals
        stack.sandbox.admin("POST", "faults", {"sf_collection_fail_indexes": [0, 1]})
        _, opened, _, _ = run_intake(stack)
    assert opened.failures == 2 and opened.alerts_sent == 2
    refused = {q["record_id"] for q in stack.ledger.read_frame("quarantine").to_dict("records")
               if q["q_key"].startswith("salesforce:case:")}  # fmt: skip
    assert len(refused) == 2

    def alarms(state):
        return [t for t in survey_tasks(state) if t["Closed_Loop_Key__c"].startswith("dq:salesforce:case:")]

    assert {t["Status"] for t in alarms(sandbox_state(stack))} == {PB.salesforce.task.open_status}
    _, fixed, _, _ = run_intake(stack)
    assert fixed.cases_created == 2 and fixed.alerts_closed == 2 and fixed.alerts_sent == 0
    state = sandbox_state(stack)
    assert len(alarms(state)) == 2
    assert {t["Status"] for t in alarms(state)} == {PB.salesforce.task.completed_status}
    assert {c["Survey_Response_Id__c"] for c in survey_cases(state)} >= refused
    assert run_intake(stack)[1].alerts_closed == 0  # closed once


def test_survey_details_are_read_again_only_when_the_survey_changed(stack):
    """Issue 18: intake read the survey's /details on every run with responses. It keeps them in the
    ledger with the survey's date_modified and, on a later run, lists the surveys' date_modified (one
    call for every survey) instead; a reworded question moves date_modified, so drift is still caught."""
    surveyed(stack, days=2)
    run_intake(stack)  # the first run reads the details and keeps them
    details, listing = "GET /surveys/{id}/details", "GET /surveys"

    def later_run():
        advance(stack, advance_days=2)  # more respondents answer
        stack.sandbox.admin("POST", "counters/reset")
        ingest, _, sm, _ = run_intake(stack)
        assert ingest.fetched > 0, "the scenario needs responses on every run"
        return ingest, sm, stack.sandbox.admin("GET", "counters")["sm"]["endpoints"]

    ingest, sm, calls = later_run()
    assert calls.get(details, 0) == 0 and calls[listing] == 1  # the kept copy is still current
    assert sm.calls_made == calls["GET /surveys/{id}/responses/bulk"] + 1  # pages + the list, no details
    resolved = PB.triggers.unresolved_issue.question
    survey_id = main_survey(sandbox_state(stack))["id"]
    reword = {"survey_id": survey_id, "heading": resolved, "new_heading": "Were all your issues resolved?"}
    stack.sandbox.admin("POST", "surveys/reword", reword)  # the org edits its survey
    ingest, _, calls = later_run()
    assert calls[details] == 1 and calls[listing] == 1  # changed: read again
    quarantine = stack.ledger.read_frame("quarantine")
    drift = quarantine[quarantine["q_key"].str.startswith("intake:drift:")]
    assert sorted(p["key"] for p in drift["payload"]) == [
        "topics.by_heading." + resolved,
        "triggers.unresolved_issue.question",
    ]
