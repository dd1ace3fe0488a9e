"""SurveyMonkey webhooks in the sandbox: the /v3/webhooks endpoints and signed callback deliveries.

Documented in the v3 API's "Webhooks" section: ``POST /webhooks`` {name, event_type, object_type,
object_ids, subscription_url} (all required; the url "must accept a HEAD request and return a 200";
``object_type: collector`` with ``event_type: collector_created`` is a 400), ``GET /webhooks`` (page,
per_page), ``GET|PATCH|PUT|DELETE /webhooks/{id}``. Callbacks are POSTed to ``subscription_url`` with
``Sm-Apikey`` (the app's client id) and ``Sm-Signature`` (base64 HMAC-SHA1 of the raw body keyed
``"client_id&client_secret"``), body {name, filter_type, filter_id, event_type, event_id, object_type,
object_id, event_datetime, resources{respondent_id, recipient_id, collector_id, survey_id, user_id}}.

A response that becomes completed in the simulation is delivered (in real time, from a background
thread; ``event_datetime`` is the wall clock of the delivery, as SurveyMonkey sends events as they
happen) to every webhook subscribed to its survey or collector. Fault switches: ``webhook_drop`` (count
or true: lost), ``webhook_duplicate`` (count: each delivered twice), ``webhook_delay_ms`` (every delivery
held back, so later ones overtake it), ``webhook_forge`` (count: wrong signature).
Admin: ``GET /_sandbox/webhooks/deliveries``, ``POST /_sandbox/webhooks/burst {"count": n}`` (n fresh
``response_completed`` events for completed responses, round-robin: an event storm).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import secrets
import threading
import time
from datetime import UTC, datetime

import requests

from sandbox import rules
from sandbox.reply import Reply, Request
from sandbox.state import SandboxState

EVENT_TYPES = {
    "response_completed",
    "response_updated",
    "response_disqualified",
    "response_created",
    "response_deleted",
    "response_overquota",
    "collector_created",
    "collector_updated",
    "collector_deleted",
}
OBJECT_TYPES = {"survey", "collector"}
FAULTS = {
    "webhook_drop": "count_or_bool",
    "webhook_duplicate": "count",
    "webhook_delay_ms": "number",
    "webhook_forge": "count",
}
_FIELDS = ("name", "event_type", "object_type", "object_ids", "subscription_url")


def app_credentials(state: SandboxState) -> dict[str, str]:
    """The sandbox app's client id (Sm-Apikey) and secret; created once, kept in the state."""
    return state.data.setdefault(
        "sm_app", {"client_id": secrets.token_hex(8), "client_secret": secrets.token_urlsafe(24)}
    )


def info(state: SandboxState) -> dict[str, str]:
    """The app credentials for the sandbox's JSON line (the receiver's connection)."""
    creds = app_credentials(state)
    return {"sm_client_id": creds["client_id"], "sm_client_secret": creds["client_secret"]}


def sign(body: bytes, client_id: str, client_secret: str) -> str:
    key = f"{client_id}&{client_secret}".encode()
    return base64.b64encode(hmac.new(key, body, hashlib.sha1).digest()).decode("ascii")


def _sm_error(error_id: int, message: str) -> Reply:
    from sandbox.surveymonkey import error

    return error(error_id, message)


def _hooks(state: SandboxState) -> dict[str, dict]:
    return state.data["sm"].setdefault("webhooks", {})


def _view(req: Request, hook: dict) -> dict:
    return {**hook, "href": f"{req.base_url}/v3/webhooks/{hook['id']}"}


def _validate(state: SandboxState, body: dict, partial: bool) -> Reply | None:
    missing = [f for f in _FIELDS if f not in body and not partial]
    if missing:
        return _sm_error(1003, f"Missing required field(s): {', '.join(missing)}")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        return _sm_error(1003, f"Unknown field(s): {', '.join(unknown)}")
    if "name" in body and not (isinstance(body["name"], str) and body["name"].strip()):
        return _sm_error(1004, "name must be a non-empty string")
    if "event_type" in body and body["event_type"] not in EVENT_TYPES:
        return _sm_error(1004, f"Invalid event_type: {body['event_type']!r}")
    if "object_type" in body and body["object_type"] not in OBJECT_TYPES:
        return _sm_error(1004, f"Invalid object_type: {body['object_type']!r}")
    if body.get("object_type") == "collector" and body.get("event_type") == "collector_created":
        return _sm_error(1004, "object_type collector cannot be used with event_type collector_created")
    if "object_ids" in body:
        ids = body["object_ids"]
        if not (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids)):
            return _sm_error(1004, "object_ids must be a non-empty array of ids")
        kind = "surveys" if body.get("object_type", "survey") == "survey" else "collectors"
        unknown_ids = [i for i in ids if i not in state.data["sm"][kind]]
        if unknown_ids:
            return _sm_error(1020, f"Resource not found: {kind} {unknown_ids}")
    if "subscription_url" in body:
        url = body["subscription_url"]
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            return _sm_error(1004, "subscription_url must be an http(s) URL")
        if not _head_ok(url):
            return _sm_error(1004, "subscription_url must accept a HEAD request and return a 200")
    return None


def _head_ok(url: str) -> bool:
    try:
        return requests.head(url, timeout=5, allow_redirects=False).status_code == 200
    except requests.RequestException:
        return False


def handle(state: SandboxState, req: Request) -> tuple[str, Reply]:
    """/v3/webhooks[/{id}] (the caller has authorized the request); each method needs its webhook scope."""
    parts = [p for p in req.path.split("/") if p]
    template = f"{req.method} /webhooks" + ("/{id}" if len(parts) > 1 else "")
    needed = rules.missing_scope(state, template)
    if needed:
        return template, _sm_error(
            1014, f"Permission has not been granted by the user to make this request ({needed} scope)."
        )
    return _route(state, req)


def _route(state: SandboxState, req: Request) -> tuple[str, Reply]:
    from sandbox.surveymonkey import _body, _paginate

    parts = [p for p in req.path.split("/") if p]
    hooks = _hooks(state)
    if len(parts) == 1:
        template = f"{req.method} /webhooks"
        if req.method == "GET":
            items = [
                {"id": h["id"], "name": h["name"], "href": _view(req, h)["href"]} for h in hooks.values()
            ]
            return template, _paginate(req, items, 1000)
        if req.method != "POST":
            return template, _sm_error(1020, f"Resource not found: {req.method} /v3/webhooks")
        body, bad = _body(req)
        bad = bad or _validate(state, body, partial=False)
        if bad:
            return template, bad
        hook = {"id": state.new_sm_id("webhook", 5000000), **{f: body[f] for f in _FIELDS}}
        hooks[hook["id"]] = hook
        return template, Reply(201, _view(req, hook))
    template = f"{req.method} /webhooks/{{id}}"
    hook = hooks.get(parts[1]) if len(parts) == 2 else None
    if hook is None:
        return template, _sm_error(1020, f"Resource not found: webhook {parts[1:]}")
    if req.method == "GET":
        return template, Reply(200, _view(req, hook))
    if req.method == "DELETE":
        del hooks[hook["id"]]
        return template, Reply(200, _view(req, hook))
    if req.method in ("PATCH", "PUT"):
        body, bad = _body(req)
        bad = bad or _validate(state, body, partial=req.method == "PATCH")
        if bad:
            return template, bad
        hook.update({f: body[f] for f in _FIELDS if f in body})
        return template, Reply(200, _view(req, hook))
    return template, _sm_error(1020, f"Resource not found: {req.method} /v3/webhooks/{hook['id']}")


# deliveries --------------------------------------------------------------------
def after_request(state: SandboxState) -> None:
    """Called under the state lock after every request: deliver events for responses that became
    completed since the last call (found in the simulation log)."""
    log = state.data["sim"]["log"]
    cursor = state.cache.get("webhook_log_cursor")
    state.cache["webhook_log_cursor"] = len(log)
    if cursor is None or cursor >= len(log) or not _hooks(state):
        return
    for entry in log[cursor:]:
        completed = entry.get("action") == "completed_partial" or (
            entry.get("action") == "responded" and entry.get("status") == "completed"
        )
        if entry.get("object") == "Response" and completed:
            response = state.data["sm"]["responses"].get(entry["id"])
            if response:
                _emit(state, response)


def _emit(state: SandboxState, response: dict, event_type: str = "response_completed") -> int:
    sent = 0
    for hook in list(_hooks(state).values()):
        if hook["event_type"] != event_type:
            continue
        key = response["survey_id"] if hook["object_type"] == "survey" else response["collector_id"]
        if key not in hook["object_ids"]:
            continue
        _outbox(state).put(state, hook, response)
        sent += 1
    return sent


def burst(state: SandboxState, count: int) -> int:
    """``count`` fresh response_completed events for completed responses, round-robin."""
    completed = [r for r in state.data["sm"]["responses"].values() if r["response_status"] == "completed"]
    sent = 0
    for response in itertools.islice(itertools.cycle(completed), count if completed else 0):
        sent += _emit(state, response)
    return sent


def admin(state: SandboxState, req: Request) -> Reply:
    path = req.path.strip("/")
    if req.method == "GET" and path == "webhooks/deliveries":
        return Reply(200, _outbox(state).log)
    if req.method == "POST" and path == "webhooks/burst":
        try:
            count = int(json.loads(req.body or b"{}").get("count", 0))
        except (ValueError, AttributeError, TypeError):
            return Reply(400, {"error": 'body must be {"count": n}'})
        return Reply(200, {"queued": burst(state, count)})
    return Reply(404, {"error": f"no admin endpoint {req.method} /_sandbox/{path}"})


def _take(faults: dict, name: str) -> bool:
    value = faults.get(name)
    if value is True:
        return True
    if isinstance(value, int) and value > 0:
        faults[name] = value - 1
        if not faults[name]:
            del faults[name]
        return True
    return False


class _Outbox:
    """One delivery thread per sandbox process; deliveries due in time order (delays reorder them)."""

    def __init__(self) -> None:
        self.queue: list[tuple[float, int, dict]] = []
        self.log: list[dict] = []
        self.cond = threading.Condition()
        self.seq = itertools.count()
        self.session = requests.Session()
        threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True).start()

    def put(self, state: SandboxState, hook: dict, response: dict) -> None:
        faults = state.data["faults"]
        creds = app_credentials(state)
        event_id = state.new_sm_id("webhook_event", 90000000)
        if _take(faults, "webhook_drop"):
            self.log.append({"event_id": event_id, "response_id": response["id"], "fault": "dropped"})
            return
        item = {
            "event_id": event_id,
            "url": hook["subscription_url"],
            "hook": {k: hook[k] for k in ("id", "name", "object_type")},
            "response": {k: response[k] for k in ("id", "recipient_id", "collector_id", "survey_id")},
            "client_id": creds["client_id"],
            "secret": creds["client_secret"],
            "forge": _take(faults, "webhook_forge"),
            "queued_at": time.time(),
        }
        copies = 2 if _take(faults, "webhook_duplicate") else 1
        delay = float(faults.get("webhook_delay_ms") or 0) / 1000
        with self.cond:
            for _ in range(copies):
                heapq.heappush(self.queue, (time.monotonic() + delay, next(self.seq), item))
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue or self.queue[0][0] > time.monotonic():
                    self.cond.wait(None if not self.queue else self.queue[0][0] - time.monotonic())
                _, _, item = heapq.heappop(self.queue)
            self._deliver(item)

    def _deliver(self, item: dict) -> None:
        response, hook = item["response"], item["hook"]
        body = json.dumps(
            {
                "name": hook["name"],
                "filter_type": hook["object_type"],
                "filter_id": response["survey_id" if hook["object_type"] == "survey" else "collector_id"],
                "event_type": "response_completed",
                "event_id": item["event_id"],
                "object_type": "response",
                "object_id": response["id"],
                "event_datetime": datetime.now(UTC).isoformat(),
                "resources": {
                    "respondent_id": response["id"],
                    "recipient_id": response["recipient_id"],
                    "collector_id": response["collector_id"],
                    "survey_id": response["survey_id"],
                    "user_id": "1",
                },
            }
        ).encode()
        secret = item["secret"] + ("-forged" if item["forge"] else "")
        headers = {
            "Content-Type": "application/json",
            "Sm-Apikey": item["client_id"],
            "Sm-Signature": sign(body, item["client_id"], secret),
        }
        record = {
            "event_id": item["event_id"],
            "response_id": response["id"],
            "forged": item["forge"],
            "body": body.decode(),
            "headers": headers,
            "queued_at": item["queued_at"],
        }
        try:
            reply = self.session.post(item["url"], data=body, headers=headers, timeout=10)
            record["status"] = reply.status_code
        except requests.RequestException as exc:
            record["status"] = None
            record["error"] = type(exc).__name__
        record["delivered_at"] = time.time()
        self.log.append(record)


def _outbox(state: SandboxState) -> _Outbox:
    outbox = state.cache.get("webhook_outbox")
    if outbox is None:
        outbox = state.cache["webhook_outbox"] = _Outbox()
    return outbox
