"""SurveyMonkeyHook: connection parsing, paging, typed errors, retries, budget guard, secrecy."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from closed_loop.hooks import errors
from closed_loop.hooks.surveymonkey import DEFAULT_BASE_URL, SurveyMonkeyHook

TOKEN = "sm-test-token-5f1d2c9a7b"
BASE = DEFAULT_BASE_URL
EU = "https://api.eu.surveymonkey.com/v3"


def set_conn(monkeypatch, conn_id="surveymonkey_default", **fields):
    conn = {"conn_type": "surveymonkey", "password": TOKEN, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture
def hook(monkeypatch):
    set_conn(monkeypatch)
    h = SurveyMonkeyHook()
    h.waits = []
    h.sleep = h.waits.append
    return h


def query(request):
    return parse_qs(urlsplit(request.url).query)


def sm_error(error_id, status, name="Error", message="Something went wrong"):
    return {"status_code": status, "json": {"error": {"id": str(error_id), "name": name, "message": message}}}


# -- connection -------------------------------------------------------------------------------------
def test_defaults_without_host(hook):
    session = hook.get_conn()
    assert hook.base_url == BASE
    assert session.headers["Authorization"] == f"bearer {TOKEN}"
    assert session.verify is True
    assert hook.settings.timeout == 30.0
    assert hook.settings.daily_reserve == 10


def test_eu_base_url_and_extras(monkeypatch, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    extra = {"ca_bundle": str(ca), "timeout": 5, "daily_reserve": 3}
    set_conn(monkeypatch, "sm_eu", host=EU + "/", extra=extra)
    hook = SurveyMonkeyHook("sm_eu")
    assert hook.base_url == EU
    assert hook.get_conn().verify == str(ca)
    assert (hook.settings.timeout, hook.settings.daily_reserve) == (5.0, 3)


def test_uri_connection_host_and_schema(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SM_CA", f"surveymonkey://:{TOKEN}@api.surveymonkey.ca/v3")
    assert SurveyMonkeyHook("sm_ca").base_url == "https://api.surveymonkey.ca/v3"


@pytest.mark.parametrize("host", ["http://api.surveymonkey.com/v3", "ftp://api.surveymonkey.com/v3"])
def test_a_clear_text_base_url_is_refused_before_any_call(monkeypatch, requests_mock, host):
    """The bearer token would travel unencrypted: the hook refuses to build a session at all."""
    set_conn(monkeypatch, "sm_plain", host=host)
    with pytest.raises(errors.InsecureEndpoint, match=r"must be an https:// URL") as err:
        SurveyMonkeyHook("sm_plain").get_conn()
    assert TOKEN not in str(err.value)
    assert requests_mock.call_count == 0


def test_missing_token_is_an_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SM_EMPTY", json.dumps({"conn_type": "surveymonkey"}))
    with pytest.raises(ValueError, match="no access token"):
        SurveyMonkeyHook("sm_empty").get_conn()


def test_ui_field_behaviour_labels_host_and_token():
    behaviour = SurveyMonkeyHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "Access token"}
    assert "login" in behaviour["hidden_fields"]


def test_test_connection_uses_a_call_the_view_surveys_scope_allows(hook, requests_mock):
    """Issue 13 item 4: /users/me needs View Users, which the project does not otherwise need."""
    requests_mock.get(f"{BASE}/surveys", json={"data": [], "links": {}})
    assert hook.test_connection() == (True, "Connection successfully tested")
    assert [r.path for r in requests_mock.request_history] == ["/v3/surveys"]
    requests_mock.get(f"{BASE}/surveys", **sm_error(1011, 401, "Authorization Error", f"bad token {TOKEN}"))
    ok, message = hook.test_connection()
    assert not ok and "1011" in message and TOKEN not in message


# -- paging -----------------------------------------------------------------------------------------
def test_paginate_follows_links_next(hook, requests_mock):
    page2, page3 = f"{BASE}/surveys?page=2&per_page=100", f"{BASE}/surveys?page=3&per_page=100"
    requests_mock.get(f"{BASE}/surveys", json={"data": [{"id": "1"}, {"id": "2"}], "links": {"next": page2}})
    requests_mock.get(page2, json={"data": [{"id": "3"}], "links": {"next": page3}})
    requests_mock.get(page3, json={"data": [{"id": "4"}], "links": {}})
    assert [s["id"] for s in hook.paginate("/surveys")] == ["1", "2", "3", "4"]
    assert hook.calls_made == 3
    first = requests_mock.request_history[0]
    assert first.qs["per_page"] == ["100"]
    assert [r.qs.get("page") for r in requests_mock.request_history] == [None, ["2"], ["3"]]


def test_links_next_on_another_api_host_of_the_region_is_followed(hook, requests_mock):
    """Issue 13 item 6: real US list pages link to api.surveymonkey.net as well as .com."""
    page2 = "https://api.surveymonkey.net/v3/surveys?page=2&per_page=100"
    requests_mock.get(f"{BASE}/surveys", json={"data": [{"id": "1"}], "links": {"next": page2}})
    requests_mock.get(page2, json={"data": [{"id": "2"}], "links": {}})
    assert [s["id"] for s in hook.paginate("/surveys")] == ["1", "2"]
    assert requests_mock.request_history[1].headers["Authorization"] == f"bearer {TOKEN}"


@pytest.mark.parametrize(
    ("base", "link"),
    [
        (EU, "https://api.surveymonkey.net/v3/surveys?page=2"),  # a US host for an EU account
        (EU, "https://api.surveymonkey.com/v3/surveys?page=2"),
        (BASE, "http://api.surveymonkey.com/v3/surveys?page=2"),  # downgraded scheme
        (BASE, "https://api.surveymonkey.com.evil.example/v3/surveys?page=2"),
    ],
)
def test_links_next_off_the_region_is_refused(monkeypatch, requests_mock, base, link):
    set_conn(monkeypatch, host=base)
    requests_mock.get(f"{base}/surveys", json={"data": [], "links": {"next": link}})
    with pytest.raises(ValueError, match="another origin"):
        list(SurveyMonkeyHook().paginate("/surveys"))


def test_links_next_to_another_origin_is_refused(hook, requests_mock):
    requests_mock.get(f"{BASE}/surveys", json={"data": [], "links": {"next": "https://evil.example/v3/s"}})
    with pytest.raises(ValueError, match="another origin"):
        list(hook.paginate("/surveys"))


def test_paging_loop_is_detected(hook, requests_mock):
    requests_mock.get(f"{BASE}/surveys", json={"data": [{"id": "1"}], "links": {"next": f"{BASE}/surveys"}})
    with pytest.raises(errors.SurveyMonkeyBadPayload):
        list(hook.paginate("/surveys"))


# -- typed errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error_id", "status", "cls"),
    [
        (1000, 400, errors.SurveyMonkeyBadRequest),
        (1004, 400, errors.SurveyMonkeyBadRequest),
        (1010, 401, errors.SurveyMonkeyAuthError),
        (1013, 401, errors.SurveyMonkeyAuthError),
        (1014, 403, errors.SurveyMonkeyPermissionDenied),
        (1018, 403, errors.SurveyMonkeyPermissionDenied),
        (1020, 404, errors.SurveyMonkeyNotFound),
        (1025, 409, errors.SurveyMonkeyConflict),
        (1026, 409, errors.SurveyMonkeyConflict),
        (1030, 413, errors.SurveyMonkeyPayloadTooLarge),
        (1040, 429, errors.SurveyMonkeyRateLimited),
        (1050, 500, errors.SurveyMonkeyServerError),
        (1051, 503, errors.SurveyMonkeyServerError),
    ],
)
def test_error_ids_map_to_typed_errors(hook, requests_mock, error_id, status, cls):
    requests_mock.post(f"{BASE}/x", **sm_error(error_id, status, "Name", "Message"))
    with pytest.raises(cls) as info:
        hook.request("POST", "/x", json={})
    exc = info.value
    assert (exc.status, exc.error_id, exc.name, exc.message) == (status, str(error_id), "Name", "Message")


def test_error_without_json_body_falls_back_to_status(hook, requests_mock):
    requests_mock.post(f"{BASE}/x", status_code=502, text="<html>Bad gateway</html>")
    with pytest.raises(errors.SurveyMonkeyServerError) as info:
        hook.request("POST", "/x", json={})
    assert info.value.error_id is None and info.value.status == 502


def test_malformed_json_is_bad_payload_and_not_retried(hook, requests_mock):
    requests_mock.get(f"{BASE}/surveys/1/details", text='{"id": "1", "pages": [')
    with pytest.raises(errors.SurveyMonkeyBadPayload):
        hook.survey_details("1")
    assert requests_mock.call_count == 1


# -- retries ----------------------------------------------------------------------------------------
def test_429_waits_for_the_minute_reset_header(hook, requests_mock):
    limited = sm_error(1040, 429, "Rate limit reached")
    limited["headers"] = {
        "X-Ratelimit-App-Global-Minute-Remaining": "0",
        "X-Ratelimit-App-Global-Minute-Reset": "7",
    }
    requests_mock.get(f"{BASE}/surveys/1", [limited, {"json": {"id": "1"}}])
    assert hook.request("GET", "/surveys/1") == {"id": "1"}
    assert hook.waits == [8.0]
    assert requests_mock.call_count == 2


def test_429_wait_is_capped(monkeypatch, requests_mock):
    set_conn(monkeypatch, extra={"max_wait": 20})
    hook = SurveyMonkeyHook()
    waits = []
    hook.sleep = waits.append
    limited = sm_error(1040, 429)
    limited["headers"] = {"X-Ratelimit-App-Global-Minute-Reset": "55"}
    requests_mock.get(f"{BASE}/s", [limited, {"json": {}}])
    hook.request("GET", "/s")
    assert waits == [20.0]


def test_429_without_headers_backs_off_exponentially_then_raises(hook, requests_mock):
    requests_mock.get(f"{BASE}/s", **sm_error(1040, 429))
    with pytest.raises(errors.SurveyMonkeyRateLimited):
        hook.request("GET", "/s")
    assert requests_mock.call_count == 5
    assert len(hook.waits) == 4
    for attempt, wait in enumerate(hook.waits):
        assert 2**attempt <= wait <= 2**attempt + 1  # exponential plus up to 1 s of jitter


def test_429_is_retried_even_for_a_send(hook, requests_mock):
    requests_mock.post(f"{BASE}/collectors/c/messages/m/send", [sm_error(1040, 429), {"json": {"id": "m"}}])
    assert hook.send_message("c", "m") == {"id": "m"}
    assert requests_mock.call_count == 2


def test_429_with_daily_limit_spent_stops_at_once(hook, requests_mock):
    limited = sm_error(1040, 429)
    limited["headers"] = {
        "X-Ratelimit-App-Global-Day-Remaining": "0",
        "X-Ratelimit-App-Global-Day-Reset": "9000",
    }
    requests_mock.get(f"{BASE}/s", **limited)
    with pytest.raises(errors.SurveyMonkeyBudgetExhausted):
        hook.request("GET", "/s")
    assert requests_mock.call_count == 1


def test_5xx_is_retried_for_get(hook, requests_mock):
    requests_mock.get(f"{BASE}/s", [sm_error(1050, 500), {"status_code": 503}, {"json": {"ok": 1}}])
    assert hook.request("GET", "/s") == {"ok": 1}
    assert requests_mock.call_count == 3


def test_5xx_is_not_retried_for_a_create(hook, requests_mock):
    requests_mock.post(f"{BASE}/collectors/c/messages", **sm_error(1050, 500))
    with pytest.raises(errors.SurveyMonkeyServerError):
        hook.create_message("c", "invite", "Subject", "<p>[SurveyLink]</p>")
    assert requests_mock.call_count == 1


def test_timeout_of_a_post_is_not_retried(hook, requests_mock):
    requests_mock.post(f"{BASE}/collectors/c/messages/m/recipients/bulk", exc=requests.ReadTimeout)
    with pytest.raises(requests.ReadTimeout):
        hook.add_recipients_bulk("c", "m", [{"email": "a@example.com"}])
    assert requests_mock.call_count == 1 and hook.waits == []


def test_timeout_of_an_idempotent_call_is_retried(hook, requests_mock):
    requests_mock.get(
        f"{BASE}/s", [{"exc": requests.ReadTimeout}, {"exc": requests.ConnectionError}, {"json": {}}]
    )
    assert hook.request("GET", "/s") == {}
    assert requests_mock.call_count == 3
    requests_mock.post(f"{BASE}/p", [{"exc": requests.ReadTimeout}, {"json": {}}])
    assert hook.request("POST", "/p", json={}, idempotent=True) == {}


def test_connect_timeout_is_retried_even_for_a_post(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/collectors/c/messages/m/send", [{"exc": requests.ConnectTimeout}, {"json": {}}]
    )
    hook.send_message("c", "m")
    assert requests_mock.call_count == 2


def test_request_timeout_comes_from_the_connection(monkeypatch, requests_mock):
    set_conn(monkeypatch, extra={"timeout": 4})
    hook = SurveyMonkeyHook()
    requests_mock.get(f"{BASE}/s", json={})
    hook.request("GET", "/s")
    assert requests_mock.last_request.timeout == 4.0


# -- rate limits and budget -------------------------------------------------------------------------
def day_headers(remaining, minute_remaining=100, minute_reset=30):
    return {
        "X-Ratelimit-App-Global-Day-Limit": "500",
        "X-Ratelimit-App-Global-Day-Remaining": str(remaining),
        "X-Ratelimit-App-Global-Minute-Remaining": str(minute_remaining),
        "X-Ratelimit-App-Global-Minute-Reset": str(minute_reset),
    }


def test_budget_guard(hook, requests_mock):
    hook.budget_guard(10_000)  # unknown before the first response: passes
    requests_mock.get(f"{BASE}/users/me", json={}, headers=day_headers(50))
    hook.request("GET", "/users/me")
    assert (hook.rate.day_limit, hook.rate.day_remaining) == (500, 50)
    hook.budget_guard(40)  # 50 - 40 = 10 = reserve
    with pytest.raises(errors.SurveyMonkeyBudgetExhausted) as info:
        hook.budget_guard(41)
    assert (info.value.remaining, info.value.needed) == (50, 41)


def test_budget_reserve_from_extra(monkeypatch, requests_mock):
    set_conn(monkeypatch, extra={"daily_reserve": 0})
    hook = SurveyMonkeyHook()
    requests_mock.get(f"{BASE}/users/me", json={}, headers=day_headers(5))
    hook.request("GET", "/users/me")
    hook.budget_guard(5)
    with pytest.raises(errors.SurveyMonkeyBudgetExhausted):
        hook.budget_guard(6)


def test_spent_minute_window_paces_the_next_call(hook, requests_mock):
    requests_mock.get(f"{BASE}/a", json={}, headers=day_headers(400, minute_remaining=0, minute_reset=12))
    requests_mock.get(f"{BASE}/b", json={}, headers=day_headers(399))
    hook.request("GET", "/a")
    assert hook.waits == []
    hook.request("GET", "/b")
    assert len(hook.waits) == 1 and 11 < hook.waits[0] <= 12


# -- helpers ----------------------------------------------------------------------------------------
def test_find_survey_matches_the_exact_title(hook, requests_mock):
    title = "Post-Implementation Feedback"
    data = [{"id": "9", "title": "Post-Implementation Feedback (old)"}, {"id": "10", "title": title}]
    requests_mock.get(f"{BASE}/surveys", json={"data": data, "links": {}})
    assert hook.find_survey(title)["id"] == "10"
    assert query(requests_mock.last_request)["title"] == [title]
    assert hook.find_survey("Missing") is None


def test_find_survey_refuses_ambiguous_titles(hook, requests_mock):
    data = [{"id": "1", "title": "T"}, {"id": "2", "title": "T"}]
    requests_mock.get(f"{BASE}/surveys", json={"data": data, "links": {}})
    with pytest.raises(ValueError, match="2 surveys"):
        hook.find_survey("T")


def test_get_or_create_email_collector_reuses_by_name(hook, requests_mock):
    existing = [
        {"id": "c0", "name": "closed-loop", "type": "weblink"},
        {"id": "c1", "name": "closed-loop", "type": "email", "status": "open"},
    ]
    requests_mock.get(f"{BASE}/surveys/s1/collectors", json={"data": existing, "links": {}})
    create = requests_mock.post(f"{BASE}/surveys/s1/collectors", json={"id": "c2"})
    assert hook.get_or_create_email_collector("s1", "closed-loop")["id"] == "c1"
    assert not create.called
    assert hook.get_or_create_email_collector("s1", "other")["id"] == "c2"
    assert create.last_request.json() == {"type": "email", "name": "other"}


def test_create_message_body(hook, requests_mock):
    route = requests_mock.post(f"{BASE}/collectors/c/messages", json={"id": "m", "status": "not_sent"})
    hook.create_message("c", "reminder", "Reminder", "<p>hi</p>", recipient_status="has_not_responded")
    assert route.last_request.json() == {
        "type": "reminder",
        "subject": "Reminder",
        "body_html": "<p>hi</p>",
        "recipient_status": "has_not_responded",
    }


def test_add_recipients_bulk_chunks_and_merges(hook, requests_mock):
    contacts = [{"email": f"p{i}@example.com"} for i in range(5)]
    url = f"{BASE}/collectors/c/messages/m/recipients/bulk"
    requests_mock.post(
        url,
        [
            {"json": {"succeeded": [{"id": "r0"}, {"id": "r1"}], "existing": [], "opted_out": []}},
            {"json": {"succeeded": [{"id": "r2"}], "opted_out": ["p3@example.com"]}},
            {"json": {"succeeded": [], "bounced": ["p4@example.com"]}},
        ],
    )
    result = hook.add_recipients_bulk("c", "m", contacts, chunk=2)
    assert [r["id"] for r in result["succeeded"]] == ["r0", "r1", "r2"]
    assert result["opted_out"] == ["p3@example.com"] and result["bounced"] == ["p4@example.com"]
    assert set(result) == {"succeeded", "invalids", "existing", "bounced", "opted_out", "duplicate"}
    assert [len(r.json()["contacts"]) for r in requests_mock.request_history] == [2, 2, 1]


def test_add_recipients_failure_carries_partial_result(hook, requests_mock):
    url = f"{BASE}/collectors/c/messages/m/recipients/bulk"
    requests_mock.post(url, [{"json": {"succeeded": [{"id": "r0"}]}}, sm_error(1026, 409)])
    with pytest.raises(errors.SurveyMonkeyConflict) as info:
        hook.add_recipients_bulk("c", "m", [{"email": "a@x.example"}, {"email": "b@x.example"}], chunk=1)
    assert info.value.partial["succeeded"] == [{"id": "r0"}]


def test_list_message_recipients_asks_for_statuses(hook, requests_mock):
    url = f"{BASE}/collectors/c/messages/m/recipients"
    requests_mock.get(url, json={"data": [{"id": "r0", "mail_status": "sent"}], "links": {}})
    assert hook.list_message_recipients("c", "m") == [{"id": "r0", "mail_status": "sent"}]
    assert requests_mock.last_request.qs["include"] == ["survey_response_status,mail_status"]


def test_send_message_with_schedule(hook, requests_mock):
    route = requests_mock.post(f"{BASE}/collectors/c/messages/m/send", json={"id": "m"})
    hook.send_message("c", "m")
    assert route.last_request.json() == {}
    when = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    hook.send_message("c", "m", scheduled_date=when)
    assert route.last_request.json() == {"scheduled_date": "2026-03-01T09:00:00+00:00"}


def test_iter_responses_parameters(hook, requests_mock):
    requests_mock.get(f"{BASE}/collectors/c/responses/bulk", json={"data": [{"id": "r"}], "links": {}})
    since = datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    assert [r["id"] for r in hook.iter_responses(collector_id="c", start_modified_at=since)] == ["r"]
    qs = query(requests_mock.last_request)
    assert qs["sort_by"] == ["date_modified"] and qs["status"] == ["completed"] and qs["per_page"] == ["100"]
    assert qs["start_modified_at"] == ["2026-03-01T08:30:00"]  # converted to UTC
    with pytest.raises(ValueError):
        next(hook.iter_responses(survey_id="s", collector_id="c"))


# -- secrecy ----------------------------------------------------------------------------------------
def test_token_never_in_logs_or_exceptions(hook, requests_mock, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    requests_mock.get(f"{BASE}/a", **sm_error(1012, 401, "Authorization Error", f"token {TOKEN} expired"))
    requests_mock.get(f"{BASE}/b", [sm_error(1050, 500), {"exc": requests.ReadTimeout}, {"json": {}}])
    with pytest.raises(errors.SurveyMonkeyAuthError) as info:
        hook.request("GET", "/a")
    hook.request("GET", "/b")
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value.args)
    logs = caplog.text + "".join(capsys.readouterr())  # stdlib logging and Airflow's structlog output
    assert "retrying in" in logs  # the retries were logged ...
    assert TOKEN not in logs  # ... without the token


def test_provider_info_is_valid_for_airflow():
    import importlib.resources

    import jsonschema

    from closed_loop.provider_info import get_provider_info

    schema = json.loads(
        importlib.resources.files("airflow").joinpath("provider_info.schema.json").read_text()
    )
    info = get_provider_info()
    jsonschema.validate(info, schema)
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == SurveyMonkeyHook.conn_type
    assert conn_type["hook-class-name"] == f"{SurveyMonkeyHook.__module__}.{SurveyMonkeyHook.__name__}"
