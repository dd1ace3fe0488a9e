"""ClosedLoopSalesforceHook: direct session, escaped SOQL, collections, retries, typed errors, secrecy."""

from __future__ import annotations

import json
import logging
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from closed_loop.hooks.errors import (
    InsecureEndpoint,
    SalesforceApiError,
    SalesforceBudgetExhausted,
    SalesforceSessionExpired,
)
from closed_loop.hooks.salesforce import ClosedLoopSalesforceHook

TOKEN = "00Dtest!AQ0AQFakeSessionToken.x9Zk2"
INSTANCE = "https://org.example.com:8443"
API = f"{INSTANCE}/services/data/v61.0"


@pytest.fixture
def ca_bundle(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return str(path)


@pytest.fixture
def hook(monkeypatch, ca_bundle):
    extra = {"access_token": TOKEN, "instance_url": INSTANCE, "ca_bundle": ca_bundle, "timeout": 12}
    monkeypatch.setenv(
        "AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps({"conn_type": "salesforce", "extra": extra})
    )
    h = ClosedLoopSalesforceHook()
    h.waits = []
    h.sleep = h.waits.append
    return h


def soql_of(request) -> str:
    return parse_qs(urlsplit(request.url).query)["q"][0]


def sf_error(code, status, message="failed"):
    return {"status_code": status, "json": [{"errorCode": code, "message": message}]}


def ok_results(batch):
    return [{"id": f"00T{i:015d}", "success": True, "errors": []} for i in range(len(batch))]


# -- connection -------------------------------------------------------------------------------------
def test_direct_session_from_the_connection(hook, ca_bundle):
    with mock.patch("closed_loop.hooks.salesforce.mask_secret") as mask:
        sf = hook.get_conn()
    assert sf.base_url == f"{API}/"
    assert sf.headers["Authorization"] == f"Bearer {TOKEN}"
    assert sf.session.verify == ca_bundle
    assert hook.timeout == 12.0
    mask.assert_any_call(TOKEN)


def test_a_clear_text_instance_url_is_refused_before_any_call(monkeypatch, requests_mock):
    extra = {"access_token": TOKEN, "instance_url": "http://org.example.com"}
    monkeypatch.setenv("AIRFLOW_CONN_SF_PLAIN", json.dumps({"conn_type": "salesforce", "extra": extra}))
    with pytest.raises(InsecureEndpoint, match=r"instance_url must be an https:// URL") as err:
        ClosedLoopSalesforceHook("sf_plain").get_conn()
    assert TOKEN not in str(err.value)
    assert requests_mock.call_count == 0


def test_without_token_defers_to_the_provider_login(monkeypatch, ca_bundle):
    extra = {"security_token": "st-123456", "ca_bundle": ca_bundle}
    conn = {"conn_type": "salesforce", "login": "ops@example.com", "password": "pw-123456", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_SF_LOGIN", json.dumps(conn))
    hook = ClosedLoopSalesforceHook("sf_login")
    with mock.patch("airflow.providers.salesforce.hooks.salesforce.Salesforce") as provider_sf:
        provider_sf.return_value.session_id = "sess-from-login"
        assert hook.get_conn() is provider_sf.return_value
    kwargs = provider_sf.call_args.kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["security_token"]) == (
        "ops@example.com",
        "pw-123456",
        "st-123456",
    )
    assert kwargs["session"].verify == ca_bundle  # our session, CA bundle included
    assert hook._on_response in kwargs["session"].hooks["response"]


def test_api_usage_limits_and_test_connection(hook, requests_mock):
    limits = {"DailyApiRequests": {"Max": 5000, "Remaining": 4982}}
    requests_mock.get(f"{API}/limits/", json=limits, headers={"Sforce-Limit-Info": "api-usage=18/5000"})
    assert hook.api_usage() is None
    assert hook.limits() == limits
    assert hook.api_usage() == (18, 5000)
    assert hook.calls_made == 1


def test_test_connection_needs_no_setup_permission(hook, requests_mock):
    """Issue 13 item 4: /limits needs "View Setup and Configuration"; describeGlobal needs API access."""
    usage = {"Sforce-Limit-Info": "api-usage=18/5000"}
    requests_mock.get(f"{API}/sobjects/", json={"sobjects": []}, headers=usage)
    assert hook.test_connection() == (True, "Connection successfully tested (API requests left today: 4982)")
    assert [r.path for r in requests_mock.request_history] == ["/services/data/v61.0/sobjects/"]


def test_test_connection_failure_hides_the_token(hook, requests_mock):
    requests_mock.get(f"{API}/sobjects/", **sf_error("INVALID_SESSION_ID", 401, f"Session {TOKEN} expired"))
    ok, message = hook.test_connection()
    assert not ok and "INVALID_SESSION_ID" in message and TOKEN not in message


# -- SOQL -------------------------------------------------------------------------------------------
def test_query_escapes_hostile_values(hook, requests_mock):
    requests_mock.get(f"{API}/query/", json={"totalSize": 0, "done": True, "records": []})
    hostile = "O'Brien \\' OR Name != '"
    list(hook.query("SELECT Id FROM Account WHERE Name = {name}", name=hostile))
    assert soql_of(requests_mock.last_request) == (
        "SELECT Id FROM Account WHERE Name = 'O\\'Brien \\\\\\' OR Name != \\''"
    )


def test_query_pages_lazily_and_strips_attributes(hook, requests_mock):
    attrs = {"type": "Account", "url": "/x"}
    manager = {"attributes": {"type": "User"}, "Username": "tsm1@closedloop.example"}
    first = {
        "totalSize": 3,
        "done": False,
        "nextRecordsUrl": "/services/data/v61.0/query/01gXX-2000",
        "records": [
            {"attributes": attrs, "Id": "001A", "Transition_Success_Manager__r": manager},
            {"attributes": attrs, "Id": "001B", "Transition_Success_Manager__r": None},
        ],
    }
    second = {"totalSize": 3, "done": True, "records": [{"attributes": attrs, "Id": "001C"}]}
    requests_mock.get(f"{API}/query/", json=first)
    more = requests_mock.get(f"{API}/query/01gXX-2000", json=second)
    records = hook.query("SELECT Id, Transition_Success_Manager__r.Username FROM Account")
    assert next(records) == {
        "Id": "001A",
        "Transition_Success_Manager__r": {"Username": "tsm1@closedloop.example"},
    }
    assert not more.called  # lazy: the second page is fetched only when needed
    assert [r["Id"] for r in records] == ["001B", "001C"]
    assert more.called


def test_query_in_chunks_keeps_urls_short(hook, requests_mock):
    requests_mock.get(f"{API}/query/", json={"totalSize": 0, "done": True, "records": []})
    ids = [f"001{i:015d}" for i in range(1000)] + ["001000000000000000"]  # one duplicate
    list(hook.query_in_chunks("SELECT Id FROM Contact WHERE AccountId IN {values}", ids, chunk=300))
    assert requests_mock.call_count == 4  # 1000 distinct ids / 300
    seen = [
        v for r in requests_mock.request_history for v in soql_of(r).split("IN (")[1].strip(")").split(",")
    ]
    assert len(seen) == 1000
    requests_mock.reset_mock()
    list(hook.query_in_chunks("SELECT Id FROM Contact WHERE AccountId IN {values}", ids, chunk=5000))
    assert requests_mock.call_count > 1
    assert all(len(r.url) < 16_000 for r in requests_mock.request_history)


def test_query_is_retried_on_5xx(hook, requests_mock):
    ok = {"json": {"totalSize": 1, "done": True, "records": [{"Id": "001A"}]}}
    requests_mock.get(
        f"{API}/query/", [sf_error("SERVER_UNAVAILABLE", 503), {"exc": requests.ReadTimeout}, ok]
    )
    assert list(hook.query("SELECT Id FROM Account")) == [{"Id": "001A"}]
    assert requests_mock.call_count == 3 and len(hook.waits) == 2
    assert requests_mock.last_request.timeout == 12.0


# -- sObject Collections through Composite ----------------------------------------------------------
COMPOSITE = f"{API}/composite"
SUB_COLLECTION = "/services/data/v61.0/composite/sobjects"


def composite(per_sub):
    """A /composite responder: ``per_sub(subrequest) -> (status, body)`` for each subrequest."""

    def reply(request, context):
        items = []
        for sub in request.json()["compositeRequest"]:
            status, body = per_sub(sub)
            items.append(
                {"body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": sub["referenceId"]}
            )
        return {"compositeResponse": items}

    return reply


def all_ok(sub):
    return 200, ok_results(sub["body"]["records"])


def test_create_2450_records_takes_3_calls_of_5_collections(hook, requests_mock):
    requests_mock.post(COMPOSITE, json=composite(all_ok))
    records = [{"Subject": f"Step {i}", "WhatId": "001A"} for i in range(2450)]
    results = hook.create_records("Task", records)
    bodies = [r.json() for r in requests_mock.request_history]
    # documented: up to 5 sObject Collections (200 records each) per composite call, one API call each
    assert [[len(s["body"]["records"]) for s in b["compositeRequest"]] for b in bodies] == [
        [200] * 5,
        [200] * 5,
        [200, 200, 50],
    ]
    assert all(
        s["method"] == "POST" and s["url"] == SUB_COLLECTION for b in bodies for s in b["compositeRequest"]
    )
    assert bodies[0]["allOrNone"] is False and bodies[0]["compositeRequest"][0]["body"]["allOrNone"] is False
    assert bodies[2]["compositeRequest"][-1]["body"]["records"][-1] == {
        "attributes": {"type": "Task"},
        "Subject": "Step 2449",
        "WhatId": "001A",
    }
    assert len(results) == 2450 and all(r["success"] and r["created"] for r in results)
    assert "attributes" not in records[0]  # input not mutated


def test_per_record_errors_come_back_in_order(hook, requests_mock):
    error = {
        "statusCode": "STRING_TOO_LONG",
        "message": "Subject: data value too large",
        "fields": ["Subject"],
    }
    reply = [
        {"id": "00T1", "success": True, "errors": []},
        {"id": None, "success": False, "errors": [error]},
        {"id": "00T3", "success": True, "errors": []},
    ]
    requests_mock.post(COMPOSITE, json=composite(lambda sub: (200, reply)))
    results = hook.create_records("Task", [{"Subject": "a"}, {"Subject": "b" * 300}, {"Subject": "c"}])
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1] == {"id": None, "success": False, "created": False, "errors": [error]}
    assert results[2]["id"] == "00T3"


def test_a_failed_subrequest_fails_only_its_records(hook, requests_mock):
    def per_sub(sub):
        if sub["referenceId"] == "c1":
            return 400, [{"errorCode": "EXCEEDED_ID_LIMIT", "message": "record limit reached"}]
        return all_ok(sub)

    requests_mock.post(COMPOSITE, json=composite(per_sub))
    results = hook.create_records("Task", [{"Subject": str(i)} for i in range(450)])
    assert [r["success"] for r in results] == [True] * 200 + [False] * 200 + [True] * 50
    assert results[200]["errors"] == [
        {"statusCode": "EXCEEDED_ID_LIMIT", "message": "record limit reached", "fields": []}
    ]


def test_upsert_by_external_id_with_subrequest_headers(hook, requests_mock):
    reply = [
        {"id": "5001", "success": True, "created": True, "errors": []},
        {"id": "5002", "success": True, "created": False, "errors": []},
    ]
    route = requests_mock.post(COMPOSITE, json=composite(lambda sub: (200, reply)))
    records = [
        {"Survey_Response_Id__c": "r1", "Subject": "x"},
        {"Survey_Response_Id__c": "r2", "Subject": "y"},
    ]
    headers = {"Sforce-Auto-Assign": "FALSE"}
    results = hook.upsert_records("Case", "Survey_Response_Id__c", records, headers=headers)
    assert [(r["id"], r["created"]) for r in results] == [("5001", True), ("5002", False)]
    (sub,) = route.last_request.json()["compositeRequest"]
    assert (sub["method"], sub["url"]) == ("PATCH", f"{SUB_COLLECTION}/Case/Survey_Response_Id__c")
    assert sub["body"]["records"][0]["attributes"] == {"type": "Case"}
    assert sub["httpHeaders"] == headers


def test_update_requires_ids_and_uses_patch(hook, requests_mock):
    with pytest.raises(ValueError, match="lack Id"):
        hook.update_records("Case", [{"Status": "Closed"}])
    route = requests_mock.post(
        COMPOSITE, json=composite(lambda sub: (200, [{"id": "5001", "success": True, "errors": []}]))
    )
    assert hook.update_records("Case", [{"Id": "5001", "Status": "Closed"}])[0]["created"] is False
    assert route.last_request.json()["compositeRequest"][0]["method"] == "PATCH"


def test_names_are_validated(hook):
    with pytest.raises(ValueError, match="API name"):
        hook.upsert_records("Case/../x", "Survey_Response_Id__c", [{"Survey_Response_Id__c": "r"}])


def test_upsert_is_retried_but_create_is_not(hook, requests_mock):
    ok = {"json": composite(lambda sub: (200, [{}]))}
    requests_mock.post(COMPOSITE, [{"exc": requests.ReadTimeout}, sf_error("UNKNOWN_EXCEPTION", 500), ok])
    hook.upsert_records("Task", "Closed_Loop_Key__c", [{"Closed_Loop_Key__c": "k"}])
    assert requests_mock.call_count == 3

    requests_mock.post(COMPOSITE, exc=requests.ReadTimeout)
    with pytest.raises(SalesforceApiError) as info:
        hook.create_records("Task", [{"Subject": "a"}])
    assert info.value.code == "TIMEOUT" and requests_mock.call_count == 4  # one create attempt only

    requests_mock.post(COMPOSITE, **sf_error("UNKNOWN_EXCEPTION", 500))
    with pytest.raises(SalesforceApiError) as info:
        hook.create_records("Task", [{"Subject": "a"}])
    assert (info.value.code, info.value.status) == (
        "UNKNOWN_EXCEPTION",
        500,
    ) and requests_mock.call_count == 5


def test_create_is_retried_when_the_connection_never_opened(hook, requests_mock):
    ok = composite(lambda sub: (200, [{"id": "00T1", "success": True}]))
    requests_mock.post(COMPOSITE, [{"exc": requests.ConnectTimeout}, {"json": ok}])
    assert hook.create_records("Task", [{"Subject": "a"}])[0]["id"] == "00T1"


def test_session_expired_is_typed_and_not_retried(hook, requests_mock):
    requests_mock.get(f"{API}/query/", **sf_error("INVALID_SESSION_ID", 401, "Session expired or invalid"))
    with pytest.raises(SalesforceSessionExpired) as info:
        list(hook.query("SELECT Id FROM Account"))
    assert info.value.code == "INVALID_SESSION_ID" and requests_mock.call_count == 1


def test_budget_exhausted_mid_batch_keeps_finished_results(hook, requests_mock):
    requests_mock.post(
        COMPOSITE,
        [
            {"json": composite(all_ok)},
            sf_error("REQUEST_LIMIT_EXCEEDED", 403, "TotalRequests Limit exceeded."),
        ],
    )
    with pytest.raises(SalesforceBudgetExhausted) as info:
        hook.create_records("Task", [{"Subject": str(i)} for i in range(1450)])
    assert len(info.value.completed) == 1000 and requests_mock.call_count == 2


def test_other_errors_carry_code_and_message(hook, requests_mock):
    requests_mock.post(COMPOSITE, **sf_error("INVALID_FIELD", 400, "No such column 'Foo__c'"))
    with pytest.raises(SalesforceApiError) as info:
        hook.create_records("Task", [{"Foo__c": 1}])
    assert type(info.value) is SalesforceApiError
    assert (info.value.code, info.value.message, info.value.status) == (
        "INVALID_FIELD",
        "No such column 'Foo__c'",
        400,
    )


def test_wrong_result_count_is_an_error(hook, requests_mock):
    requests_mock.post(COMPOSITE, json={"compositeResponse": []})
    with pytest.raises(SalesforceApiError, match="BAD_RESPONSE"):
        hook.create_records("Task", [{"Subject": "a"}, {"Subject": "b"}])


# -- queries through Composite ----------------------------------------------------------------------
def _query_sub(sub):
    """Each query answers 2 pages of 1 record; the record names its statement."""
    url = sub["url"]
    if "/query/LOC" in url:
        return 200, {
            "done": True,
            "totalSize": 2,
            "records": [{"attributes": {}, "Id": url.rsplit("-", 1)[1]}],
        }
    soql = parse_qs(urlsplit(url).query)["q"][0]
    n = soql.rsplit(" ", 1)[1]
    more = f"/services/data/v61.0/query/LOC-{n}b"
    return 200, {
        "done": False,
        "totalSize": 2,
        "nextRecordsUrl": more,
        "records": [{"attributes": {}, "Id": n}],
    }


def test_query_many_packs_5_query_operations_per_call(hook, requests_mock):
    route = requests_mock.post(COMPOSITE, json=composite(_query_sub))
    soqls = [f"SELECT Id FROM Case LIMIT {i}" for i in range(7)]
    rows = hook.query_many(soqls, include_deleted=True)
    assert rows == [[{"Id": str(i)}, {"Id": f"{i}b"}] for i in range(7)]
    subs = [r.json()["compositeRequest"] for r in route.request_history]
    # 7 first pages + 7 next pages = 14 query operations, at most 5 per call: 3 calls
    assert [len(s) for s in subs] == [5, 5, 4]
    assert subs[0][0]["url"].startswith("/services/data/v61.0/queryAll/?q=")


def test_query_ids_binds_2000_ids_per_statement(hook, requests_mock):
    seen = []

    def per_sub(sub):
        soql = parse_qs(urlsplit(sub["url"]).query)["q"][0]
        seen.append(soql)
        return 200, {"done": True, "totalSize": 0, "records": []}

    requests_mock.post(COMPOSITE, json=composite(per_sub))
    ids = [f"500{i:015d}" for i in range(4500)]
    hook.query_ids("SELECT Id FROM Case WHERE Id IN {values}", ids + ids[:10])
    assert [s.count("'500") for s in seen] == [2000, 2000, 500]
    assert requests_mock.call_count == 1 and all(len(s) <= 100_000 for s in seen)


def test_a_failed_query_subrequest_raises_typed(hook, requests_mock):
    bad = [{"errorCode": "MALFORMED_QUERY", "message": "unexpected token"}]
    requests_mock.post(COMPOSITE, json=composite(lambda sub: (400, bad)))
    with pytest.raises(SalesforceApiError) as info:
        hook.query_many(["SELECT Nope FROM Case"])
    assert (info.value.code, info.value.status) == ("MALFORMED_QUERY", 400)


# -- secrecy ----------------------------------------------------------------------------------------
def test_token_never_in_logs_or_exceptions(hook, requests_mock, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    requests_mock.get(
        f"{API}/query/", [sf_error("SERVER_UNAVAILABLE", 503), {"exc": requests.ConnectionError}]
    )
    with pytest.raises(SalesforceApiError) as first:
        list(hook.query("SELECT Id FROM Account"))
    requests_mock.post(COMPOSITE, **sf_error("INVALID_SESSION_ID", 401, "Session expired or invalid"))
    with pytest.raises(SalesforceSessionExpired) as second:
        hook.create_records("Task", [{"Subject": "a"}])
    logs = caplog.text + "".join(capsys.readouterr())
    assert "retrying in" in logs
    for text in (logs, str(first.value), str(second.value), repr(first.value.__cause__)):
        assert TOKEN not in text


# -- assignment rules (issue 13 item 2) -------------------------------------------------------------
def test_every_collection_write_sends_auto_assign_false(hook, requests_mock):
    route = requests_mock.post(COMPOSITE, json=composite(all_ok))
    hook.upsert_records("Task", "Closed_Loop_Key__c", [{"Closed_Loop_Key__c": "k"}])
    hook.create_records("Task", [{"Subject": "s"}])
    hook.update_records("Task", [{"Id": "00T1", "Subject": "s"}])
    assert [r.headers.get("Sforce-Auto-Assign") for r in route.request_history] == ["FALSE"] * 3
    subs = [s for r in route.request_history for s in r.json()["compositeRequest"]]
    assert [s["httpHeaders"]["Sforce-Auto-Assign"] for s in subs] == ["FALSE"] * 3


def test_a_case_the_org_re_owns_anyway_is_reported_failed(hook, requests_mock):
    """A trigger or flow can still re-own a Case after the write: the hook reads OwnerId back."""
    written = [{"id": "5001", "success": True, "created": True}, {"id": "5002", "success": True}]
    owners = {"totalSize": 2, "done": True, "records": [{"Id": "5001", "OwnerId": "005DOI"},
                                                        {"Id": "5002", "OwnerId": "005QUEUE"}]}  # fmt: skip

    def per_sub(sub):
        return (200, owners) if sub["method"] == "GET" else (200, written)

    route = requests_mock.post(COMPOSITE, json=composite(per_sub))
    rows = [{"Survey_Response_Id__c": f"r{i}", "OwnerId": "005DOI"} for i in (1, 2)]
    first, second = hook.upsert_records("Case", "Survey_Response_Id__c", rows)
    (read,) = route.last_request.json()["compositeRequest"]
    assert read["method"] == "GET" and "OwnerId" in read["url"] and "5002" in read["url"]
    assert first["success"] and not second["success"]
    assert second["id"] == "5002" and second["errors"][0]["statusCode"] == "OWNER_REASSIGNED"
    assert "005QUEUE" in second["errors"][0]["message"]
