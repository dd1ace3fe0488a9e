"""The one summary each closed-loop task logs: counts, what was quarantined and why, the accounts and
cases touched (ids only, never PII), and the API budget left today for each system the task called.

Built after the task's work from its result, the ledger rows written since the task started and the
rate-limit headers its hooks saw (no extra API call). No Airflow import.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

SHOWN_IDS = 20  # ids listed per kind; the rest are counted
REASON_MAX = 160


def _ids(values: Iterable[Any]) -> str:
    ids = sorted({str(v) for v in values if v})
    if not ids:
        return "none"
    more = f" (+{len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else ""
    return f"{len(ids)}: " + ", ".join(ids[:SHOWN_IDS]) + more


def ledger_facts(ledger, since: dt.datetime, result: Mapping) -> dict:
    """What the task wrote to the ledger since ``since``: quarantine (source, reason) counts and the ids of
    the cases and accounts it touched."""
    written = ledger.written_since(since, result.get("case_keys") or ())
    quarantined, cases, accounts = written["quarantined"], written["cases"], written["accounts"]
    reasons = Counter((src, (why or "")[:REASON_MAX]) for src, why in quarantined)
    return {"quarantined": reasons, "cases": cases, "accounts": accounts}


def budget_left(hooks: Iterable[Any]) -> list[str]:
    """Each system's API budget left today, from the last rate-limit headers its hook saw."""
    out = []
    for hook in hooks:
        if hasattr(hook, "api_usage"):  # Salesforce: Sforce-Limit-Info api-usage=used/max
            usage = hook.api_usage()
            calls = getattr(hook, "calls_made", 0)
            out.append(
                f"Salesforce {usage[1] - usage[0]:,} of {usage[1]:,} requests left (this task: {calls})"
                if usage
                else "Salesforce not called"
            )
        elif hasattr(hook, "rate"):  # SurveyMonkey: X-Ratelimit-App-Global-Day-*
            rate, calls = hook.rate, getattr(hook, "calls_made", 0)
            out.append(
                f"SurveyMonkey {rate.day_remaining:,} of {rate.day_limit:,} calls left (this task: {calls})"
                if rate.day_remaining is not None and rate.day_limit is not None
                else "SurveyMonkey not called"
            )
    return out


def summary_lines(task_id: str, result: Mapping, facts: Mapping | None, budget: list[str]) -> list[str]:
    """The summary as lines (the caller logs them as one record)."""
    counts = ", ".join(
        f"{k}={v}" for k, v in sorted(result.items()) if v is None or isinstance(v, bool | int | float | str)
    )
    nested = ", ".join(f"{k}={dict(v)}" for k, v in sorted(result.items()) if isinstance(v, Mapping) and v)
    lines = [f"closed-loop summary of {task_id}", f"  counts: {counts or 'none'}"]
    if nested:
        lines.append(f"  details: {nested}")
    if facts is not None:
        q = facts["quarantined"]
        lines.append(f"  quarantined: {sum(q.values())}")
        lines += [f"    {n} x {src}: {why}" for (src, why), n in sorted(q.items())]
        lines.append(f"  cases touched {_ids(facts['cases'])}")
        lines.append(f"  accounts touched {_ids(facts['accounts'])}")
    lines.append("  API budget left today: " + ("; ".join(budget) or "no API called"))
    return lines
