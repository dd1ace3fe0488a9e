"""Salesforce ``POST /composite``: up to 25 subrequests in one call that counts once toward the API limits.

Documented rules (REST API Developer Guide, "Send Multiple Requests Using Composite" and "Composite Request
Body"; https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-composite-post.html):
at most 25 subrequests, at most 5 of them sObject Collections or query operations (Query, QueryAll, Query
More); each subrequest has a ``method``, a ``url`` under ``/services/data/vXX.X/`` (no nested composite) and
a unique ``referenceId``; ``allOrNone`` true rolls back everything when a subrequest fails and answers the
others with 400 ``PROCESSING_HALTED``. The top-level reply is 200 with ``compositeResponse`` in order.
Subset: ``@{reference}`` notation is not supported (400), subrequest ``httpHeaders`` are passed through.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from sandbox.reply import Reply, Request
from sandbox.state import SandboxState

MAX_SUBREQUESTS = 25
MAX_HEAVY = 5  # sObject Collections or query operations per composite call
_REFERENCE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
HALTED = {
    "errorCode": "PROCESSING_HALTED",
    "message": "The transaction was rolled back since another operation in the same transaction failed.",
}


def _bad(message: str, code: str = "INVALID_API_INPUT") -> Reply:
    return Reply(400, [{"message": message, "errorCode": code}])


def _is_heavy(path: str) -> bool:
    head = path.split("/", 1)[0]
    return head in ("query", "queryAll") or path.startswith("composite/sobjects")


def handle(
    state: SandboxState,
    req: Request,
    version: str,
    dispatch: Callable[[SandboxState, Request, str], tuple[str, Reply]],
) -> Reply:
    """Validate and run one composite request; ``dispatch`` serves each subrequest (no budget count)."""
    try:
        body = req.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _bad(f"Unexpected character: {exc}", "JSON_PARSER_ERROR")
    subs = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(subs, list) or not subs:
        return _bad("compositeRequest: a non-empty list of subrequests is required", "JSON_PARSER_ERROR")
    if len(subs) > MAX_SUBREQUESTS:
        return _bad(f"Composite requests are limited to {MAX_SUBREQUESTS} subrequests, got {len(subs)}")
    prefix = f"/services/data/v{version}/"
    parsed, seen = [], set()
    for sub in subs:
        if not isinstance(sub, dict) or not {"method", "url", "referenceId"} <= set(sub):
            return _bad("each subrequest needs method, url and referenceId", "JSON_PARSER_ERROR")
        ref, url = str(sub["referenceId"]), str(sub["url"])
        if not _REFERENCE_ID.match(ref) or ref in seen:
            return _bad(f"referenceId {ref!r} must be unique, start with a letter, alphanumeric/underscore")
        seen.add(ref)
        if "@{" in url or "@{" in json.dumps(sub.get("body")):
            return _bad("reference notation @{...} is not supported by this sandbox")
        split = urlsplit(url)
        if not split.path.startswith(prefix):
            return _bad(f"subrequest url must start with {prefix}: {url}")
        path = split.path[len(prefix) :].strip("/")
        if path.split("/")[0] == "composite" and not path.startswith("composite/sobjects"):
            return _bad("a composite subrequest cannot be a composite request")
        parsed.append((sub, ref, path, dict(parse_qsl(split.query))))
    heavy = sum(_is_heavy(path) for _, _, path, _ in parsed)
    if heavy > MAX_HEAVY:
        return _bad(f"at most {MAX_HEAVY} sObject Collections or query subrequests per call, got {heavy}")
    all_or_none = bool(body.get("allOrNone"))
    snapshot = copy.deepcopy({k: state.data[k] for k in ("sf", "seq", "sim")}) if all_or_none else {}
    results = []
    for sub, ref, path, params in parsed:
        headers = {**req.headers, **{k.lower(): str(v) for k, v in (sub.get("httpHeaders") or {}).items()}}
        payload = json.dumps(sub["body"]).encode() if sub.get("body") is not None else b""
        inner = Request(str(sub["method"]).upper(), path, params, headers, payload, req.base_url)
        template, reply = dispatch(state, inner, version)
        _count_subrequest(state, template)
        results.append(
            {"body": reply.body, "httpHeaders": {}, "httpStatusCode": reply.status, "referenceId": ref}
        )
        if all_or_none and reply.status >= 400:
            break
    failed = {r["referenceId"] for r in results if r["httpStatusCode"] >= 400}
    if all_or_none and failed:
        state.data.update(snapshot)
        by_ref = {r["referenceId"]: r for r in results}
        halted = {"body": [HALTED], "httpHeaders": {}, "httpStatusCode": 400}
        refs = [ref for _, ref, _, _ in parsed]
        results = [by_ref[ref] if ref in failed else {**halted, "referenceId": ref} for ref in refs]
    return Reply(200, {"compositeResponse": results})


def _count_subrequest(state: SandboxState, template: str) -> None:
    """Counters: ``sf.subrequests`` by endpoint (the call itself is counted once, as ``POST composite``)."""
    from sandbox.admin import empty_counters

    counters = state.data.setdefault("counters", empty_counters())["sf"]
    subs = counters.setdefault("subrequests", {})
    subs[template] = subs.get(template, 0) + 1
