"""``GET|POST /_sandbox/org``: org settings and deliberate misconfiguration (for preflight tests).

POST body keys (all optional):
- ``sm_scopes``: the scopes the SurveyMonkey token was granted (list of scope names).
- ``case_assignment_rule``: ``{"active": bool, "owner_username": str}``.
- ``describe_overrides``: ``{"Case.Field__c": {"drop": true} | {"externalId": false, "unique": false, "type":
  "string"} | {"picklist_remove": ["Value"]}}``: what ``/sobjects/T/describe`` reports for a field.
- ``survey_edits``: ``[{"survey_title": t, "from": text, "to": text}]``: replace a heading, row or choice
  text (or the title itself) of a SurveyMonkey survey in place.
"""

from __future__ import annotations

from typing import Any

from sandbox import rules
from sandbox.reply import Reply
from sandbox.state import SandboxState

_KEYS = {"sm_scopes", "case_assignment_rule", "describe_overrides", "survey_edits", "sf_token_lifetime_s"}


def handle(state: SandboxState, method: str, body: dict[str, Any]) -> Reply:
    org = rules.org_settings(state)
    if method == "GET":
        return Reply(200, org)
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        return Reply(400, {"error": f"unknown org settings: {unknown}", "known": sorted(_KEYS)})
    for edit in body.pop("survey_edits", None) or []:
        if not _edit_survey(state, edit):
            return Reply(400, {"error": f"no survey text matches {edit}"})
    overrides = body.pop("describe_overrides", None)
    if overrides:
        org.setdefault("describe_overrides", {}).update(overrides)
    org.update(body)
    return Reply(200, org)


def _edit_survey(state: SandboxState, edit: dict[str, Any]) -> bool:
    old, new = edit.get("from"), edit.get("to")
    changed = False
    for survey in state.data["sm"]["surveys"].values():
        if survey["title"] != edit.get("survey_title"):
            continue
        if survey["title"] == old:
            survey["title"], changed = new, True
        for page in survey["pages"]:
            for question in page["questions"]:
                items = list(question["headings"])
                answers = question.get("answers") or {}
                items += answers.get("choices", []) + answers.get("rows", [])
                for item in items:
                    for key in ("heading", "text"):
                        if item.get(key) == old:
                            item[key], changed = new, True
    return changed


def apply_describe_overrides(state: SandboxState, sobject: str, describe: dict) -> dict:
    """The describe document as the (possibly misconfigured) org reports it."""
    overrides = (state.data.get("org") or {}).get("describe_overrides") or {}
    fields = []
    for field in describe["fields"]:
        change = overrides.get(f"{sobject}.{field['name']}")
        if not change:
            fields.append(field)
            continue
        if change.get("drop"):
            continue
        field = {**field, **{k: v for k, v in change.items() if k not in ("drop", "picklist_remove")}}
        removed = set(change.get("picklist_remove") or [])
        field["picklistValues"] = [p for p in field["picklistValues"] if p["value"] not in removed]
        fields.append(field)
    return {**describe, "fields": fields}
