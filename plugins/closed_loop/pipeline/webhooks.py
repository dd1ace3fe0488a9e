"""Create or repair the SurveyMonkey webhook that wakes response_intake (no Airflow import).

One webhook named ``WEBHOOK_NAME``: ``response_completed`` on the main and the recovery pulse surveys,
delivered to the receiver's public ``subscription_url``. Idempotent: an identical webhook is left alone
(one list call + one read per webhook of ours), a drifted one is PATCHed back, extra copies are deleted,
a missing one is created. ``dry_run`` reports the plan and writes nothing.
"""

from __future__ import annotations

import logging

from closed_loop.pipeline.surveys import require_survey_id

WEBHOOK_NAME = "closed-loop response intake"
log = logging.getLogger(__name__)


def desired_webhook(survey_ids: list[str], subscription_url: str) -> dict:
    return {
        "name": WEBHOOK_NAME,
        "event_type": "response_completed",
        "object_type": "survey",
        "object_ids": sorted(survey_ids),
        "subscription_url": subscription_url,
    }


def _drift(current: dict, wanted: dict) -> dict:
    """The fields of ``wanted`` that ``current`` does not match (object_ids compared as sets)."""
    changes = {}
    for field, value in wanted.items():
        have = current.get(field)
        same = sorted(have or []) == value if field == "object_ids" else have == value
        if not same:
            changes[field] = value
    return changes


def ensure_webhook(sm, ledger, playbook, subscription_url: str, dry_run: bool = False) -> dict:
    """Make SurveyMonkey's webhooks hold exactly one correct closed-loop webhook; returns a report."""
    if not subscription_url.startswith("https://") and not subscription_url.startswith("http://"):
        raise ValueError("subscription_url must be the receiver's public http(s) URL")
    surveys = [
        require_survey_id(sm, ledger, playbook.surveys.main, dry_run=dry_run),
        require_survey_id(sm, ledger, playbook.surveys.recovery_pulse, dry_run=dry_run),
    ]
    wanted = desired_webhook(surveys, subscription_url)
    ours = [
        sm.request("GET", f"/webhooks/{item['id']}")
        for item in sm.paginate("/webhooks")
        if item.get("name") == WEBHOOK_NAME
    ]
    keep, extras = (ours[0], ours[1:]) if ours else (None, [])
    changes = _drift(keep, wanted) if keep else wanted
    action = "created" if keep is None else ("repaired" if changes else "unchanged")
    report = {
        "action": action,
        "webhook_id": keep["id"] if keep else None,
        "changed_fields": sorted(changes) if keep else [],
        "deleted_duplicates": len(extras),
        "survey_ids": wanted["object_ids"],
        "dry_run": dry_run,
    }
    if dry_run:
        log.info("Webhook plan (dry run): %s", report)
        return report
    if keep is None:
        report["webhook_id"] = sm.request("POST", "/webhooks", json=wanted)["id"]
    elif changes:
        sm.request("PATCH", f"/webhooks/{keep['id']}", json=changes)
    for extra in extras:
        sm.request("DELETE", f"/webhooks/{extra['id']}")
    log.info("Webhook %s: %s", report["action"], report)
    return report
