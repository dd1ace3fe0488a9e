"""One HTTPS port for both APIs: /services/data/vXX.X (Salesforce), /v3 (SurveyMonkey), /_sandbox (admin).
Fault switches are applied here, around the API handlers; state access is serialized by the state lock."""

from __future__ import annotations

import ssl
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from sandbox import admin, oauth, rules, salesforce, surveymonkey, webhooks
from sandbox.reply import Reply, Request
from sandbox.state import SandboxState

_SF_PREFIX = "/services/data"


def _sf_5xx(attempt: int) -> Reply:
    if attempt % 2:
        return Reply(
            503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "Server is temporarily unavailable"}]
        )
    return Reply(
        500,
        [
            {
                "errorCode": "UNKNOWN_EXCEPTION",
                "message": "An unexpected error occurred. Please "
                "include this ErrorId if you contact support: "
                "1234567890-12345 (-1234567890)",
            }
        ],
    )


def _take(faults: dict, name: str) -> int:
    """Fire one unit of a counting fault; returns how many had been fired before (0-based attempt)."""
    left = faults.get(name) or 0
    if not isinstance(left, int) or left <= 0:
        return -1
    fired = faults.setdefault("_fired", {})
    fired[name] = fired.get(name, 0) + 1
    faults[name] = left - 1
    if faults[name] == 0:
        del faults[name]
    return fired[name] - 1


def _mangle(state: SandboxState, system: str, reply: Reply) -> Reply:
    if not 200 <= reply.status < 300 or reply.body is None:
        return reply
    faults = state.data["faults"]
    payload = reply.payload()
    if _take(faults, f"{system}_malformed_json") >= 0:
        reply.raw = payload[: len(payload) // 3] + b"<html><body>Bad Gateway</body></html>,}"
    elif _take(faults, f"{system}_truncated_json") >= 0:
        reply.raw = payload[: max(1, len(payload) // 2)]
    return reply


def route(state: SandboxState, req: Request, client_ip: str) -> Reply:
    """Serve one request (under the state lock)."""
    faults = state.data["faults"]
    if req.path.startswith("/_sandbox"):
        if client_ip not in ("127.0.0.1", "::1"):
            return Reply(403, {"error": "admin API is localhost only"})
        if req.path.startswith("/_sandbox/webhooks/"):
            return webhooks.admin(
                state,
                Request(
                    req.method, req.path[len("/_sandbox") :], req.params, req.headers, req.body, req.base_url
                ),
            )
        return admin.handle(
            state,
            Request(
                req.method, req.path[len("/_sandbox") :], req.params, req.headers, req.body, req.base_url
            ),
        )
    if req.path == "/services/oauth2/token":
        admin.count(state, "sf", f"{req.method} oauth2/token")
        return oauth.token(state, req)
    if req.path.startswith(_SF_PREFIX):
        rest = req.path[len(_SF_PREFIX) :].strip("/")
        version, _, below = rest.partition("/")
        if not version:
            return Reply(200, [{"label": "Summer '24", "url": "/services/data/v61.0", "version": "61.0"}])
        if not (version.startswith("v") and version[1:].replace(".", "").isdigit()):
            return salesforce.error(404, *salesforce.NOT_FOUND)
        sub = Request(req.method, below, req.params, req.headers, req.body, req.base_url)
        template = f"{req.method} {below.split('/')[0] if below else '/'}"
        attempt = _take(faults, "sf_5xx")
        if attempt >= 0:
            reply = _sf_5xx(attempt)
        else:
            reply = salesforce.authorize(state, sub)
            if reply is None:
                template, reply = salesforce.handle(state, sub, version[1:])
                reply = _mangle(state, "sf", reply)
        admin.count(state, "sf", template)
        reply.headers.update(salesforce.limit_header(state))
        return reply
    if req.path == "/v3" or req.path.startswith("/v3/"):
        sub = Request(req.method, req.path[3:].strip("/"), req.params, req.headers, req.body, req.base_url)
        template = f"{req.method} /{sub.path}"
        attempt = _take(faults, "sm_5xx")
        if attempt >= 0:
            reply = surveymonkey.error(1051 if attempt % 2 else 1050, "An internal error occurred.")
        elif _take(faults, "sm_429_burst") >= 0:
            reply = surveymonkey.error(1040, "Too many requests were made, try again later.")
            if not faults.get("sm_429_without_headers"):
                reply.headers.update(surveymonkey.rate_headers(state))
                reply.headers["X-Ratelimit-App-Global-Minute-Remaining"] = "0"
            admin.count(state, "sm", template)
            return reply
        else:
            reply = surveymonkey.authorize(state, sub)
            if reply is None:
                api = webhooks if sub.path.split("/")[0] == "webhooks" else surveymonkey
                template, reply = api.handle(state, sub)
                reply = _mangle(state, "sm", reply)
        admin.count(state, "sm", template)
        if sub.headers.get("authorization"):
            reply.headers.update(surveymonkey.rate_headers(state))
            reply.headers.update(rules.scope_headers(state))
        return reply
    return Reply(404, {"error": "not found"})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - no request logs (PII)
        return

    def _serve(self) -> None:
        state = self.server.state
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
        req = Request(
            self.command,
            split.path.rstrip("/") or "/",
            dict(parse_qsl(split.query)),
            headers,
            body,
            f"https://{host}",
        )
        slow = state.data["faults"].get("slow_ms")
        if slow and not split.path.startswith("/_sandbox"):
            time.sleep(float(slow) / 1000)
        with state.lock:
            reply = route(state, req, self.client_address[0])
            webhooks.after_request(state)
            if self.command != "GET" or split.path.startswith("/services") or split.path.startswith("/v3"):
                state.dirty = True
            if self.command != "GET" and not self.server.save_interval:
                state.save()
                state.dirty = False
        payload = reply.payload()
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _serve


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, host: str, port: int, state: SandboxState, cert_file: str, save_interval: float = 0
    ) -> None:
        super().__init__((host, port), Handler)
        self.state = state
        self.save_interval = save_interval  # 0: save after every write; else at most every N s (big states)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self._last_save = time.monotonic()

    def service_actions(self) -> None:
        """Flush changes not saved yet (GET counters; writes with a save interval) at most once a second,
        or once per save interval."""
        if self.state.dirty and time.monotonic() - self._last_save > max(1.0, self.save_interval):
            with self.state.lock:
                self.state.save()
                self.state.dirty = False
            self._last_save = time.monotonic()
