"""SurveyMonkey v3 contract with `requests` over HTTPS (CA verified): every endpoint, paging, error shapes,
rate-limit headers."""

from __future__ import annotations

import pytest

from sandbox.seed import AGREE, MAIN_TITLE, MATRIX_ROWS, PULSE_TITLE
from sandbox.testing import VALID_MESSAGE_BODY


def error_of(response, status, error_id):
    assert response.status_code == status
    body = response.json()["error"]
    assert body["id"] == str(error_id) and body["http_status_code"] == status
    assert set(body) == {"id", "name", "message", "docs", "http_status_code"}


@pytest.fixture(scope="module")
def main_survey(sandbox):
    sm = sandbox.sm_session()
    data = sm.get(f"{sandbox.sm_base_url}/surveys", params={"title": MAIN_TITLE}, timeout=10).json()["data"]
    return [s for s in data if s["title"] == MAIN_TITLE][0]["id"]


def invite(sandbox, sm, survey_id, emails, send=True):
    base = sandbox.sm_base_url
    collector = sm.post(f"{base}/surveys/{survey_id}/collectors", json={"type": "email", "name": "c"}).json()
    message = sm.post(
        f"{base}/collectors/{collector['id']}/messages",
        json={"type": "invite", "subject": "s", "body_html": VALID_MESSAGE_BODY},
    ).json()
    added = sm.post(
        f"{base}/collectors/{collector['id']}/messages/{message['id']}/recipients/bulk",
        json={"contacts": [{"email": e, "custom_fields": {"1": "acct"}} for e in emails]},
    ).json()
    if send:
        assert sm.post(f"{base}/collectors/{collector['id']}/messages/{message['id']}/send", json={}).ok
    return collector, message, added


def test_auth_errors_and_rate_headers(sandbox, sm):
    base = sandbox.sm_base_url
    session = sandbox.session()
    error_of(session.get(f"{base}/users/me"), 401, 1010)
    error_of(session.get(f"{base}/users/me", headers={"Authorization": "bearer wrong"}), 401, 1011)
    me = sm.get(f"{base}/users/me")
    assert me.ok and me.json()["username"]
    for window in ("Minute", "Day"):
        for part in ("Limit", "Remaining", "Reset"):
            assert me.headers[f"X-Ratelimit-App-Global-{window}-{part}"].isdigit()
    error_of(sm.get(f"{base}/surveys/999"), 404, 1020)
    error_of(sm.get(f"{base}/nothing/here"), 404, 1020)


def test_surveys_details_shape(sandbox, sm, main_survey):
    base = sandbox.sm_base_url
    listing = sm.get(f"{base}/surveys").json()
    assert {s["title"] for s in listing["data"]} == {MAIN_TITLE, PULSE_TITLE}
    assert listing["links"]["self"].startswith(base)
    details = sm.get(f"{base}/surveys/{main_survey}/details").json()
    questions = details["pages"][0]["questions"]
    matrix = questions[0]
    assert (matrix["family"], matrix["subtype"]) == ("matrix", "rating")
    assert [r["text"] for r in matrix["answers"]["rows"]] == MATRIX_ROWS
    assert [c["text"] for c in matrix["answers"]["choices"]] == AGREE
    assert questions[2]["answers"]["other"]["text"] == "Other (please specify)"
    assert [c["text"] for c in questions[3]["answers"]["choices"]] == [str(i) for i in range(11)]
    assert (questions[6]["family"], questions[6]["subtype"]) == ("open_ended", "essay")
    assert "date_modified" not in listing["data"][0]  # only on request (documented ``include``)
    dated = sm.get(f"{base}/surveys", params={"include": "date_modified"}).json()["data"]
    assert {s["id"]: s["date_modified"] for s in dated}[main_survey] == details["date_modified"]


def test_an_edited_survey_has_a_new_date_modified(sandbox, sm, main_survey):
    from datetime import datetime

    base = sandbox.sm_base_url
    before = sm.get(f"{base}/surveys/{main_survey}/details").json()
    heading = before["pages"][0]["questions"][1]["headings"][0]["heading"]
    edit = {"survey_id": main_survey, "heading": heading, "new_heading": "Reworded?"}
    sandbox.admin("POST", "surveys/reword", edit)
    after = sm.get(f"{base}/surveys/{main_survey}/details").json()
    sandbox.admin("POST", "surveys/reword", {**edit, "heading": "Reworded?", "new_heading": heading})  # undo
    assert after["pages"][0]["questions"][1]["headings"][0]["heading"] == "Reworded?"
    now = datetime.fromisoformat(sandbox.admin("GET", "clock")["now"].replace("Z", "+00:00"))
    assert (
        datetime.fromisoformat(after["date_modified"])
        == now
        != datetime.fromisoformat(before["date_modified"])
    )


def test_collectors_messages_recipients_and_send(sandbox, sm, sf, main_survey):
    base = sandbox.sm_base_url
    emails = [r["Email"] for r in sf.query("SELECT Email FROM Contact ORDER BY Email LIMIT 5")["records"]]
    state = sandbox.admin("GET", "state")
    bounced, opted = state["sm"]["bounced"][0], state["sm"]["opted_out"][0]
    collector, message, added = invite(
        sandbox, sm, main_survey, [*emails, emails[0], "not-an-email", bounced, opted], send=False
    )
    assert [s["email"] for s in added["succeeded"]] == emails
    assert (added["duplicate"], added["invalids"], added["bounced"], added["opted_out"]) == (
        [emails[0]],
        ["not-an-email"],
        [bounced],
        [opted],
    )
    assert message["status"] == "not_sent"
    again = sm.post(
        f"{base}/collectors/{collector['id']}/messages/{message['id']}/recipients/bulk",
        json={"contacts": [{"email": emails[1]}]},
    ).json()
    assert again["existing"] == [emails[1]]
    listed = sm.get(f"{base}/surveys/{main_survey}/collectors").json()["data"]
    assert collector["id"] in {c["id"] for c in listed}
    assert sm.get(f"{base}/collectors/{collector['id']}").json()["type"] == "email"
    assert sm.get(f"{base}/collectors/{collector['id']}/messages").json()["total"] == 1
    # a reminder before any invite was sent is refused
    error_of(sm.post(f"{base}/collectors/{collector['id']}/messages", json={"type": "reminder"}), 409, 1026)
    sent = sm.post(f"{base}/collectors/{collector['id']}/messages/{message['id']}/send", json={}).json()
    assert sent["status"] == "sent"
    error_of(
        sm.post(f"{base}/collectors/{collector['id']}/messages/{message['id']}/send", json={}), 409, 1026
    )
    error_of(
        sm.post(
            f"{base}/collectors/{collector['id']}/messages/{message['id']}/recipients/bulk",
            json={"contacts": [{"email": "late@x.example"}]},
        ),
        409,
        1026,
    )
    page = sm.get(
        f"{base}/collectors/{collector['id']}/messages/{message['id']}/recipients", params={"per_page": 2}
    ).json()
    assert page["total"] == 5 and len(page["data"]) == 2 and "next" in page["links"]
    assert (
        page["data"][0]["mail_status"] == "sent"
        and page["data"][0]["survey_response_status"] == "not_responded"
    )
    second = sm.get(page["links"]["next"]).json()
    assert second["page"] == 2
    recipients = sm.get(f"{base}/collectors/{collector['id']}/recipients").json()["data"]
    assert len(recipients) == 5
    one = sm.get(f"{base}/collectors/{collector['id']}/recipients/{recipients[0]['id']}").json()
    assert one["custom_fields"] == {"1": "acct"}
    assert sm.get(f"{base}/collectors/{collector['id']}/messages/{message['id']}").json()["type"] == "invite"


def test_scheduled_send_and_reminders_to_non_responders(sandbox, sm, sf, main_survey):
    base = sandbox.sm_base_url
    emails = [
        r["Email"] for r in sf.query("SELECT Email FROM Contact ORDER BY Email DESC LIMIT 30")["records"]
    ]
    collector, message, _ = invite(sandbox, sm, main_survey, emails, send=False)
    now = sandbox.admin("GET", "clock")["now"]
    later = now.replace("T09", "T15")
    scheduled = sm.post(
        f"{base}/collectors/{collector['id']}/messages/{message['id']}/send", json={"scheduled_date": later}
    ).json()
    assert scheduled["status"] == "scheduled" and scheduled["is_scheduled"]
    sandbox.admin("POST", "clock", {"advance_hours": 7})
    assert sm.get(f"{base}/collectors/{collector['id']}/messages/{message['id']}").json()["status"] == "sent"
    sandbox.admin("POST", "clock", {"advance_days": 6})
    recipients = sm.get(f"{base}/collectors/{collector['id']}/recipients").json()["data"]
    waiting = {r["id"] for r in recipients if r["survey_response_status"] == "not_responded"}
    assert 0 < len(waiting) < 30
    reminder = sm.post(
        f"{base}/collectors/{collector['id']}/messages",
        json={"type": "reminder", "recipient_status": "has_not_responded"},
    ).json()
    sm.post(f"{base}/collectors/{collector['id']}/messages/{reminder['id']}/send", json={})
    reminded = sm.get(f"{base}/collectors/{collector['id']}/messages/{reminder['id']}/recipients").json()[
        "data"
    ]
    assert {r["id"] for r in reminded} == waiting


def test_responses_bulk_paging_filters_and_shapes(sandbox, sm, main_survey):
    base = sandbox.sm_base_url
    error_of(sm.get(f"{base}/surveys/{main_survey}/responses/bulk", params={"per_page": 101}), 400, 1003)
    first = sm.get(
        f"{base}/surveys/{main_survey}/responses/bulk",
        params={"per_page": 5, "sort_by": "date_modified", "sort_order": "ASC"},
    ).json()
    assert first["total"] > 5 and first["links"]["next"].startswith("https://")
    collected, url = [], first["links"]["self"]
    while url:
        page = sm.get(url).json()
        collected += page["data"]
        url = page["links"].get("next")
    assert len(collected) == first["total"]
    stamps = [r["date_modified"] for r in collected]
    assert stamps == sorted(stamps)
    middle = stamps[len(stamps) // 2]
    newer = sm.get(
        f"{base}/surveys/{main_survey}/responses/bulk",
        params={"start_modified_at": middle[:19], "per_page": 100},
    ).json()
    assert newer["total"] == sum(1 for s in stamps if s >= middle)
    partial = sm.get(f"{base}/surveys/{main_survey}/responses/bulk", params={"status": "partial"}).json()
    assert all(r["response_status"] == "partial" for r in partial["data"])
    response = collected[0]
    assert {
        "recipient_id",
        "collector_id",
        "custom_variables",
        "response_status",
        "date_modified",
        "pages",
    } <= set(response)
    by_collector = sm.get(f"{base}/collectors/{response['collector_id']}/responses/bulk").json()
    assert response["id"] in {r["id"] for r in by_collector["data"]}
    shapes = {tuple(sorted(a)) for r in collected for q in r["pages"][0]["questions"] for a in q["answers"]}
    assert ("choice_id", "row_id") in shapes and ("choice_id",) in shapes
    simple = sm.get(
        f"{base}/surveys/{main_survey}/responses/bulk", params={"simple": "true", "per_page": 1}
    ).json()
    assert simple["data"][0]["pages"][0]["questions"][0]["heading"]


def test_sm_minute_rate_limit_gives_1040(sandbox, sm):
    sandbox.admin("POST", "rate-limits/reset")
    sandbox.admin("POST", "config", {"sm_minute_limit": 3})
    try:
        statuses = [sm.get(f"{sandbox.sm_base_url}/users/me") for _ in range(4)]
        assert [r.status_code for r in statuses[:3]] == [200, 200, 200]
        error_of(statuses[3], 429, 1040)
        assert statuses[3].headers["X-Ratelimit-App-Global-Minute-Remaining"] == "0"
    finally:
        sandbox.admin("POST", "config", {"sm_minute_limit": 100000})
        sandbox.admin("POST", "rate-limits/reset")


def test_sm_day_limit_follows_the_sandbox_day(sandbox, sm):
    sandbox.admin("POST", "rate-limits/reset")
    sandbox.admin("POST", "config", {"sm_day_limit": 2})
    try:
        assert sm.get(f"{sandbox.sm_base_url}/users/me").ok and sm.get(f"{sandbox.sm_base_url}/users/me").ok
        limited = sm.get(f"{sandbox.sm_base_url}/users/me")
        error_of(limited, 429, 1040)
        assert limited.headers["X-Ratelimit-App-Global-Day-Remaining"] == "0"
        sandbox.admin("POST", "clock", {"advance_days": 1})
        assert sm.get(f"{sandbox.sm_base_url}/users/me").ok
    finally:
        sandbox.admin("POST", "config", {"sm_day_limit": 100000})
