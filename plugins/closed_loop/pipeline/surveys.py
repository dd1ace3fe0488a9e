"""Finding a playbook survey's SurveyMonkey id once: pinned id, else the ledger's cache, else by title."""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)


def _cache_name(title: str) -> str:
    return f"survey_id:{title}"


def resolve_survey_id(sm_hook, ledger, ref, dry_run: bool = False, refresh: bool = False) -> str | None:
    """The survey's id: pinned in the playbook (``ref.id``), else cached in the ledger, else looked up by
    title (one call, then cached so idle runs cost no lookup). None when no survey has that title."""
    if ref.id:
        return str(ref.id)
    cache = _cache_name(ref.title)
    cached = None if refresh else ledger.get_watermark(cache)
    if cached:
        return cached
    survey = sm_hook.find_survey(ref.title)
    if survey is None:
        return None
    if not dry_run:
        ledger.set_watermark(cache, str(survey["id"]))
    return str(survey["id"])


def require_survey_id(sm_hook, ledger, ref, dry_run: bool = False) -> str:
    """``resolve_survey_id`` or a clear error naming the missing title."""
    survey_id = resolve_survey_id(sm_hook, ledger, ref, dry_run=dry_run)
    if survey_id is None:
        raise LookupError(f"no SurveyMonkey survey titled {ref.title!r} (playbook surveys)")
    return survey_id


def carry_over_when_budget_exhausted(step):
    """Decorator for SurveyMonkey-sending steps ``step(sm, ...) -> dict``: when the daily budget runs out
    mid-run, stop cleanly and report it instead of failing the task. Nothing is lost or sent twice: the
    ledger's intents/claims are reconciled and the planned rows picked up by the next run."""

    @functools.wraps(step)
    def run(sm, *args, **kwargs) -> dict:
        from closed_loop.hooks.errors import SurveyMonkeyBudgetExhausted

        calls = sm.calls_made
        try:
            return step(sm, *args, **kwargs)
        except SurveyMonkeyBudgetExhausted as exc:
            log.warning(
                "%s: SurveyMonkey daily budget exhausted mid-run (%s); the rest carries over to the next run",
                step.__name__, exc,
            )  # fmt: skip
            return {"budget_exhausted": True, "carried_over": True, "api_calls": sm.calls_made - calls}

    return run
