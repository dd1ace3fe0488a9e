"""Salesforce contract through the real clients (simple-salesforce, the provider's SalesforceHook), HTTPS with
the sandbox CA verified."""

from __future__ import annotations

import json

import pytest
import requests
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from sandbox.seed import HOSTILE_NAME


def user_id(sf, username):
    return sf.query(format_soql("SELECT Id FROM User WHERE Username = {}", username))["records"][0]["Id"]


def an_account(sf):
    return sf.query("SELECT Id FROM Account ORDER BY Name LIMIT 1")["records"][0]["Id"]


def test_https_is_verified_against_the_sandbox_ca(sandbox):
    with pytest.raises(requests.exceptions.SSLError):
        session = requests.Session()
        session.trust_env = False
        session.get(sandbox.sf_instance_url + "/services/data", verify=True, timeout=10)
    assert sandbox.session().get(sandbox.sf_instance_url + "/services/data", timeout=10).status_code == 200


def test_query_relationships_count_and_limit_header(sandbox, sf):
    result = sf.query(
        format_soql(
            "SELECT Id, Name, Owner.Email, Transition_Success_Manager__r.Username "
            "FROM Account WHERE Name = {}",
            HOSTILE_NAME,
        )
    )
    assert result["totalSize"] == 1 and result["records"][0]["Name"] == HOSTILE_NAME
    assert result["records"][0]["attributes"]["type"] == "Account"
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 60
    response = sandbox.session().get(
        f"{sandbox.sf_instance_url}/services/data/v61.0/limits",
        headers={"Authorization": f"Bearer {sandbox.sf_access_token}"},
        timeout=10,
    )
    used, limit = response.headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/")
    body = response.json()["DailyApiRequests"]
    assert int(limit) == body["Max"] == 15000 and body["Max"] - body["Remaining"] == int(used) >= 3
    assert sf.limits()["DailyApiRequests"]["Max"] == 15000


def test_paging_honours_batch_size(sandbox, sf):
    before = sandbox.admin("GET", "counters")["sf"]["endpoints"].get("GET query/{locator}", 0)
    sf.session.headers["Sforce-Query-Options"] = "batchSize=200"
    case = sf.Case.create({"Subject": "paging", "AccountId": an_account(sf), "Origin": "Web"})
    records = [{"attributes": {"type": "Task"}, "Subject": f"t{i}", "WhatId": case["id"]} for i in range(200)]
    assert all(
        r["success"]
        for r in sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})
    )
    sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "records": [
                {"attributes": {"type": "Task"}, "Subject": f"u{i}", "WhatId": case["id"]} for i in range(50)
            ]
        },
    )
    first = sf.query("SELECT Id, Subject FROM Task WHERE Subject != null ORDER BY Subject")
    assert first["totalSize"] == 250 and len(first["records"]) == 200 and not first["done"]
    assert first["nextRecordsUrl"].startswith("/services/data/v61.0/query/")
    everything = list(sf.query_all_iter("SELECT Id FROM Task"))
    assert len({r["Id"] for r in everything}) == 250
    after = sandbox.admin("GET", "counters")["sf"]["endpoints"]["GET query/{locator}"]
    assert after - before == 1
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query_more("01g8dNOPE-200")
    assert info.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_malformed_query_is_an_error_never_a_wrong_answer(sf):
    for bad in (
        "SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'",
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
        "SELECT Id FROM Account GROUP BY Name",
    ):
        with pytest.raises(SalesforceMalformedRequest) as info:
            sf.query(bad)
        assert info.value.content[0]["errorCode"] == "MALFORMED_QUERY"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.query("SELECT Bogus__c FROM Account")
    assert info.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_task_create_get_update_close_semantics(sf):
    owner = user_id(sf, "tsm1@closedloop.example")
    case = sf.Case.create({"Subject": "c", "AccountId": an_account(sf), "Origin": "Phone"})
    created = sf.Task.create(
        {
            "Subject": "Call the customer",
            "WhatId": case["id"],
            "OwnerId": owner,
            "ActivityDate": "2026-07-10",
            "Priority": "High",
        }
    )
    assert created["success"] and created["id"].startswith("00T") and len(created["id"]) == 18
    task = sf.Task.get(created["id"])
    assert task["IsClosed"] is False and task["CompletedDateTime"] is None and task["Status"] == "Not Started"
    assert task["CreatedDate"].endswith("+0000")
    assert sf.Task.update(created["id"], {"Status": "Completed"}) == 204
    task = sf.Task.get(created["id"])
    assert task["IsClosed"] is True and task["CompletedDateTime"]
    sf.Task.update(created["id"], {"Status": "In Progress"})
    assert sf.Task.get(created["id"])["CompletedDateTime"] is None
    assert sf.Case.get(case["id"])["CaseNumber"].isdigit()
    sf.Case.update(case["id"], {"Status": "Closed"})
    closed = sf.Case.get(case["id"])
    assert closed["IsClosed"] and closed["ClosedDate"]
    with pytest.raises(SalesforceResourceNotFound):
        sf.Task.get("00T8d0000000zzzAAA")


@pytest.mark.parametrize(
    "body, code",
    [
        ({"Subject": "x" * 256}, "STRING_TOO_LONG"),
        ({"Subject": "x", "Status": "Done"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"Subject": "x", "Priority": None}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"Subject": "x", "OwnerId": "0058d00000000zzAAA"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"Subject": "x", "WhatId": "5008d00000000zzAAA"}, "INVALID_CROSS_REFERENCE_KEY"),
        ({"Subject": "x", "WhatId": "not-an-id"}, "MALFORMED_ID"),
        ({"Subject": "x", "IsClosed": True}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Subject": "x", "Bogus__c": 1}, "INVALID_FIELD"),
        ({"Subject": "x", "ActivityDate": "next week"}, "JSON_PARSER_ERROR"),
    ],
)
def test_task_validation_errors(sf, body, code):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Task.create(body)
    assert info.value.status == 400 and info.value.content[0]["errorCode"] == code


def test_required_field_and_case_picklists(sf):
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Contact.create({"FirstName": "No", "Email": "no@x.example"})
    assert info.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert info.value.content[0]["fields"] == ["LastName"]
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Case.create({"Origin": "Carrier pigeon"})
    assert info.value.content[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"


def test_upsert_by_external_id(sf):
    account = an_account(sf)
    assert sf.Case.upsert("Survey_Response_Id__c/resp-1", {"Subject": "first", "AccountId": account}) == 201
    assert sf.Case.upsert("Survey_Response_Id__c/resp-1", {"Subject": "second"}) == 200
    case = sf.Case.get_by_custom_id("Survey_Response_Id__c", "resp-1")
    assert case["Subject"] == "second"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.Case.create({"Survey_Response_Id__c": "resp-1"})
    assert info.value.content[0]["errorCode"] == "DUPLICATE_VALUE"
    with pytest.raises(SalesforceMalformedRequest):
        sf.Case.upsert("Subject/x", {"Priority": "Low"})


def test_composite_sobjects_ordered_results_and_all_or_none(sandbox, sf):
    case = sf.Case.create({"Subject": "composite", "AccountId": an_account(sf)})
    good = {"attributes": {"type": "Task"}, "Subject": "ok", "WhatId": case["id"]}
    bad = {"attributes": {"type": "Task"}, "Subject": "bad", "Status": "Nope"}
    results = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": False, "records": [good, bad, good]}
    )
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    count = sf.query(format_soql("SELECT COUNT() FROM Task WHERE WhatId = {}", case["id"]))["totalSize"]
    rolled = sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": [good, bad]})
    assert rolled[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert (
        sf.query(format_soql("SELECT COUNT() FROM Task WHERE WhatId = {}", case["id"]))["totalSize"] == count
    )
    updates = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {"attributes": {"type": "Task"}, "Id": results[0]["id"], "Status": "Completed"},
                {"attributes": {"type": "Task"}, "Status": "Completed"},
            ]
        },
    )
    assert updates[0]["success"] and updates[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    with pytest.raises(SalesforceMalformedRequest) as info:
        sf.restful("composite/sobjects", method="POST", json={"records": [good] * 201})
    assert info.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    fetched = sf.restful(f"composite/sobjects/Task?ids={results[0]['id']}&fields=Id,IsClosed", method="GET")
    assert fetched[0]["IsClosed"] is True


def test_composite_upsert_created_flags_and_duplicates(sf):
    case = sf.Case.create({"Subject": "upserts", "AccountId": an_account(sf)})

    def task(key, subject):
        return {
            "attributes": {"type": "Task"},
            "Closed_Loop_Key__c": key,
            "Subject": subject,
            "WhatId": case["id"],
        }

    first = sf.restful(
        "composite/sobjects/Task/Closed_Loop_Key__c",
        method="PATCH",
        json={"allOrNone": False, "records": [task("k1", "a"), task("k2", "b")]},
    )
    assert [r["created"] for r in first] == [True, True]
    again = sf.restful(
        "composite/sobjects/Task/Closed_Loop_Key__c",
        method="PATCH",
        json={"records": [task("k1", "a2"), task("k3", "c"), task("k3", "d")]},
    )
    assert again[0] == {"id": first[0]["id"], "success": True, "errors": [], "created": False}
    assert [r["errors"][0]["statusCode"] for r in again[1:]] == ["DUPLICATE_EXTERNAL_ID"] * 2
    assert sf.Task.get(first[0]["id"])["Subject"] == "a2"


def test_describe_and_global_describe(sf):
    fields = {f["name"]: f for f in sf.Task.describe()["fields"]}
    assert fields["Closed_Loop_Key__c"]["externalId"] is True
    assert [p["value"] for p in fields["Status"]["picklistValues"]][2] == "Completed"
    assert {"Account", "Case", "Task"} <= {s["name"] for s in sf.describe()["sobjects"]}


def test_invalid_session_and_daily_limit(sandbox, sf):
    bad = Salesforce(
        session_id="nope", instance_url=sandbox.sf_instance_url, version="61.0", session=sandbox.session()
    )
    with pytest.raises(SalesforceExpiredSession) as info:
        bad.query("SELECT Id FROM Account")
    assert info.value.status == 401 and info.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    used = 15000 - sf.limits()["DailyApiRequests"]["Remaining"]
    sandbox.admin("POST", "config", {"sf_daily_limit": used + 1})
    try:
        sf.query("SELECT Id FROM User LIMIT 1")
        with pytest.raises(SalesforceRefusedRequest) as info:
            sf.query("SELECT Id FROM User LIMIT 1")
        assert info.value.status == 403 and info.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    finally:
        sandbox.admin("POST", "config", {"sf_daily_limit": 15000})


def test_provider_salesforce_hook_with_direct_session(sandbox, monkeypatch):
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    conn = json.loads(sandbox.airflow_conn_env()["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    assert conn["extra"]["instance_url"] == sandbox.sf_instance_url
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(conn))
    hook = SalesforceHook(
        salesforce_conn_id="salesforce_default", session_id=sandbox.sf_access_token, session=sandbox.session()
    )
    result = hook.make_query("SELECT Id, Email FROM User WHERE IsActive = true")
    assert result["totalSize"] == 9
    assert hook.describe_object("Case")["name"] == "Case"
    frame = hook.object_to_df(hook.make_query("SELECT Id, Name FROM Account LIMIT 5")["records"])
    assert len(frame) == 5
