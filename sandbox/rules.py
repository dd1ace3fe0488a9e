"""Documented API rules the sandbox enforces on top of plain CRUD (each listed in sandbox/README.md).

- SurveyMonkey message bodies must carry [SurveyLink], [OptOutLink], [PrivacyLink] and [FooterLink], the
  opt-out and privacy links clearly labelled (v3 docs, "Collectors and Invite Messages").
- SurveyMonkey scopes: each endpoint needs its scope; a token without it gets 403 id 1014 (v3 docs,
  "Scopes" and each endpoint's "Available Methods", error codes table).
- Salesforce Case assignment rule: the org has an active default Case assignment rule; REST creates and
  updates of a Case apply it unless the request sends ``Sforce-Auto-Assign: FALSE`` (REST API Developer
  Guide, "Assignment Rule Header").

Org settings live in ``state.data["org"]`` (see ``org_settings``) and are changed through
``POST /_sandbox/org`` (sandbox/org.py), so tests can build a misconfigured org.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.state import SandboxState

# -- org settings ---------------------------------------------------------------------------------
ALL_SM_SCOPES = (
    "surveys_read",
    "collectors_read",
    "collectors_write",
    "responses_read",
    "responses_read_detail",
    "users_read",
    "contacts_read",
    "webhooks_read",
    "webhooks_write",
)


def org_settings(state: SandboxState) -> dict[str, Any]:
    """The org's settings, created with the defaults of a correctly configured org on first use."""
    org = state.data.setdefault("org", {})
    org.setdefault("sm_scopes", list(ALL_SM_SCOPES))
    org.setdefault(
        "case_assignment_rule", {"active": True, "owner_username": "integration@closedloop.example"}
    )
    return org


# -- SurveyMonkey: message body merge tags ---------------------------------------------------------
REQUIRED_TAGS = ("[SurveyLink]", "[OptOutLink]", "[PrivacyLink]", "[FooterLink]")
LABELLED_TAGS = ("[OptOutLink]", "[PrivacyLink]")
_ANCHOR = re.compile(r"<a\b[^>]*\bhref\s*=\s*[\"']\s*(\[[A-Za-z]+\])\s*[\"'][^>]*>(.*?)</a\s*>", re.I | re.S)
_TAG_TEXT = re.compile(r"<[^>]+>")


def message_body_problems(body: str, html: bool) -> list[str]:
    """What makes a message body unacceptable: missing merge tags, or an opt-out/privacy link that is not
    labelled (HTML: the tag must be the href of a link with visible text; text: words on the tag's line)."""
    problems = [f"missing {tag}" for tag in REQUIRED_TAGS if tag not in body]
    for tag in LABELLED_TAGS:
        if tag in body and not _labelled(body, tag, html):
            problems.append(f"{tag} is not clearly labelled")
    return problems


def _labelled(body: str, tag: str, html: bool) -> bool:
    if html:
        return any(found == tag and _TAG_TEXT.sub("", text).strip() for found, text in _ANCHOR.findall(body))
    return all(
        re.sub(r"\[[A-Za-z]+\]", "", line).strip(" :-|\t") for line in body.splitlines() if tag in line
    )


# -- SurveyMonkey: scopes per endpoint --------------------------------------------------------------
SCOPE_BY_ENDPOINT = {
    "GET /users/me": "users_read",
    "GET /surveys": "surveys_read",
    "GET /surveys/{id}": "surveys_read",
    "GET /surveys/{id}/details": "surveys_read",
    "GET /surveys/{id}/collectors": "collectors_read",
    "POST /surveys/{id}/collectors": "collectors_write",
    "GET /collectors/{id}": "collectors_read",
    "GET /collectors/{id}/messages": "collectors_read",
    "POST /collectors/{id}/messages": "collectors_write",
    "GET /collectors/{id}/messages/{id}": "collectors_read",
    "POST /collectors/{id}/messages/{id}/recipients/bulk": "collectors_write",
    "GET /collectors/{id}/messages/{id}/recipients": "collectors_read",
    "POST /collectors/{id}/messages/{id}/send": "collectors_write",
    "GET /collectors/{id}/recipients": "collectors_read",
    "GET /collectors/{id}/recipients/{id}": "collectors_read",
    "GET /surveys/{id}/responses/bulk": "responses_read_detail",
    "GET /collectors/{id}/responses/bulk": "responses_read_detail",
    "GET /webhooks": "webhooks_read",
    "GET /webhooks/{id}": "webhooks_read",
    "POST /webhooks": "webhooks_write",
    "PATCH /webhooks/{id}": "webhooks_write",
    "PUT /webhooks/{id}": "webhooks_write",
    "DELETE /webhooks/{id}": "webhooks_write",
}
SCOPE_LABELS = {
    "surveys_read": "View Surveys",
    "collectors_read": "View Collectors",
    "collectors_write": "Create/Modify Collectors",
    "responses_read": "View Responses",
    "responses_read_detail": "View Response Details",
    "users_read": "View Users",
    "contacts_read": "View Contacts",
    "webhooks_read": "View Webhooks",
    "webhooks_write": "Create/Modify Webhooks",
}


def missing_scope(state: SandboxState, endpoint: str) -> str | None:
    """The scope ``endpoint`` needs that the token lacks (None when granted or not scoped)."""
    needed = SCOPE_BY_ENDPOINT.get(endpoint)
    if needed is None or needed in org_settings(state)["sm_scopes"]:
        return None
    return needed


def scope_headers(state: SandboxState) -> dict[str, str]:
    """``X-OAuth-Scopes-Granted`` / ``-Available`` (v3 docs, "Headers")."""
    return {
        "X-OAuth-Scopes-Granted": ",".join(org_settings(state)["sm_scopes"]),
        "X-OAuth-Scopes-Available": ",".join(ALL_SM_SCOPES),
    }


# -- Salesforce: the default Case assignment rule ----------------------------------------------------
ASSIGNMENT_RULE_OBJECTS = frozenset({"Case"})


def auto_assign_requested(headers: dict[str, str]) -> bool:
    """``Sforce-Auto-Assign``: absent or TRUE (any case) applies the rules; FALSE does not. An
    AssignmentRule id also applies (the sandbox has a single rule)."""
    value = (headers.get("sforce-auto-assign") or "TRUE").strip()
    return value.upper() != "FALSE"


def assignment_owner(state: SandboxState, sobject: str, headers: dict[str, str] | None) -> str | None:
    """The user id the org's active Case assignment rule gives a record written with ``headers``, or
    None when no rule applies."""
    if sobject not in ASSIGNMENT_RULE_OBJECTS or headers is None or not auto_assign_requested(headers):
        return None
    rule = org_settings(state)["case_assignment_rule"]
    if not rule.get("active"):
        return None
    users = state.data["sf"].get("User", {}).values()
    return next((u["Id"] for u in users if u.get("Username") == rule.get("owner_username")), None)
