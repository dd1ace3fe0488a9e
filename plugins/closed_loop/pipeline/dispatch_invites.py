"""survey_dispatch step 3: today's invites as one SurveyMonkey batch (a collector named for the logical
date, one invite message), claimed in the ledger before every call; a rerun reconciles first."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass

from closed_loop.pipeline.dispatch_adopt import CHECKED, batch_name, reconcile_with_surveymonkey
from closed_loop.pipeline.dispatch_plan import apply_plan, plan_from_ledger
from closed_loop.pipeline.dispatch_send import BULK_CHUNK, complete_message
from closed_loop.pipeline.surveys import carry_over_when_budget_exhausted, require_survey_id
from closed_loop.survey_messages import render_message

log = logging.getLogger(__name__)


def _registry_name(today: dt.date) -> str:
    return f"survey_dispatch.batch.{today.isoformat()}"


def _registry(ledger, today: dt.date) -> dict:
    return json.loads(ledger.get_watermark(_registry_name(today)) or "{}")


def _save_registry(ledger, today: dt.date, registry: dict) -> None:
    ledger.set_watermark(_registry_name(today), json.dumps(registry, sort_keys=True))


@carry_over_when_budget_exhausted
def send_invites(sm, ledger, playbook, today: dt.date, *, run_id: str, dry_run: bool = False) -> dict:
    """Plan today's invites and send them as one batch; reconcile earlier unfinished intents first, and
    the ledger with SurveyMonkey (``dispatch_adopt``) before anything is sent.

    Returns counts: planned/held/skipped decisions, sent, rejected, reconciled, adopted (found already
    sent in SurveyMonkey), carried_over, api_calls.
    """
    start_calls = sm.calls_made
    reconciled = 0 if dry_run else _reconcile_intents(sm, ledger, today)
    decisions, contacts = plan_from_ledger(ledger, playbook, today)
    actions = Counter(d.action for d in decisions)
    out = {"due": actions["send"], "held": actions["hold"], "skipped": actions["skip"], "sent": 0,
           "rejected": 0, "reconciled": reconciled, "adopted": 0, "carried_over": 0,
           "dry_run": dry_run}  # fmt: skip
    if dry_run:
        log.info(
            "send_invites %s dry run: would send %s",
            today,
            [d.send_key for d in decisions if d.action == "send"],
        )
        return out | {"api_calls": 0}
    apply_plan(ledger, decisions)
    due_keys = {d.send_key for d in decisions if d.action == "send"}
    if _still_planned(ledger, today, due_keys):
        out |= _send_due(sm, ledger, playbook, today, run_id, due_keys, contacts)
    out["api_calls"] = sm.calls_made - start_calls
    log.debug("send_invites %s: %s", today, out)
    return out


def _still_planned(ledger, today: dt.date, due_keys: set[str]) -> list[dict]:
    return [r for r in ledger.sends_due(today, kind="invite") if r["send_key"] in due_keys]


def _send_due(sm, ledger, playbook, today, run_id, due_keys, contacts) -> dict:
    """Check the budget, reconcile with SurveyMonkey (adopting what it already sent), send the rest."""
    from closed_loop.hooks.errors import SurveyMonkeyBudgetExhausted

    rows = _still_planned(ledger, today, due_keys)
    survey_id = require_survey_id(sm, ledger, playbook.surveys.main)  # first call: rate headers known after
    needed = 4 + math.ceil(len(rows) / BULK_CHUNK)  # collectors list, collector, message, bulk adds, send
    try:
        sm.budget_guard(needed)
    except SurveyMonkeyBudgetExhausted as exc:
        log.warning("send_invites %s: budget too low (%s); %d invites carried over", today, exc, len(rows))
        return {"carried_over": len(rows)}
    found = reconcile_with_surveymonkey(sm, ledger, survey_id, today, contacts, run_id=run_id)
    out = {"adopted": found["adopted"]}
    if found["adopted"]:
        rows = _still_planned(ledger, today, due_keys)
    if rows:
        batch = _Batch(survey_id, today, run_id, found["today_collector"])
        out["sent"], out["rejected"] = _send_batch(sm, ledger, playbook, batch, rows, contacts)
    return out


@dataclass(frozen=True)
class _Batch:
    survey_id: str
    today: dt.date
    run_id: str
    existing_collector: str | None  # today's collector as SurveyMonkey lists it, if there is one


def _send_batch(sm, ledger, playbook, batch: _Batch, rows, contacts) -> tuple[int, int]:
    collector_id = _batch_collector(sm, ledger, batch)
    message = sm.create_message(collector_id, "invite", *_invite_text(playbook))
    claimed = set(ledger.mark_send_intent(
        [r["send_key"] for r in rows], batch.run_id, message_id=message["id"], collector_id=collector_id,
        survey_id=batch.survey_id,
    ))  # fmt: skip
    intents = [r | {"message_id": message["id"]} for r in rows if r["send_key"] in claimed]
    return complete_message(
        sm, ledger, collector_id, message["id"], intents, contacts, batch.today, fresh=True
    )


def _batch_collector(sm, ledger, batch: _Batch) -> str:
    """Today's collector: the registry's, else the one SurveyMonkey already has under today's name (a
    crash after the create call, or a restored ledger), else a new one (registry marked pending first)."""
    registry = _registry(ledger, batch.today)
    collector_id = registry.get("collector_id") or batch.existing_collector
    if not collector_id:
        _save_registry(ledger, batch.today, registry | {"collector_pending": True})
        collector = sm.request(
            "POST", f"/surveys/{batch.survey_id}/collectors",
            json={"type": "email", "name": batch_name(batch.today)}, idempotent=False,
        )  # fmt: skip
        collector_id = collector["id"]
    if registry.get("collector_id") != collector_id:
        _save_registry(ledger, batch.today, {"survey_id": batch.survey_id, "collector_id": collector_id})
        ledger.set_watermark(CHECKED + collector_id, batch.today.isoformat())  # ours: never reconciled
    return collector_id


def _invite_text(playbook) -> tuple[str, str]:
    return render_message("invite", playbook)


def _reconcile_intents(sm, ledger, today) -> int:
    """Finish (or release) intents left by a crashed or failed run; returns how many were recorded sent."""
    pending = [r for r in ledger.pending_intents() if r["kind"] == "invite"]  # pulses: the sweep's
    if not pending:
        return 0
    contacts = ledger.get_contacts({p["contact_id"] for p in pending})
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in pending:
        groups[(row["collector_id"], row["message_id"])].append(row)
    done = 0
    for (collector_id, message_id), rows in groups.items():
        if not (collector_id and message_id):
            ledger.release_intents([r["send_key"] for r in rows])
            continue
        sent, _ = complete_message(sm, ledger, collector_id, message_id, rows, contacts, today, fresh=False)
        done += sent
    log.info("send_invites %s: reconciled %d pending intents, %d sent", today, len(pending), done)
    return done
