"""Admin API under /_sandbox (localhost only, no auth): clock, faults, ground truth, counters."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sandbox import org, simulation, surveymonkey, webhooks
from sandbox.reply import Reply, Request
from sandbox.state import SandboxState, iso, parse_ts, sm_datetime

FAULTS = {  # name -> kind: count (decrements as it fires), bool (until cleared), list, number
    "sf_5xx": "count",
    "sm_5xx": "count",
    "sm_429_burst": "count",
    "sm_429_without_headers": "bool",
    "slow_ms": "number",
    "sf_expire_session": "count_or_bool",
    "sf_request_limit_exceeded": "bool",
    "sf_collection_fail_indexes": "list",
    "sf_malformed_json": "count",
    "sf_truncated_json": "count",
    "sm_malformed_json": "count",
    "sm_truncated_json": "count",
    "sm_unknown_choice_ids": "bool",
    "sm_revoke_token": "bool",
    **webhooks.FAULTS,
}


def empty_counters() -> dict[str, Any]:
    return {"sf": {"total": 0, "endpoints": {}}, "sm": {"total": 0, "endpoints": {}}}


def count(state: SandboxState, system: str, endpoint: str) -> None:
    counters = state.data.setdefault("counters", empty_counters())[system]
    counters["total"] += 1
    counters["endpoints"][endpoint] = counters["endpoints"].get(endpoint, 0) + 1


def _json(req: Request) -> tuple[dict, Reply | None]:
    try:
        body = json.loads(req.body or b"{}")
    except json.JSONDecodeError:
        return {}, Reply(400, {"error": "body is not JSON"})
    return (body, None) if isinstance(body, dict) else ({}, Reply(400, {"error": "body must be an object"}))


def _clock(state: SandboxState, req: Request) -> Reply:
    if req.method == "GET":
        return Reply(200, {"now": iso(state.now)})
    body, bad = _json(req)
    if bad:
        return bad
    try:
        if "now" in body:
            target = parse_ts(body["now"])
        else:
            target = state.now + timedelta(
                days=float(body.get("advance_days", 0)),
                hours=float(body.get("advance_hours", 0)),
                minutes=float(body.get("advance_minutes", 0)),
            )
    except (TypeError, ValueError) as exc:
        return Reply(400, {"error": f"bad clock request: {exc}"})
    if target < state.now:
        return Reply(400, {"error": "the sandbox clock cannot go backwards", "now": iso(state.now)})
    events = simulation.advance(state, target)
    return Reply(200, {"now": iso(state.now), "events": events})


def _faults(state: SandboxState, req: Request) -> Reply:
    faults = state.data["faults"]
    if req.method == "DELETE":
        faults.clear()
    elif req.method == "POST":
        body, bad = _json(req)
        if bad:
            return bad
        unknown = sorted(set(body) - set(FAULTS))
        if unknown:
            return Reply(400, {"error": f"unknown faults: {unknown}", "known": sorted(FAULTS)})
        for name, value in body.items():
            if value in (None, False, 0, []):
                faults.pop(name, None)
            else:
                faults[name] = value
    return Reply(200, {"faults": faults, "known": FAULTS})


def _messages(state: SandboxState) -> list[dict]:
    sm = state.data["sm"]
    out = []
    for message in sm["messages"].values():
        recipients = [sm["recipients"][r] for r in message["recipient_ids"]]
        out.append(
            {
                **{k: v for k, v in message.items() if k != "recipient_ids"},
                "recipients": [
                    {
                        "id": r["id"],
                        "email": r["email"],
                        "survey_response_status": r["survey_response_status"],
                        "mail_status": r["mail_status"],
                        "custom_fields": r["custom_fields"],
                    }
                    for r in recipients
                ],
            }
        )
    return out


def _reword(state: SandboxState, req: Request) -> Reply:
    """Edit a question's heading as the survey's owner would ({survey_id, heading, new_heading}): the
    survey's date_modified becomes the sandbox clock's now."""
    body, bad = _json(req)
    if bad:
        return bad
    survey = state.data["sm"]["surveys"].get(str(body.get("survey_id")))
    questions = [q for p in (survey or {}).get("pages", []) for q in p["questions"]]
    match = [q for q in questions if q["headings"][0]["heading"] == body.get("heading")]
    if not match:
        return Reply(404, {"error": "no such survey question"})
    match[0]["headings"][0]["heading"] = str(body.get("new_heading"))
    survey["date_modified"] = sm_datetime(state.now)
    return Reply(200, {"survey_id": survey["id"], "date_modified": survey["date_modified"]})


def handle(state: SandboxState, req: Request) -> Reply:
    path = req.path.strip("/")
    data = state.data
    routes = {
        ("GET", ""): lambda: Reply(200, {"endpoints": sorted(f"{m} /_sandbox/{p}" for m, p in routes)}),
        ("GET", "clock"): lambda: _clock(state, req),
        ("POST", "clock"): lambda: _clock(state, req),
        ("GET", "faults"): lambda: _faults(state, req),
        ("POST", "faults"): lambda: _faults(state, req),
        ("DELETE", "faults"): lambda: _faults(state, req),
        ("GET", "state"): lambda: Reply(200, data),
        ("GET", "counters"): lambda: Reply(200, data.setdefault("counters", empty_counters())),
        ("POST", "counters/reset"): lambda: Reply(
            200, data.update(counters=empty_counters()) or data["counters"]
        ),
        ("POST", "rate-limits/reset"): lambda: _reset_limits(state),
        ("GET", "messages"): lambda: Reply(200, _messages(state)),
        ("GET", "responses"): lambda: Reply(200, list(data["sm"]["responses"].values())),
        ("GET", "log"): lambda: Reply(200, data["sim"]["log"]),
        ("GET", "plans"): lambda: Reply(200, data["sim"]["plans"]),
        ("GET", "config"): lambda: Reply(200, data["config"]),
        ("POST", "config"): lambda: _config(state, req),
        ("GET", "org"): lambda: org.handle(state, "GET", {}),
        ("POST", "org"): lambda: _org(state, req),
        ("POST", "surveys/reword"): lambda: _reword(state, req),
    }
    if path.startswith("records/") and req.method == "GET":
        sobject = path.split("/", 1)[1]
        return Reply(200, list(data["sf"].get(sobject, {}).values()))
    route = routes.get((req.method, path))
    return route() if route else Reply(404, {"error": f"no admin endpoint {req.method} /_sandbox/{path}"})


def _org(state: SandboxState, req: Request) -> Reply:
    body, bad = _json(req)
    return bad or org.handle(state, "POST", body)


def _reset_limits(state: SandboxState) -> Reply:
    state.data["sf_usage"] = {}
    state.data.pop("sm_day", None)
    surveymonkey.reset_minute_window()
    return Reply(200, {"reset": True})


def _config(state: SandboxState, req: Request) -> Reply:
    body, bad = _json(req)
    if bad:
        return bad
    allowed = {"sf_daily_limit", "sm_minute_limit", "sm_day_limit"}
    if set(body) - allowed:
        return Reply(400, {"error": f"unknown settings: {sorted(set(body) - allowed)}"})
    state.data["config"].update({k: int(v) for k, v in body.items()})
    return Reply(200, state.data["config"])
