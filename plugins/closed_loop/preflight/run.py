"""Gather what the checks need through the configured hooks and run every check (no Airflow import).

Calls: 4 Salesforce describes + 1 User query; SurveyMonkey: a survey lookup and a details read per survey.
A failing API call becomes a failed check with its error, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from closed_loop.domain.survey import SurveyIndex, parse_survey_details
from closed_loop.preflight import checks
from closed_loop.preflight.checks import Check

OBJECTS = ("Account", "Contact", "Case", "Task")
USER_QUERY = "SELECT Username, IsActive FROM User WHERE Username IN {values}"
SF_CALLS_NEEDED = 200  # a busy day's runs of all DAGs, with margin (docs/performance.md)


def _guard(name: str, fix: str, fn: Callable[[], Any]) -> tuple[Any, Check | None]:
    try:
        return fn(), None
    except Exception as exc:
        return None, Check(name, False, f"{type(exc).__name__}: {str(exc)[:200]}", fix)


def _survey(sm, ref) -> SurveyIndex | None:
    found = {"id": ref.id} if ref.id else sm.find_survey(ref.title)
    return parse_survey_details(sm.survey_details(found["id"])) if found else None


def run_preflight(sf, sm, playbook, message_problems: dict[str, str | None]) -> list[Check]:
    """Every check, in a stable order (Salesforce, people, SurveyMonkey, messages, scopes, budgets)."""
    from closed_loop.hooks.surveymonkey import REQUIRED_SCOPES

    out: list[Check] = []
    describes: dict[str, dict] = {}
    for sobject in OBJECTS:
        doc, failed = _guard(
            f"salesforce.describe {sobject}",
            f"give the API user read access to {sobject} and check the connection",
            lambda s=sobject: sf.describe(s),
        )
        if failed:
            out.append(failed)
        describes[sobject] = doc or {}
    out += checks.check_fields(playbook, describes)
    out += checks.check_picklists(playbook, describes)
    usernames = [r.username for r in playbook.people.roles.values()]
    users, failed = _guard(
        "salesforce.users", "check the connection", lambda: list(sf.query_in_chunks(USER_QUERY, usernames))
    )
    out += [failed] if failed else checks.check_people(playbook, users)
    indexes: dict[str, SurveyIndex | None] = {}
    for key in ("main", "recovery_pulse"):
        ref = getattr(playbook.surveys, key)
        index, failed = _guard(f"surveymonkey.survey {key}", "check the SurveyMonkey connection and token",
                               lambda r=ref: _survey(sm, r))  # fmt: skip
        if failed:
            out.append(failed)
        indexes[key] = index
    out += checks.check_surveys(playbook, indexes["main"], indexes["recovery_pulse"])
    out += checks.check_messages(message_problems)
    out.append(checks.check_scopes(REQUIRED_SCOPES, sm.granted_scopes))
    used, total = sf.api_usage() or (None, None)
    out.append(
        checks.check_budget(
            "salesforce.budget", None if used is None else total - used, total, SF_CALLS_NEEDED
        )
    )
    sm_needed = sm.settings.daily_reserve + 20  # a day's dispatch, intake and sweep calls, with the reserve
    out.append(
        checks.check_budget("surveymonkey.budget", sm.rate.day_remaining, sm.rate.day_limit, sm_needed)
    )
    return out


def report(results: list[Check]) -> str:
    """One line per check, then a summary line."""
    failed = [c for c in results if not c.ok]
    lines = [c.line() for c in results]
    lines.append(
        f"preflight: {len(results) - len(failed)} passed, {len(failed)} failed"
        + ("" if failed else " - the org and the surveys match the playbook")
    )
    return "\n".join(lines)
