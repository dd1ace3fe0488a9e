"""Contract tests: the sandbox rejects what the real APIs document as errors, driven through the project's
real clients (SurveyMonkeyHook, ClosedLoopSalesforceHook, simple-salesforce). Each test names its rule in
sandbox/README.md's rules table; expected values come from the documentation, not from the sandbox."""

from __future__ import annotations

import pytest
from simple_salesforce import format_soql

from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
from closed_loop.hooks.errors import SurveyMonkeyBadRequest, SurveyMonkeyPermissionDenied
from closed_loop.playbook import load_playbook
from closed_loop.survey_messages import MESSAGE_TEMPLATES, render_message
from sandbox.seed import MAIN_TITLE
from sandbox.testing import VALID_MESSAGE_BODY

# what the four documented merge tags are (v3 docs, POST /collectors/{id}/messages body_text/body_html)
TAGS = ("[SurveyLink]", "[OptOutLink]", "[PrivacyLink]", "[FooterLink]")
# the bodies the project sent before issue 13 (a survey link and a bare opt-out link)
OLD_INVITE = "<p>Thank you.</p><p>[SurveyLink]</p><p>[OptOutLink]</p>"


@pytest.fixture
def hooks(sandbox, monkeypatch):
    for name, value in sandbox.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    return SurveyMonkeyHook(), ClosedLoopSalesforceHook()


@pytest.fixture
def collector(hooks):
    sm, _ = hooks
    survey = sm.find_survey(MAIN_TITLE)
    return sm.get_or_create_email_collector(survey["id"], "contract rules")["id"]


def user_id(sf, username):
    return sf.query(format_soql("SELECT Id FROM User WHERE Username = {}", username))["records"][0]["Id"]


# -- SurveyMonkey: message bodies -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "missing"),
    [
        (OLD_INVITE, ["[PrivacyLink]", "[FooterLink]"]),
        ("<p>[SurveyLink]</p>", ["[OptOutLink]", "[PrivacyLink]", "[FooterLink]"]),
        (VALID_MESSAGE_BODY.replace("[FooterLink]", ""), ["[FooterLink]"]),
    ],
)
def test_message_body_without_the_required_tags_is_rejected(hooks, collector, body, missing):
    sm, _ = hooks
    with pytest.raises(SurveyMonkeyBadRequest) as caught:
        sm.create_message(collector, "invite", "Subject", body)
    assert caught.value.status == 400 and caught.value.error_id == "1002"
    assert all(f"missing {tag}" in caught.value.message for tag in missing)


def test_unlabelled_opt_out_and_privacy_links_are_rejected(hooks, collector):
    sm, _ = hooks
    bare = "<p>[SurveyLink]</p><p>[PrivacyLink] [OptOutLink]</p><p>[FooterLink]</p>"
    with pytest.raises(SurveyMonkeyBadRequest) as caught:
        sm.create_message(collector, "invite", "Subject", bare)
    assert "[OptOutLink] is not clearly labelled" in caught.value.message
    assert "[PrivacyLink] is not clearly labelled" in caught.value.message


def test_labelled_plain_text_body_is_accepted(hooks, collector):
    sm, _ = hooks
    text = "Survey: [SurveyLink]\nPrivacy policy: [PrivacyLink]\nUnsubscribe: [OptOutLink]\n[FooterLink]"
    path = f"/collectors/{collector}/messages"
    message = sm.request("POST", path, json={"type": "invite", "subject": "s", "body_text": text})
    assert message["status"] == "not_sent"


@pytest.mark.parametrize("kind", sorted(MESSAGE_TEMPLATES))
def test_the_project_message_templates_are_accepted(hooks, collector, kind):
    sm, _ = hooks
    subject, body = render_message(kind, load_playbook())
    assert all(tag in body for tag in TAGS)
    message = sm.create_message(collector, "invite", subject, body)
    assert message["status"] == "not_sent" and message["body_html"] == body


# -- SurveyMonkey: scopes -----------------------------------------------------------------------------
def test_a_missing_scope_is_403_1014_and_headers_show_the_grant(sandbox, hooks):
    sm, _ = hooks
    survey_id = sm.find_survey(MAIN_TITLE)["id"]
    granted = sandbox.admin("GET", "org")["sm_scopes"]
    sandbox.admin("POST", "org", {"sm_scopes": [s for s in granted if s != "collectors_write"]})
    try:
        with pytest.raises(SurveyMonkeyPermissionDenied) as caught:
            sm.request("POST", f"/surveys/{survey_id}/collectors", json={"type": "email", "name": "x"})
        assert caught.value.status == 403 and caught.value.error_id == "1014"
        reply = sandbox.sm_session().get(f"{sandbox.sm_base_url}/surveys", timeout=10)
        assert "collectors_write" not in reply.headers["X-OAuth-Scopes-Granted"].split(",")
        assert "collectors_write" in reply.headers["X-OAuth-Scopes-Available"].split(",")
        sm.request("GET", f"/surveys/{survey_id}/collectors")  # View Collectors is still granted
    finally:
        sandbox.admin("POST", "org", {"sm_scopes": granted})


@pytest.mark.parametrize(
    ("scope", "path"),
    [
        ("users_read", "/users/me"),
        ("surveys_read", "/surveys"),
        ("responses_read_detail", "/surveys/{survey}/responses/bulk"),
    ],
)
def test_each_read_needs_its_documented_scope(sandbox, hooks, scope, path):
    sm, _ = hooks
    survey_id = sm.find_survey(MAIN_TITLE)["id"]
    granted = sandbox.admin("GET", "org")["sm_scopes"]
    sandbox.admin("POST", "org", {"sm_scopes": [s for s in granted if s != scope]})
    try:
        with pytest.raises(SurveyMonkeyPermissionDenied, match=scope):
            sm.request("GET", path.format(survey=survey_id))
    finally:
        sandbox.admin("POST", "org", {"sm_scopes": granted})


@pytest.mark.parametrize(
    ("scope", "method", "path"),
    [("webhooks_read", "GET", "/webhooks"), ("webhooks_write", "POST", "/webhooks")],
)
def test_webhook_endpoints_need_the_documented_webhook_scopes(sandbox, hooks, scope, method, path):
    """View Webhooks / Create-Modify Webhooks (v3 docs, _webhooks.md "Available Methods")."""
    sm, _ = hooks
    granted = sandbox.admin("GET", "org")["sm_scopes"]
    sandbox.admin("POST", "org", {"sm_scopes": [s for s in granted if s != scope]})
    body = {"name": "x", "event_type": "response_completed", "object_type": "survey", "object_ids": []}
    try:
        with pytest.raises(SurveyMonkeyPermissionDenied, match=scope) as caught:
            sm.request(method, path, **({"json": body} if method == "POST" else {}))
        assert caught.value.status == 403 and caught.value.error_id == "1014"
    finally:
        sandbox.admin("POST", "org", {"sm_scopes": granted})
    sm.request("GET", "/webhooks")  # granted again: allowed


# -- SurveyMonkey: page caps ----------------------------------------------------------------------------
def test_page_size_caps(hooks):
    sm, _ = hooks
    survey_id = sm.find_survey(MAIN_TITLE)["id"]
    with pytest.raises(SurveyMonkeyBadRequest) as caught:  # responses/bulk: "Max of 100 allowed per page"
        sm.request("GET", f"/surveys/{survey_id}/responses/bulk", params={"per_page": 101})
    assert caught.value.error_id == "1003"
    with pytest.raises(SurveyMonkeyBadRequest):  # "Max Page Size: 1000 resources, unless otherwise specified"
        sm.request("GET", "/surveys", params={"per_page": 1001})
    assert sm.request("GET", "/surveys", params={"per_page": 1000})["per_page"] == 1000


# -- Salesforce: the default Case assignment rule -------------------------------------------------------
def test_case_written_without_the_header_is_re_owned_by_the_assignment_rule(sandbox, sf):
    doi = user_id(sf, "doi@closedloop.example")
    rule_owner = user_id(sf, sandbox.admin("GET", "org")["case_assignment_rule"]["owner_username"])
    assert rule_owner != doi
    account = sf.query("SELECT Id FROM Account ORDER BY Name LIMIT 1")["records"][0]["Id"]
    plain = sf.Case.create({"Subject": "no header", "AccountId": account, "OwnerId": doi})
    assert sf.Case.get(plain["id"])["OwnerId"] == rule_owner  # the header defaults to TRUE
    kept = sf.Case.create(
        {"Subject": "header", "AccountId": account, "OwnerId": doi}, headers={"Sforce-Auto-Assign": "false"}
    )
    assert sf.Case.get(kept["id"])["OwnerId"] == doi  # FALSE is not case-sensitive
    sf.Case.update(kept["id"], {"Subject": "updated without the header"})
    assert sf.Case.get(kept["id"])["OwnerId"] == rule_owner  # rules apply to updates too
    # Tasks have no assignment rules
    task = sf.Task.create({"Subject": "t", "OwnerId": doi, "WhatId": kept["id"]})
    assert sf.Task.get(task["id"])["OwnerId"] == doi


def test_hook_case_upserts_keep_the_routed_owner(sandbox, sf, hooks):
    _, hook = hooks
    doi = user_id(sf, "doi@closedloop.example")
    rows = [{"Survey_Response_Id__c": f"contract-{i}", "Subject": "s", "OwnerId": doi} for i in range(3)]
    for _ in range(2):  # create, then update: neither is re-owned
        results = hook.upsert_records("Case", "Survey_Response_Id__c", rows)
        assert [r["success"] for r in results] == [True] * 3
        stored = {c["Id"]: c["OwnerId"] for c in sandbox.admin("GET", "records/Case")}
        assert {stored[r["id"]] for r in results} == {doi}


# -- Salesforce: restricted picklists and field lengths ------------------------------------------------
@pytest.mark.parametrize(
    ("sobject", "ext", "field", "value"),
    [
        ("Case", "Survey_Response_Id__c", "Status", "Open"),
        ("Case", "Survey_Response_Id__c", "Origin", "Survey"),
        ("Task", "Closed_Loop_Key__c", "Status", "Done"),
        ("Task", "Closed_Loop_Key__c", "Priority", "Urgent"),
    ],
)
def test_values_the_org_does_not_define_are_rejected(hooks, sobject, ext, field, value):
    _, hook = hooks
    (result,) = hook.upsert_records(sobject, ext, [{ext: f"pick-{field}-{value}", field: value}])
    assert not result["success"]
    assert result["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert result["errors"][0]["fields"] == [field]


def test_over_long_text_is_string_too_long(hooks):
    _, hook = hooks
    ok, long = hook.upsert_records(
        "Task",
        "Closed_Loop_Key__c",
        [
            {"Closed_Loop_Key__c": "len-255", "Subject": "x" * 255},
            {"Closed_Loop_Key__c": "len-256", "Subject": "x" * 256},
        ],
    )
    assert ok["success"] and not long["success"]
    assert long["errors"][0]["statusCode"] == "STRING_TOO_LONG"


# -- Salesforce: sObject Collections cap -----------------------------------------------------------------
def test_collections_take_at_most_200_records(sandbox, sf, hooks):
    records = [{"attributes": {"type": "Task"}, "Subject": f"cap {i}"} for i in range(201)]
    reply = sandbox.session().post(
        f"{sandbox.sf_instance_url}/services/data/v61.0/composite/sobjects",
        json={"allOrNone": False, "records": records},
        headers={"Authorization": f"Bearer {sandbox.sf_access_token}"},
        timeout=30,
    )
    assert reply.status_code == 400 and reply.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    _, hook = hooks
    before = hook.calls_made
    rows = [{"Closed_Loop_Key__c": f"cap-{i}", "Subject": "s"} for i in range(201)]
    assert all(r["success"] for r in hook.upsert_records("Task", "Closed_Loop_Key__c", rows))
    # the hook splits 201 records into collections of 200 and 1, sent in one Composite call (up to 5
    # collections per call: REST API Developer Guide, "Composite")
    assert hook.calls_made - before == 1
