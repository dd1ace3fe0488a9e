"""Salesforce ``POST /composite`` contract (REST API Developer Guide, "Send Multiple Requests Using
Composite"): 25 subrequests, 5 of them collections or queries, one API call, ordered results, allOrNone."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest
from simple_salesforce import format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest

BASE = "/services/data/v61.0"


def an_account(sf):
    return sf.query("SELECT Id FROM Account ORDER BY Name LIMIT 1")["records"][0]["Id"]


def post(sf, subs, all_or_none=False):
    body = {"allOrNone": all_or_none, "compositeRequest": subs}
    return sf.restful("composite", method="POST", json=body)["compositeResponse"]


def query_sub(ref, soql, resource="query"):
    return {"method": "GET", "url": f"{BASE}/{resource}/?q={quote_plus(soql)}", "referenceId": ref}


def tasks_sub(ref, case_id, subjects, key_prefix):
    records = [
        {
            "attributes": {"type": "Task"},
            "Subject": s,
            "WhatId": case_id,
            "Closed_Loop_Key__c": f"{key_prefix}{s}",
        }
        for s in subjects
    ]
    url = f"{BASE}/composite/sobjects/Task/Closed_Loop_Key__c"
    return {
        "method": "PATCH",
        "url": url,
        "referenceId": ref,
        "body": {"allOrNone": False, "records": records},
    }


def test_one_composite_call_counts_once_and_answers_in_order(sandbox, sf):
    case = sf.Case.create({"Subject": "composite call", "AccountId": an_account(sf)})
    sandbox.admin("POST", "counters/reset")
    subs = [
        tasks_sub(f"w{n}", case["id"], [f"{n}-{i}" for i in range(200)], "cmp-once:") for n in range(4)
    ] + [query_sub("q0", format_soql("SELECT Id FROM Task WHERE WhatId = {}", case["id"]))]
    subs += [
        {"method": "GET", "url": f"{BASE}/sobjects/Case/{case['id']}", "referenceId": f"g{i}"}
        for i in range(20)
    ]
    replies = post(sf, subs)
    assert [r["referenceId"] for r in replies] == [s["referenceId"] for s in subs]
    assert [len(r["body"]) for r in replies[:4]] == [200] * 4 and all(
        x["created"] for x in replies[0]["body"]
    )
    assert replies[4]["body"]["totalSize"] == 800  # later subrequests see earlier commits
    assert replies[5]["httpStatusCode"] == 200 and replies[5]["body"]["Id"] == case["id"]
    counters = sandbox.admin("GET", "counters")["sf"]
    assert counters["total"] == 1 and counters["endpoints"] == {"POST composite": 1}  # one API call


def test_limits_25_subrequests_and_5_collections_or_queries(sf):
    get = {"method": "GET", "url": f"{BASE}/limits", "referenceId": "x"}
    with pytest.raises(SalesforceMalformedRequest):
        post(sf, [{**get, "referenceId": f"r{i}"} for i in range(26)])
    queries = [query_sub(f"q{i}", "SELECT Id FROM User LIMIT 1") for i in range(3)]
    queries += [query_sub(f"a{i}", "SELECT Id FROM User LIMIT 1", "queryAll") for i in range(3)]
    with pytest.raises(SalesforceMalformedRequest) as info:
        post(sf, queries)  # 6 query operations
    assert "5" in info.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest):
        post(sf, [get, get])  # duplicate referenceId
    with pytest.raises(SalesforceMalformedRequest):
        post(sf, [{**get, "url": f"{BASE}/composite"}])  # no nested composite
    with pytest.raises(SalesforceMalformedRequest):
        post(sf, [{**get, "url": "/services/data/v61.0/sobjects/Case/@{ref.id}"}])


def test_failed_subrequests_and_all_or_none(sf):
    case = sf.Case.create({"Subject": "composite aon", "AccountId": an_account(sf)})
    bad = query_sub("bad", "SELECT Nope FROM Case")
    replies = post(sf, [tasks_sub("w", case["id"], ["a"], "cmp-aon:"), bad])
    assert replies[0]["httpStatusCode"] == 200 and replies[1]["httpStatusCode"] == 400
    assert replies[1]["body"][0]["errorCode"] == "INVALID_FIELD"
    replies = post(sf, [tasks_sub("w", case["id"], ["b"], "cmp-aon:"), bad], all_or_none=True)
    assert replies[0]["httpStatusCode"] == 400 and replies[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    soql = format_soql("SELECT Closed_Loop_Key__c FROM Task WHERE WhatId = {}", case["id"])
    assert [r["Closed_Loop_Key__c"] for r in sf.query(soql)["records"]] == ["cmp-aon:a"]  # b rolled back


def test_query_more_pages_and_query_all_through_composite(sf):
    case = sf.Case.create({"Subject": "composite paging", "AccountId": an_account(sf)})
    post(
        sf, [tasks_sub(f"w{n}", case["id"], [f"{n}-{i}" for i in range(200)], "cmp-page:") for n in range(5)]
    )
    post(sf, [tasks_sub("w", case["id"], [f"x-{i}" for i in range(200)], "cmp-page:")])
    sf.Task.delete(
        sf.query(format_soql("SELECT Id FROM Task WHERE Closed_Loop_Key__c = {}", "cmp-page:0-0"))["records"][
            0
        ]["Id"]
    )
    soql = format_soql("SELECT Id, IsDeleted FROM Task WHERE WhatId = {}", case["id"])
    paged = {**query_sub("live", soql), "httpHeaders": {"Sforce-Query-Options": "batchSize=1000"}}
    first = post(sf, [paged, query_sub("all", soql, "queryAll")])
    assert [r["body"]["totalSize"] for r in first] == [1199, 1200]
    live = first[0]["body"]
    assert not live["done"] and len(live["records"]) == 1000
    more = post(sf, [{"method": "GET", "url": live["nextRecordsUrl"], "referenceId": "m"}])
    assert len(more[0]["body"]["records"]) == 199 and more[0]["body"]["done"]
    deleted = [r for r in first[1]["body"]["records"] if r["IsDeleted"]]
    assert len(deleted) == 1


def test_soql_longer_than_100000_characters_is_rejected(sf):
    ids = [f"500{i:015d}" for i in range(5000)]
    soql = format_soql("SELECT Id FROM Case WHERE Id IN {}", ids)
    assert len(soql) > 100_000
    (reply,) = post(sf, [query_sub("long", soql)])
    assert reply["httpStatusCode"] == 400 and reply["body"][0]["errorCode"] == "MALFORMED_QUERY"
