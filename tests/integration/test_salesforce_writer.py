"""The one Salesforce writer against the sandbox org: creates that survive a replay keep the LP's work,
the documented call counts hold, and usernames resolve with one query, case-insensitively."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from closed_loop.domain.records import task_record
from closed_loop.playbook import load_playbook

PLAYBOOK = "include/playbook.yaml"
# REST API Developer Guide: an sObject Collection holds up to 200 records and a Composite request up to
# 5 collections, and the whole Composite request counts as one API call.
RECORDS_PER_CALL = 200 * 5


@pytest.fixture
def playbook():
    return load_playbook(PLAYBOOK)


def _sf_calls(stack) -> int:
    return stack.sandbox.admin("GET", "counters")["sf"]["total"]


def _tasks(stack, ext: str) -> dict[str, dict]:
    return {t[ext]: t for t in stack.sandbox.admin("GET", "records/Task") if t.get(ext)}


def _seeded(stack):
    users = {u["Username"]: u for u in stack.sandbox.admin("GET", "records/User")}
    account = stack.sandbox.admin("GET", "records/Account")[0]
    return users, account


def _rows(playbook, n: int, owner_id: str, account_id: str, tag: str = "t") -> list[dict]:
    due = dt.date(2026, 7, 1)
    return [
        task_record(playbook, key=f"writer-{tag}-{i}", subject=f"Step {i}", description="Call the customer.",
                    due=due, owner_id=owner_id, what_id=account_id, priority="High")
        for i in range(n)
    ]  # fmt: skip


def test_a_replayed_create_keeps_what_the_lp_set_and_refreshes_the_text(stack, playbook):
    from closed_loop.hooks import ClosedLoopSalesforceHook
    from closed_loop.pipeline.salesforce_writes import create_records_once

    ext = playbook.salesforce.task.external_id
    users, account = _seeded(stack)
    doi, vp = users["doi@closedloop.example"], users["vp.cs@closedloop.example"]
    rows = _rows(playbook, 3, doi["Id"], account["Id"])
    with stack.connections():
        sf = ClosedLoopSalesforceHook()
        first = create_records_once(sf, "Task", ext, rows, playbook)
        assert [r.created for r in first] == [True, True, True] and all(r.ok for r in first)
        # the LP works the first Task: completes it, lowers its priority, hands it to the VP
        sf.update_records(
            "Task", [{"Id": first[0].id, "Status": "Completed", "Priority": "Low", "OwnerId": vp["Id"]}]
        )
        before = _sf_calls(stack)
        replay_rows = [dict(r, Subject=f"{r['Subject']} (reworded)") for r in rows]
        again = create_records_once(sf, "Task", ext, replay_rows, playbook)
        calls = _sf_calls(stack) - before

    assert [r.ok for r in again] == [True] * 3 and [r.created for r in again] == [False] * 3
    assert [r.id for r in again] == [r.id for r in first]
    tasks = _tasks(stack, ext)
    assert len([k for k in tasks if k.startswith("writer-t-")]) == 3  # no duplicate
    worked = tasks["writer-t-0"]
    assert (worked["Status"], worked["Priority"], worked["OwnerId"]) == ("Completed", "Low", vp["Id"])
    assert worked["Subject"] == "Step 0 (reworded)"  # the text is refreshed
    untouched = tasks["writer-t-1"]
    assert (untouched["Status"], untouched["Priority"], untouched["OwnerId"]) == (
        playbook.salesforce.task.open_status, "High", doi["Id"])  # fmt: skip
    assert calls == 2  # the refused create and one update of the three existing records


def test_the_fields_kept_on_replay_come_from_the_playbook(stack, playbook):
    from closed_loop.hooks import ClosedLoopSalesforceHook
    from closed_loop.pipeline.salesforce_writes import create_records_once

    ext = playbook.salesforce.task.external_id
    tuned = playbook.model_copy(
        update={
            "salesforce": playbook.salesforce.model_copy(
                update={"kept_on_replay": ["Status", "ActivityDate"]}
            )
        }
    )
    users, account = _seeded(stack)
    rows = _rows(tuned, 1, users["doi@closedloop.example"]["Id"], account["Id"], tag="k")
    with stack.connections():
        sf = ClosedLoopSalesforceHook()
        (made,) = create_records_once(sf, "Task", ext, rows, tuned)
        sf.update_records("Task", [{"Id": made.id, "Status": "In Progress", "Priority": "Low",
                                    "ActivityDate": "2026-07-09"}])  # fmt: skip
        create_records_once(sf, "Task", ext, rows, tuned)
    task = _tasks(stack, ext)["writer-k-0"]
    assert (task["Status"], task["ActivityDate"]) == ("In Progress", "2026-07-09")  # kept
    assert task["Priority"] == "High"  # not in this org's list: the replay writes it again


def test_new_records_cost_the_documented_minimum_of_calls(stack, playbook):
    from closed_loop.hooks import ClosedLoopSalesforceHook
    from closed_loop.pipeline.salesforce_writes import create_records_once

    ext = playbook.salesforce.task.external_id
    users, account = _seeded(stack)
    n = RECORDS_PER_CALL + 7
    rows = _rows(playbook, n, users["doi@closedloop.example"]["Id"], account["Id"], tag="n")
    with stack.connections():
        sf = ClosedLoopSalesforceHook()
        before = _sf_calls(stack)
        results = create_records_once(sf, "Task", ext, rows, playbook)
        calls = _sf_calls(stack) - before
    assert sum(r.created for r in results) == n
    assert calls == math.ceil(n / RECORDS_PER_CALL)


def test_a_create_refused_for_another_reason_is_reported_not_retried_as_an_update(stack, playbook):
    from closed_loop.hooks import ClosedLoopSalesforceHook
    from closed_loop.pipeline.salesforce_writes import create_records_once

    ext = playbook.salesforce.task.external_id
    users, account = _seeded(stack)
    rows = _rows(playbook, 2, users["doi@closedloop.example"]["Id"], account["Id"], tag="bad")
    rows[1]["Status"] = "Finished"  # not in the Task Status picklist (restricted)
    with stack.connections():
        results = create_records_once(ClosedLoopSalesforceHook(), "Task", ext, rows, playbook)
    assert results[0].ok and results[0].created
    assert not results[1].ok and results[1].code == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert "writer-bad-1" not in _tasks(stack, ext)


def test_usernames_resolve_case_insensitively_with_one_query_inactive_users_known_but_not_active(stack):
    from closed_loop.hooks import ClosedLoopSalesforceHook
    from closed_loop.pipeline.salesforce_writes import lookup_users

    seeded = {u["Username"]: u for u in stack.sandbox.admin("GET", "records/User")}
    active, gone = seeded["doi@closedloop.example"], seeded["tsm2@closedloop.example"]
    stack.sandbox.salesforce().User.update(gone["Id"], {"IsActive": False})  # the TSM left
    asked = ["DOI@ClosedLoop.Example", "nobody@closedloop.example", gone["Username"]]
    with stack.connections():
        sf = ClosedLoopSalesforceHook()
        before = _sf_calls(stack)
        users = lookup_users(sf, asked)
        calls = _sf_calls(stack) - before
    assert calls == 1
    assert users.id("doi@closedloop.example") == active["Id"]
    assert users.record("Doi@closedloop.example")["Email"] == active["Email"]
    assert users.record("nobody@closedloop.example") is None and users.id(None) is None
    assert users.record(gone["Username"])["Id"] == gone["Id"]
    assert users.active(gone["Username"]) is None and users.id(gone["Username"]) is None


def test_a_keyed_create_is_retried_on_5xx_and_a_lost_reply_is_adopted_on_the_rerun(stack, playbook):
    """503s before the create ran: retried in the same call (a repeat of a keyed create cannot duplicate).
    A reply lost after the create ran (truncated JSON): the call fails, the rerun finds the records."""
    from closed_loop.hooks import ClosedLoopSalesforceHook
    from closed_loop.hooks.errors import SalesforceApiError
    from closed_loop.pipeline.salesforce_writes import create_records_once

    ext = playbook.salesforce.task.external_id
    users, account = _seeded(stack)
    owner = users["doi@closedloop.example"]["Id"]
    retried, lost = (_rows(playbook, 2, owner, account["Id"], tag=t) for t in ("r", "l"))
    with stack.connections():
        sf = ClosedLoopSalesforceHook()
        sf.sleep = lambda seconds: None
        stack.sandbox.admin("POST", "faults", {"sf_5xx": 2})
        assert all(r.ok and r.created for r in create_records_once(sf, "Task", ext, retried, playbook))
        stack.sandbox.admin("POST", "faults", {"sf_truncated_json": 1})
        with pytest.raises(SalesforceApiError):
            create_records_once(sf, "Task", ext, lost, playbook)
        rerun = create_records_once(ClosedLoopSalesforceHook(), "Task", ext, lost, playbook)
    assert all(r.ok and not r.created for r in rerun)
    keys = [
        t[ext] for t in stack.sandbox.admin("GET", "records/Task") if t.get(ext, "").startswith("writer-")
    ]
    assert sorted(keys) == ["writer-l-0", "writer-l-1", "writer-r-0", "writer-r-1"]  # once each
