"""SurveyMonkey v3 subset under /v3: bearer auth, rate limits, surveys, email collectors, messages,
recipients, send, bulk responses."""

from __future__ import annotations

import bisect
import json
import re
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sandbox import rules, simulation
from sandbox.reply import Reply, Request
from sandbox.state import SandboxState, parse_ts, sm_datetime

ERRORS = {
    # ids, statuses and names as in the v3 docs' "Error Codes" table (includes/_overview.md)
    1000: (400, "Bad Request"),
    1001: (400, "Invalid Request Body"),  # not a proper JSON string
    1002: (400, "Invalid Schema"),  # invalid schema in the body provided
    1003: (400, "Invalid URL Parameters"),
    1004: (400, "Invalid Request Headers"),
    1010: (401, "Authorization Required"),
    1011: (401, "Invalid Authorization Token"),
    1012: (401, "Token Expired"),
    1013: (401, "Token Revoked"),
    1014: (403, "Permission Error"),
    1020: (404, "Resource Not Found"),
    1025: (409, "Conflict"),
    1026: (409, "Resource Conflict"),
    1030: (413, "Request Entity Too Large"),
    1040: (429, "Rate Limit Reached"),
    1050: (500, "Internal Server Error"),
    1051: (503, "Service Unavailable"),
}
_LITERALS = {
    "users",
    "me",
    "surveys",
    "details",
    "collectors",
    "messages",
    "recipients",
    "bulk",
    "send",
    "responses",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MINUTE: dict[str, float] = {"start": 0.0, "count": 0}  # real-time minute window, process-local


def error(error_id: int, message: str) -> Reply:
    status, name = ERRORS[error_id]
    return Reply(
        status,
        {
            "error": {
                "id": str(error_id),
                "name": name,
                "message": message,
                "docs": "https://developer.surveymonkey.com/api/v3/#error-codes",
                "http_status_code": status,
            }
        },
    )


def reset_minute_window() -> None:
    _MINUTE.update(start=time.monotonic(), count=0)


def rate_headers(state: SandboxState) -> dict[str, str]:
    cfg = state.data["config"]
    day = state.data.setdefault("sm_day", {"day": state.today.isoformat(), "count": 0})
    if day["day"] != state.today.isoformat():
        day.update(day=state.today.isoformat(), count=0)
    tomorrow = datetime.combine(state.today + timedelta(days=1), datetime.min.time(), state.now.tzinfo)
    minute_left = max(0, int(60 - (time.monotonic() - _MINUTE["start"])))
    return {
        "X-Ratelimit-App-Global-Minute-Limit": str(cfg["sm_minute_limit"]),
        "X-Ratelimit-App-Global-Minute-Remaining": str(max(cfg["sm_minute_limit"] - _MINUTE["count"], 0)),
        "X-Ratelimit-App-Global-Minute-Reset": str(minute_left),
        "X-Ratelimit-App-Global-Day-Limit": str(cfg["sm_day_limit"]),
        "X-Ratelimit-App-Global-Day-Remaining": str(max(cfg["sm_day_limit"] - day["count"], 0)),
        "X-Ratelimit-App-Global-Day-Reset": str(int((tomorrow - state.now).total_seconds())),
    }


def authorize(state: SandboxState, req: Request) -> Reply | None:
    auth = req.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if not auth:
        return error(1010, "The authorization token was not provided.")
    faults = state.data["faults"]
    if scheme.lower() != "bearer" or token.strip() != state.data["tokens"]["sm"]:
        return error(1011, "The authorization token provided was invalid.")
    if faults.get("sm_revoke_token"):
        return error(1013, "The authorization token has been revoked.")
    if time.monotonic() - _MINUTE["start"] >= 60:
        reset_minute_window()
    rate_headers(state)
    day = state.data["sm_day"]
    cfg = state.data["config"]
    if _MINUTE["count"] >= cfg["sm_minute_limit"] or day["count"] >= cfg["sm_day_limit"]:
        return error(1040, "Too many requests were made, try again later.")
    _MINUTE["count"] += 1
    day["count"] += 1
    return None


# helpers -----------------------------------------------------------------------
def _paginate(req: Request, items: list[Any], max_per_page: int, default: int = 50) -> Reply:
    try:
        page = int(req.params.get("page", 1))
        per_page = int(req.params.get("per_page", default))
    except ValueError:
        return error(1003, "Invalid URL parameter: page and per_page must be integers.")
    if page < 1 or per_page < 1 or per_page > max_per_page:
        return error(1003, f"Invalid URL parameter: per_page must be between 1 and {max_per_page}.")
    total = len(items)
    last = max(1, -(-total // per_page))

    def link(number: int) -> str:
        params = {**req.params, "page": number, "per_page": per_page}
        return f"{req.base_url}/v3/{req.path}?{urlencode(params)}"

    links = {"self": link(page)}
    if page < last:
        links["next"] = link(page + 1)
        links["last"] = link(last)
    if page > 1:
        links["prev"] = link(page - 1)
        links["first"] = link(1)
    return Reply(
        200,
        {
            "data": items[(page - 1) * per_page : page * per_page],
            "per_page": per_page,
            "page": page,
            "total": total,
            "links": links,
        },
    )


def _href(req: Request, path: str) -> str:
    return f"{req.base_url}/v3/{path}"


def _body(req: Request) -> tuple[dict, Reply | None]:
    try:
        body = json.loads(req.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}, error(1001, "The request body is not valid JSON.")
    return (
        (body, None) if isinstance(body, dict) else ({}, error(1002, "The request body must be an object."))
    )


def _sm(state: SandboxState) -> dict:
    return state.data["sm"]


# handlers ----------------------------------------------------------------------
def handle(state: SandboxState, req: Request) -> tuple[str, Reply]:
    """Dispatch one request below /v3; returns (endpoint template, reply)."""
    parts = [p for p in req.path.split("/") if p]
    template = f"{req.method} /" + "/".join(p if p in _LITERALS else "{id}" for p in parts)
    route = ROUTES.get(template)
    if route is None:
        return template, error(1020, f"Resource not found: {req.method} /v3/{req.path}")
    needed = rules.missing_scope(state, template)
    if needed:
        return template, error(
            1014, f"Permission has not been granted by the user to make this request ({needed} scope)."
        )
    ids = [p for p in parts if p not in _LITERALS]
    return template, route(state, req, *ids)


def _me(state: SandboxState, req: Request) -> Reply:
    return Reply(200, {**_sm(state)["user"], "href": _href(req, "users/me")})


SURVEY_INCLUDE = ("response_count", "date_created", "date_modified", "language", "question_count")


def _surveys(state: SandboxState, req: Request) -> Reply:
    title = req.params.get("title", "").lower()
    extra = [f for f in req.params.get("include", "").split(",") if f in SURVEY_INCLUDE]  # documented fields
    items = [
        {
            "id": s["id"],
            "title": s["title"],
            "nickname": s["nickname"],
            "href": _href(req, f"surveys/{s['id']}"),
            **{f: s.get(f) for f in extra},
        }
        for s in _sm(state)["surveys"].values()
        if title in s["title"].lower()
    ]
    return _paginate(req, items, 1000)


def _survey(state: SandboxState, req: Request, survey_id: str, details: bool = False) -> Reply:
    survey = _sm(state)["surveys"].get(survey_id)
    if survey is None:
        return error(1020, f"There was an error retrieving the requested resource: survey {survey_id}")
    out = {k: v for k, v in survey.items() if k != "pages" or details}
    out["href"] = _href(req, f"surveys/{survey_id}")
    if details:
        for page in out["pages"]:
            page["href"] = _href(req, f"surveys/{survey_id}/pages/{page['id']}")
    return Reply(200, out)


def _collectors(state: SandboxState, req: Request, survey_id: str) -> Reply:
    if survey_id not in _sm(state)["surveys"]:
        return error(1020, f"Survey {survey_id} was not found.")
    items = [
        {
            "id": c["id"],
            "name": c["name"],
            "type": c["type"],
            "status": c["status"],
            "href": _href(req, f"collectors/{c['id']}"),
        }
        for c in _sm(state)["collectors"].values()
        if c["survey_id"] == survey_id
    ]
    return _paginate(req, items, 1000)


def _create_collector(state: SandboxState, req: Request, survey_id: str) -> Reply:
    if survey_id not in _sm(state)["surveys"]:
        return error(1020, f"Survey {survey_id} was not found.")
    body, bad = _body(req)
    if bad:
        return bad
    kind = body.get("type")
    if kind not in ("email", "weblink"):
        return error(1002, "Invalid value for field 'type': must be 'email' or 'weblink'.")
    collector_id = state.new_sm_id("collector", 410000000)
    now = sm_datetime(state.now)
    collector = {
        "id": collector_id,
        "survey_id": survey_id,
        "type": kind,
        "status": "open",
        "name": body.get("name") or ("Email Invitation" if kind == "email" else "Web Link"),
        "thank_you_message": body.get("thank_you_message", "Thank you for completing our survey!"),
        "allow_multiple_responses": False,
        "anonymous_type": "not_anonymous",
        "edit_response_type": "until_complete",
        "response_count": 0,
        "date_created": now,
        "date_modified": now,
        "sender_email": body.get("sender_email"),
    }
    if kind == "weblink":
        collector["url"] = f"https://www.surveymonkey.com/r/SBX{collector_id}"
    _sm(state)["collectors"][collector_id] = collector
    return Reply(200, {**collector, "href": _href(req, f"collectors/{collector_id}")})


def _collector(state: SandboxState, req: Request, collector_id: str) -> Reply:
    collector = _sm(state)["collectors"].get(collector_id)
    if collector is None:
        return error(1020, f"Collector {collector_id} was not found.")
    count = sum(1 for r in _sm(state)["responses"].values() if r["collector_id"] == collector_id)
    return Reply(
        200, {**collector, "response_count": count, "href": _href(req, f"collectors/{collector_id}")}
    )


def _message_view(req: Request, message: dict) -> dict:
    out = {k: v for k, v in message.items() if k != "recipient_ids"}
    out["href"] = _href(req, f"collectors/{message['collector_id']}/messages/{message['id']}")
    return out


def _get_message(state: SandboxState, collector_id: str, message_id: str) -> tuple[dict | None, Reply | None]:
    if collector_id not in _sm(state)["collectors"]:
        return None, error(1020, f"Collector {collector_id} was not found.")
    message = _sm(state)["messages"].get(message_id)
    if message is None or message["collector_id"] != collector_id:
        return None, error(1020, f"Message {message_id} was not found.")
    return message, None


def _messages(state: SandboxState, req: Request, collector_id: str) -> Reply:
    if collector_id not in _sm(state)["collectors"]:
        return error(1020, f"Collector {collector_id} was not found.")
    items = [
        {
            "id": m["id"],
            "type": m["type"],
            "status": m["status"],
            "is_scheduled": m["is_scheduled"],
            "scheduled_date": m["scheduled_date"],
            "date_created": m["date_created"],
            "href": _href(req, f"collectors/{collector_id}/messages/{m['id']}"),
        }
        for m in _sm(state)["messages"].values()
        if m["collector_id"] == collector_id
    ]
    return _paginate(req, items, 1000)


def _create_message(state: SandboxState, req: Request, collector_id: str) -> Reply:
    collector = _sm(state)["collectors"].get(collector_id)
    if collector is None:
        return error(1020, f"Collector {collector_id} was not found.")
    if collector["type"] != "email":
        return error(1014, "Messages can only be created on email collectors.")
    body, bad = _body(req)
    if bad:
        return bad
    kind = body.get("type")
    if kind not in ("invite", "reminder", "thank_you"):
        return error(1002, "Invalid value for field 'type': must be one of invite, reminder, thank_you.")
    status_filter = body.get("recipient_status")
    if status_filter is not None and status_filter not in simulation.STATUS_FILTER:
        return error(1002, f"Invalid value for field 'recipient_status': {status_filter}.")
    if kind == "reminder" and not any(
        m["type"] == "invite" and m["status"] == "sent"
        for m in _sm(state)["messages"].values()
        if m["collector_id"] == collector_id
    ):
        return error(1026, "A reminder needs an invite message that has been sent on this collector.")
    body_field = "body_html" if body.get("body_html") is not None else "body_text"
    if body.get(body_field) is not None:
        problems = rules.message_body_problems(str(body[body_field]), html=body_field == "body_html")
        if problems:
            return error(
                1002,
                f"Invalid {body_field}: {'; '.join(problems)}. Message must include [SurveyLink], "
                "[OptOutLink], [PrivacyLink] and [FooterLink] and the opt-out and privacy links must be "
                "clearly labeled.",
            )
    message_id = state.new_sm_id("message", 420000000)
    message = {
        "id": message_id,
        "collector_id": collector_id,
        "type": kind,
        "status": "not_sent",
        "recipient_status": status_filter if kind != "invite" else None,
        "subject": body.get("subject", "We want your opinion"),
        "body_html": body.get("body_html", ""),
        "body_text": body.get("body_text", ""),
        "is_branding_enabled": True,
        "is_scheduled": False,
        "scheduled_date": None,
        "date_created": sm_datetime(state.now),
        "recipient_ids": [],
    }
    _sm(state)["messages"][message_id] = message
    return Reply(200, _message_view(req, message))


def _message(state: SandboxState, req: Request, collector_id: str, message_id: str) -> Reply:
    message, bad = _get_message(state, collector_id, message_id)
    return bad or Reply(200, _message_view(req, message))


def _add_recipients(state: SandboxState, req: Request, collector_id: str, message_id: str) -> Reply:
    message, bad = _get_message(state, collector_id, message_id)
    if bad:
        return bad
    if message["type"] != "invite" or message["status"] != "not_sent":
        return error(1026, "Recipients can only be added to an invite message that has not been sent.")
    body, bad = _body(req)
    contacts = body.get("contacts")
    if bad or not isinstance(contacts, list):
        return bad or error(1002, "Field 'contacts' is required and must be a list.")
    sm = _sm(state)
    result: dict[str, list] = {
        k: [] for k in ("succeeded", "invalids", "existing", "bounced", "opted_out", "duplicate")
    }
    in_collector = {
        r["email"].lower() for r in sm["recipients"].values() if r["collector_id"] == collector_id
    }
    seen: set[str] = set()
    for contact in contacts:
        email = str((contact or {}).get("email") or "").strip()
        key = email.lower()
        if not _EMAIL.match(email):
            result["invalids"].append(email)
        elif key in seen:
            result["duplicate"].append(email)
        elif key in in_collector:
            result["existing"].append(email)
        elif key in {e.lower() for e in sm.get("bounced", [])}:
            result["bounced"].append(email)
        elif key in {e.lower() for e in sm.get("opted_out", [])}:
            result["opted_out"].append(email)
        else:
            recipient_id = state.new_sm_id("recipient", 430000000)
            sm["recipients"][recipient_id] = {
                "id": recipient_id,
                "collector_id": collector_id,
                "message_id": message_id,
                "email": email,
                "first_name": contact.get("first_name", ""),
                "last_name": contact.get("last_name", ""),
                "custom_fields": contact.get("custom_fields") or {},
                "extra_fields": contact.get("extra_fields"),
                "survey_response_status": "not_responded",
                "mail_status": "not_sent",
                "date_sent": None,
                "survey_link": f"https://www.surveymonkey.com/r/SBX?sm={recipient_id}",
                "remove_link": f"https://www.surveymonkey.com/optout.aspx?sm={recipient_id}",
            }
            message["recipient_ids"].append(recipient_id)
            result["succeeded"].append(
                {
                    "id": recipient_id,
                    "email": email,
                    "href": _href(req, f"collectors/{collector_id}/recipients/{recipient_id}"),
                }
            )
        seen.add(key)
    return Reply(200, result)


def _recipient_view(req: Request, recipient: dict) -> dict:
    out = {k: v for k, v in recipient.items() if k not in ("message_id", "response_id", "reminders_sent")}
    out["href"] = _href(req, f"collectors/{recipient['collector_id']}/recipients/{recipient['id']}")
    return out


def _message_recipients(state: SandboxState, req: Request, collector_id: str, message_id: str) -> Reply:
    message, bad = _get_message(state, collector_id, message_id)
    if bad:
        return bad
    recipients = _sm(state)["recipients"]
    return _paginate(req, [_recipient_view(req, recipients[r]) for r in message["recipient_ids"]], 1000)


def _collector_recipients(state: SandboxState, req: Request, collector_id: str) -> Reply:
    if collector_id not in _sm(state)["collectors"]:
        return error(1020, f"Collector {collector_id} was not found.")
    items = [
        _recipient_view(req, r)
        for r in _sm(state)["recipients"].values()
        if r["collector_id"] == collector_id
    ]
    return _paginate(req, items, 1000)


def _recipient(state: SandboxState, req: Request, collector_id: str, recipient_id: str) -> Reply:
    recipient = _sm(state)["recipients"].get(recipient_id)
    if recipient is None or recipient["collector_id"] != collector_id:
        return error(1020, f"Recipient {recipient_id} was not found.")
    return Reply(200, _recipient_view(req, recipient))


def _send(state: SandboxState, req: Request, collector_id: str, message_id: str) -> Reply:
    message, bad = _get_message(state, collector_id, message_id)
    if bad:
        return bad
    if message["status"] != "not_sent":
        return error(
            1026,
            f"Message {message_id} has status '{message['status']}'; only not_sent messages can be sent.",
        )
    if message["type"] == "invite" and not message["recipient_ids"]:
        return error(1002, "The message has no recipients.")
    body, bad = _body(req)
    if bad:
        return bad
    scheduled = body.get("scheduled_date")
    if scheduled:
        try:
            when = parse_ts(scheduled)
        except ValueError:
            return error(1002, "Invalid value for field 'scheduled_date'.")
        if when > state.now:
            message.update(status="scheduled", is_scheduled=True, scheduled_date=sm_datetime(when))
            return Reply(200, _message_view(req, message))
    message["scheduled_date"] = sm_datetime(state.now)
    simulation.deliver(state, message)
    return Reply(200, _message_view(req, message))


def _responses_bulk(state: SandboxState, req: Request, owner_id: str, by: str) -> Reply:
    table = _sm(state)["surveys" if by == "survey_id" else "collectors"]
    if owner_id not in table:
        return error(1020, f"{by.split('_')[0].title()} {owner_id} was not found.")
    params = req.params
    try:
        bounds = {
            k: parse_ts(params[k])
            for k in ("start_modified_at", "end_modified_at", "start_created_at", "end_created_at")
            if params.get(k)
        }
    except ValueError:
        return error(1003, "Invalid URL parameter: dates must be ISO 8601 (YYYY-MM-DDTHH:MM:SS).")
    status = params.get("status")
    if status and status not in ("completed", "partial", "overquota", "disqualified"):
        return error(1003, f"Invalid URL parameter: status {status}.")
    sort_by = params.get("sort_by", "date_modified")
    if sort_by not in ("date_modified", "date_created", "id"):
        return error(1003, f"Invalid URL parameter: sort_by {sort_by}.")
    # Filtering and sorting every response on every page is O(n) per page (O(n^2) per listing at 100x):
    # cache the sorted list per query until a response is added or changes (the sim log grows then), with
    # the dates parsed once. The date bounds are left out of the key and applied to the cached list: keyset
    # paging moves start_modified_at on every page.
    responses = _sm(state)["responses"]
    order = params.get("sort_order", "ASC").upper()
    key = json.dumps([owner_id, by, status, sort_by, order])
    version = (id(responses), len(responses), len(state.data["sim"]["log"]))
    cached = state.cache.get("responses_bulk")
    if cached and cached[0] == key and cached[1] == version:
        rows, modified_keys = cached[2], cached[3]
    else:
        rows = _sorted_responses(responses, owner_id, by, status, sort_by, order == "DESC")
        modified_keys = [row[1] for row in rows] if sort_by == "date_modified" and order != "DESC" else None
        state.cache["responses_bulk"] = (key, version, rows, modified_keys)
    if modified_keys is not None:  # ascending by date_modified: the modified bounds are a slice
        start, end = bounds.pop("start_modified_at", None), bounds.pop("end_modified_at", None)
        lo = bisect.bisect_left(modified_keys, start) if start else 0
        hi = bisect.bisect_right(modified_keys, end) if end else len(rows)
        rows = rows[lo:hi]
    items = [r for r, modified, created in rows if not bounds or _within(bounds, modified, created)]
    reply = _paginate(req, items, 100)
    if reply.status == 200:
        simple = params.get("simple") == "true"
        reply.body["data"] = [_response_view(state, req, r, simple) for r in reply.body["data"]]
    return reply


def _sorted_responses(
    responses: dict, owner_id: str, by: str, status: str | None, sort_by: str, descending: bool
) -> list[tuple[dict, datetime, datetime]]:
    rows = [
        (r, parse_ts(r["date_modified"]), parse_ts(r["date_created"]))
        for r in responses.values()
        if r[by] == owner_id and not (status and r["response_status"] != status)
    ]
    rows.sort(
        key=lambda row: (
            row[0]["id"] if sort_by == "id" else row[1] if sort_by == "date_modified" else row[2],
            int(row[0]["id"]),
        ),
        reverse=descending,
    )
    return rows


def _within(bounds: dict, modified: datetime, created: datetime) -> bool:
    return not (
        ("start_modified_at" in bounds and modified < bounds["start_modified_at"])
        or ("end_modified_at" in bounds and modified > bounds["end_modified_at"])
        or ("start_created_at" in bounds and created < bounds["start_created_at"])
        or ("end_created_at" in bounds and created > bounds["end_created_at"])
    )


def _response_view(state: SandboxState, req: Request, response: dict, simple: bool) -> dict:
    out = json.loads(json.dumps(response))
    out["href"] = _href(req, f"surveys/{response['survey_id']}/responses/{response['id']}")
    unknown = state.data["faults"].get("sm_unknown_choice_ids")
    questions = {
        q["id"]: q for p in _sm(state)["surveys"][response["survey_id"]]["pages"] for q in p["questions"]
    }
    for page in out["pages"]:
        for question in page["questions"]:
            for answer in question["answers"]:
                if unknown and "choice_id" in answer:
                    answer["choice_id"] = "9" + answer["choice_id"][::-1]
                    unknown = False if unknown is True else unknown  # one bad id per response
                if simple:
                    spec = questions[question["id"]]
                    question["heading"] = spec["headings"][0]["heading"]
                    texts = {c["id"]: c["text"] for c in spec["answers"].get("choices", [])}
                    answer["simple_text"] = texts.get(answer.get("choice_id"), answer.get("text", ""))
    return out


ROUTES = {
    "GET /users/me": _me,
    "GET /surveys": _surveys,
    "GET /surveys/{id}": _survey,
    "GET /surveys/{id}/details": lambda s, r, i: _survey(s, r, i, details=True),
    "GET /surveys/{id}/collectors": _collectors,
    "POST /surveys/{id}/collectors": _create_collector,
    "GET /collectors/{id}": _collector,
    "GET /collectors/{id}/messages": _messages,
    "POST /collectors/{id}/messages": _create_message,
    "GET /collectors/{id}/messages/{id}": _message,
    "POST /collectors/{id}/messages/{id}/recipients/bulk": _add_recipients,
    "GET /collectors/{id}/messages/{id}/recipients": _message_recipients,
    "POST /collectors/{id}/messages/{id}/send": _send,
    "GET /collectors/{id}/recipients": _collector_recipients,
    "GET /collectors/{id}/recipients/{id}": _recipient,
    "GET /surveys/{id}/responses/bulk": lambda s, r, i: _responses_bulk(s, r, i, "survey_id"),
    "GET /collectors/{id}/responses/bulk": lambda s, r, i: _responses_bulk(s, r, i, "collector_id"),
}
