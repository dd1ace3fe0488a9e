"""Clock-driven simulation (respondents, LPs), the ground-truth admin views, determinism and persistence."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import requests
from simple_salesforce import format_soql

from sandbox.seed import MAIN_TITLE
from sandbox.testing import run_sandbox


def drive(sb):
    """Invite every flagged contact, create a survey Case + Task per response, advance time."""
    sm, sf, base = sb.sm_session(), sb.salesforce(), sb.sm_base_url
    survey = sm.get(f"{base}/surveys", params={"title": MAIN_TITLE}).json()["data"][0]["id"]
    collector = sm.post(f"{base}/surveys/{survey}/collectors", json={"type": "email"}).json()
    message = sm.post(f"{base}/collectors/{collector['id']}/messages", json={"type": "invite"}).json()
    contacts = sf.query_all(
        "SELECT Id, Email, AccountId FROM Contact WHERE Implementations_Project_Manager__c "
        "= true ORDER BY Email"
    )["records"]
    sm.post(
        f"{base}/collectors/{collector['id']}/messages/{message['id']}/recipients/bulk",
        json={"contacts": [{"email": c["Email"]} for c in contacts]},
    )
    sm.post(f"{base}/collectors/{collector['id']}/messages/{message['id']}/send", json={})
    sb.admin("POST", "clock", {"advance_days": 5})
    responses = sm.get(f"{base}/collectors/{collector['id']}/responses/bulk", params={"per_page": 100}).json()
    owner = sf.query("SELECT Id FROM User WHERE Username = 'tsm1@closedloop.example'")["records"][0]["Id"]
    for response in responses["data"]:
        case = sf.Case.create(
            {
                "Subject": "Survey follow-up",
                "Origin": "Post-Implementation Survey",
                "Survey_Response_Id__c": response["id"],
                "OwnerId": owner,
            }
        )
        sf.Task.create(
            {
                "Subject": "Call",
                "WhatId": case["id"],
                "OwnerId": owner,
                "ActivityDate": "2026-07-10",
                "Closed_Loop_Key__c": f"call:{response['id']}",
            }
        )
    sb.admin("POST", "clock", {"advance_days": 40})
    return responses["total"]


def test_simulation_logs_reproducible_lp_behaviour_and_persists(tmp_path):
    with run_sandbox(tmp_path / "a", seed=11, accounts=30, sm_minute_limit=100000) as sb:
        answered = drive(sb)
        log = sb.admin("GET", "log")
        state = sb.admin("GET", "state")
        sf = sb.salesforce()
        counters = sb.admin("GET", "counters")
        messages = sb.admin("GET", "messages")
        ca_file, first_state = sb.ca_file, sb.state_file
    assert answered > 0
    planned = [e for e in log if e["action"] == "planned" and e["object"] == "Task"]
    assert len(planned) == answered
    behaviours = Counter(e["behaviour"] for e in planned)
    assert set(behaviours) <= {"on_time", "late", "never"} and len(behaviours) >= 2
    completed = {e["id"]: e for e in log if e["object"] == "Task" and e["action"] == "completed"}
    for entry in planned:
        task = state["sf"]["Task"][entry["id"]]
        assert task["IsClosed"] == (entry["id"] in completed)
        if entry["id"] in completed:
            timing = completed[entry["id"]]["timing"]
            assert timing == entry["behaviour"]
            assert (task["CompletedDateTime"][:10] <= task["ActivityDate"]) == (timing == "on_time")
    cases = [e for e in log if e["object"] == "Case" and e["action"] != "planned"]
    assert {"working", "still_dissatisfied"} & {e["action"] for e in cases}
    for entry in cases:
        if entry["action"] == "documented_close":
            assert entry["documented"] and state["sf"]["Case"][entry["id"]]["Root_Cause__c"]
    assert (
        counters["sf"]["total"] > 0
        and counters["sm"]["endpoints"]["POST /collectors/{id}/messages/{id}/send"] == 1
    )
    (invite,) = messages
    assert invite["type"] == "invite" and invite["status"] == "sent"
    assert {r["id"] for r in invite["recipients"]} == {
        e["recipient_id"] for e in log if e["action"] == "responded"
    } | {r["id"] for r in invite["recipients"] if r["survey_response_status"] == "not_responded"}
    # same seed, same calls -> same behaviours
    with run_sandbox(tmp_path / "b", seed=11, accounts=30, sm_minute_limit=100000) as again:
        drive(again)
        assert [
            (e["id"], e.get("behaviour")) for e in again.admin("GET", "log") if e["action"] == "planned"
        ] == [(e["id"], e.get("behaviour")) for e in log if e["action"] == "planned"]
    # restart on the same state file: same data, same CA, clock kept
    with run_sandbox(tmp_path / "a", seed=11, state=first_state) as restarted:
        assert restarted.ca_file == ca_file
        assert restarted.admin("GET", "clock")["now"] == state["clock"]
        sf = restarted.salesforce()
        total = sf.query("SELECT COUNT() FROM Task WHERE IsClosed = true")["totalSize"]
        assert total == sum(1 for t in state["sf"]["Task"].values() if t["IsClosed"])
        key = planned[0]["key"]
        assert (
            sf.query(format_soql("SELECT Id FROM Task WHERE Closed_Loop_Key__c = {}", key))["totalSize"] == 1
        )


def test_admin_views_clock_rules_and_counter_reset(sandbox):
    before = sandbox.admin("GET", "clock")["now"]
    with pytest.raises(requests.HTTPError):
        sandbox.admin("POST", "clock", {"now": "2020-01-01T00:00:00Z"})
    moved = sandbox.admin("POST", "clock", {"now": before.replace("T09", "T10")})
    assert moved["now"] == before.replace("T09", "T10")
    sandbox.salesforce().query("SELECT Id FROM User LIMIT 1")
    assert sandbox.admin("GET", "counters")["sf"]["endpoints"]["GET query"] >= 1
    assert sandbox.admin("POST", "counters/reset")["sf"]["total"] == 0
    assert len(sandbox.admin("GET", "records/Account")) == 60
    assert sandbox.admin("GET", "messages") == []
    assert "GET /_sandbox/state" in sandbox.admin("GET", "")["endpoints"]


def test_airflow_conn_env_shape(sandbox):
    env = sandbox.airflow_conn_env()
    sf = json.loads(env["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    sm = json.loads(env["AIRFLOW_CONN_SURVEYMONKEY_DEFAULT"])
    assert sf["conn_type"] == "salesforce" and sf["extra"]["access_token"] == sandbox.sf_access_token
    assert sf["extra"]["ca_bundle"] == sandbox.ca_file and sf["extra"]["version"] == "61.0"
    assert sm == {
        "conn_type": "surveymonkey",
        "host": sandbox.sm_base_url,
        "password": sandbox.sm_access_token,
        "extra": {"ca_bundle": sandbox.ca_file},
    }
