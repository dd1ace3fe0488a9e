"""Every fault switch of POST /_sandbox/faults, seen through the real clients."""

from __future__ import annotations

import json
import time

import pytest
import requests
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceGeneralError

from sandbox.seed import MAIN_TITLE


def sm_get(sandbox, sm, path, **params):
    return sm.get(f"{sandbox.sm_base_url}/{path}", params=params, timeout=30)


def test_unknown_fault_is_rejected(sandbox):
    with pytest.raises(requests.HTTPError):
        sandbox.admin("POST", "faults", {"no_such_fault": 1})


def test_sm_429_burst_with_and_without_headers(sandbox, sm):
    sandbox.admin("POST", "faults", {"sm_429_burst": 2})
    first, second, third = (sm_get(sandbox, sm, "users/me") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.json()["error"]["id"] == "1040"
    assert first.headers["X-Ratelimit-App-Global-Minute-Remaining"] == "0"
    sandbox.admin("POST", "faults", {"sm_429_burst": 1, "sm_429_without_headers": True})
    bare = sm_get(sandbox, sm, "users/me")
    assert bare.status_code == 429 and not any(h.lower().startswith("x-ratelimit") for h in bare.headers)
    assert sandbox.admin("GET", "faults")["faults"].get("sm_429_burst") is None


def test_sm_5xx_alternates_500_and_503(sandbox, sm):
    sandbox.admin("POST", "faults", {"sm_5xx": 2})
    statuses = [sm_get(sandbox, sm, "users/me") for _ in range(3)]
    assert [r.status_code for r in statuses] == [500, 503, 200]
    assert [r.json()["error"]["id"] for r in statuses[:2]] == ["1050", "1051"]


def test_sf_5xx(sandbox, sf):
    sandbox.admin("POST", "faults", {"sf_5xx": 2})
    for status in (500, 503):
        with pytest.raises(SalesforceGeneralError) as info:
            sf.query("SELECT Id FROM User")
        assert info.value.status == status
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 9


def test_sf_expire_session_bool_and_count(sandbox, sf):
    sandbox.admin("POST", "faults", {"sf_expire_session": True})
    for _ in range(2):
        with pytest.raises(SalesforceExpiredSession):
            sf.query("SELECT Id FROM User")
    sandbox.admin("DELETE", "faults")
    sandbox.admin("POST", "faults", {"sf_expire_session": 1})
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM User")
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 9


def test_sf_request_limit_exceeded_switch(sandbox, sf):
    sandbox.admin("POST", "faults", {"sf_request_limit_exceeded": True})
    response = sandbox.session().get(
        f"{sandbox.sf_instance_url}/services/data/v61.0/limits",
        headers={"Authorization": f"Bearer {sandbox.sf_access_token}"},
    )
    assert response.status_code == 403 and response.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"


def test_sf_collection_fail_indexes_is_one_shot(sandbox, sf):
    case = sf.Case.create({"Subject": "faults"})
    records = [{"attributes": {"type": "Task"}, "Subject": f"t{i}", "WhatId": case["id"]} for i in range(5)]
    sandbox.admin("POST", "faults", {"sf_collection_fail_indexes": [1, 3]})
    results = sf.restful("composite/sobjects", method="POST", json={"records": records})
    assert [r["success"] for r in results] == [True, False, True, False, True]
    assert results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert all(
        r["success"] for r in sf.restful("composite/sobjects", method="POST", json={"records": records})
    )


@pytest.mark.parametrize("system", ["sm", "sf"])
@pytest.mark.parametrize("kind", ["malformed_json", "truncated_json"])
def test_broken_json_bodies(sandbox, sm, system, kind):
    sandbox.admin("POST", "faults", {f"{system}_{kind}": 1})
    if system == "sm":

        def call():
            return sm_get(sandbox, sm, "surveys")
    else:

        def call():
            return sandbox.session().get(
                f"{sandbox.sf_instance_url}/services/data/v61.0/limits",
                headers={"Authorization": f"Bearer {sandbox.sf_access_token}"},
            )

    broken = call()
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.text)
    assert call().json()


def test_slow_responses(sandbox, sm):
    sandbox.admin("POST", "faults", {"slow_ms": 400})
    started = time.monotonic()
    assert sm_get(sandbox, sm, "users/me").ok
    assert time.monotonic() - started >= 0.4
    with pytest.raises(requests.Timeout):
        sm.get(f"{sandbox.sm_base_url}/users/me", timeout=0.1)


def test_sm_revoke_token(sandbox, sm):
    sandbox.admin("POST", "faults", {"sm_revoke_token": True})
    response = sm_get(sandbox, sm, "users/me")
    assert response.status_code == 401 and response.json()["error"]["id"] == "1013"


def test_sm_unknown_choice_ids(sandbox, sm, sf):
    survey = [s for s in sm_get(sandbox, sm, "surveys").json()["data"] if s["title"] == MAIN_TITLE][0]["id"]
    base = sandbox.sm_base_url
    collector = sm.post(f"{base}/surveys/{survey}/collectors", json={"type": "email"}).json()
    message = sm.post(f"{base}/collectors/{collector['id']}/messages", json={"type": "invite"}).json()
    emails = [r["Email"] for r in sf.query("SELECT Email FROM Contact LIMIT 20")["records"]]
    sm.post(
        f"{base}/collectors/{collector['id']}/messages/{message['id']}/recipients/bulk",
        json={"contacts": [{"email": e} for e in emails]},
    )
    sm.post(f"{base}/collectors/{collector['id']}/messages/{message['id']}/send", json={})
    sandbox.admin("POST", "clock", {"advance_days": 10})
    details = sm_get(sandbox, sm, f"surveys/{survey}/details").json()
    known = {c["id"] for q in details["pages"][0]["questions"] for c in q["answers"].get("choices", [])}

    def choice_ids(data):
        return [
            a["choice_id"]
            for r in data
            for q in r["pages"][0]["questions"]
            for a in q["answers"]
            if "choice_id" in a
        ]

    clean = sm_get(sandbox, sm, f"collectors/{collector['id']}/responses/bulk").json()["data"]
    assert clean and set(choice_ids(clean)) <= known
    sandbox.admin("POST", "faults", {"sm_unknown_choice_ids": True})
    dirty = sm_get(sandbox, sm, f"collectors/{collector['id']}/responses/bulk").json()["data"]
    assert sum(1 for c in choice_ids(dirty) if c not in known) == len(dirty)
