"""The benchmark's world at one scale: a seeded sandbox org plus a quarter of synthetic survey responses.

The seeded org (``sandbox.seed.build``) gives the accounts, contacts and go-lives that survey_dispatch syncs
and invites for real. A quarter's responses (500 x scale factor) cannot come from the simulation at the org
sizes we can seed, so they are written straight into the sandbox state before it starts: one email
collector + sent invite per "past batch", one recipient per (batch, contact) and one completed response per
recipient, 10% of them negative. The matching sends go into the ledger (sent more than the re-survey
quarantine ago and already reminded, so dispatch neither holds today's invites nor reminds them).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

START = "2026-07-01T09:00:00Z"  # the sandbox's default start clock
HUGE = 10**9  # API limits are off while measuring calls and time; the budget demo sets its own


@dataclass(frozen=True)
class Scale:
    name: str
    accounts: int
    responses: int  # a quarter's completed main-survey responses
    negative_share: float = 0.10
    naive_cap: int | None = None  # naive baseline on at most this many records (extrapolated beyond)


def _questions(survey: dict) -> dict[str, dict]:
    return {q["headings"][0]["heading"]: q for p in survey["pages"] for q in p["questions"]}


def _choice(question: dict, text: str) -> dict:
    return {"choice_id": next(c["id"] for c in question["answers"]["choices"] if c["text"] == text)}


def _answers(survey: dict, rng: random.Random, negative: bool) -> list[dict]:
    """A happy response, or one with one or two clear negative triggers."""
    from sandbox.seed import RECOMMEND

    q = _questions(survey)
    matrix, pm, marketing, resolved, follow = (
        q["Please rate your agreement with each statement about your implementation."],
        q["How helpful was your implementation project manager?"],
        q["How helpful was the marketing onboarding?"],
        q["Have all the issues you raised during implementation been resolved?"],
        q["Would you like someone from our team to contact you about your feedback?"],
    )
    kinds = set(rng.sample(["matrix", "nps", "unresolved", "pm"], rng.choice([1, 2]))) if negative else set()
    rows = matrix["answers"]["rows"]
    bad_row = rng.randrange(len(rows))
    grid = [
        {"row_id": r["id"], **_choice(matrix, "Disagree" if "matrix" in kinds and i == bad_row else "Agree")}
        for i, r in enumerate(rows)
    ]
    nps = str(rng.randint(0, 6) if "nps" in kinds else rng.randint(9, 10))
    return [
        {"id": matrix["id"], "answers": grid},
        {"id": pm["id"], "answers": [_choice(pm, "Not helpful at all" if "pm" in kinds else "Very helpful")]},
        {"id": marketing["id"], "answers": [_choice(marketing, "Extremely helpful")]},
        {"id": q[RECOMMEND]["id"], "answers": [_choice(q[RECOMMEND], nps)]},
        {"id": resolved["id"], "answers": [_choice(resolved, "No" if "unresolved" in kinds else "Yes")]},
        {"id": follow["id"], "answers": [_choice(follow, "No")]},
    ]


def build_world(workdir: Path, scale: Scale, seed: int = 7) -> dict[str, Any]:
    """Write ``workdir/sandbox-state.json`` (seeded org + synthetic quarter) and return what the ledger
    needs: ``accounts``, ``contacts`` (ledger rows) and ``sends`` (synthetic survey_sends rows)."""
    from devtools.stack import ledger_rows_from_sandbox
    from sandbox import seed as sandbox_seed
    from sandbox.state import parse_ts, sm_datetime

    config = {"sf_daily_limit": HUGE, "sm_minute_limit": HUGE, "sm_day_limit": HUGE}
    state = sandbox_seed.build(seed, START, scale.accounts, config)
    state.path = workdir / "sandbox-state.json"
    sf, sm = state.data["sf"], state.data["sm"]
    survey = next(s for s in sm["surveys"].values() if s["title"] == sandbox_seed.MAIN_TITLE)
    contacts = sorted((c for c in sf["Contact"].values() if c.get("Email")), key=lambda c: c["Id"])
    rng = random.Random(seed * 1000 + scale.accounts)
    batches = max(1, math.ceil(scale.responses / len(contacts)))
    start = parse_ts(START)
    sends, made = [], 0
    for batch in range(batches):
        sent = start - timedelta(days=120 + 7 * batch)  # older than the 90-day re-survey quarantine
        collector_id = state.new_sm_id("collector", 410000000)
        message_id = state.new_sm_id("message", 420000000)
        sm["collectors"][collector_id] = {
            "id": collector_id, "survey_id": survey["id"], "type": "email", "status": "open",
            "name": f"bench past batch {batch}", "thank_you_message": "", "allow_multiple_responses": False,
            "anonymous_type": "not_anonymous", "edit_response_type": "until_complete", "response_count": 0,
            "date_created": sm_datetime(sent), "date_modified": sm_datetime(sent), "sender_email": None,
        }  # fmt: skip
        message = {
            "id": message_id, "collector_id": collector_id, "type": "invite", "status": "sent",
            "recipient_status": None, "subject": "bench", "body_html": "", "body_text": "",
            "is_branding_enabled": True, "is_scheduled": False, "scheduled_date": sm_datetime(sent),
            "date_created": sm_datetime(sent), "date_sent": sm_datetime(sent), "recipient_ids": [],
        }  # fmt: skip
        sm["messages"][message_id] = message
        for contact in contacts[: scale.responses - made]:
            recipient_id = state.new_sm_id("recipient", 430000000)
            response_id = state.new_sm_id("response", 12000000000)
            answered = sm_datetime(sent + timedelta(hours=rng.uniform(2, 120)))
            sm["recipients"][recipient_id] = {
                "id": recipient_id, "collector_id": collector_id, "message_id": message_id,
                "email": contact["Email"], "first_name": contact["FirstName"],
                "last_name": contact["LastName"],
                "custom_fields": {}, "extra_fields": None, "survey_response_status": "completely_responded",
                "mail_status": "sent", "date_sent": sm_datetime(sent), "response_id": response_id,
                "survey_link": "", "remove_link": "",
            }  # fmt: skip
            message["recipient_ids"].append(recipient_id)
            sm["responses"][response_id] = {
                "id": response_id, "recipient_id": recipient_id, "collector_id": collector_id,
                "survey_id": survey["id"], "collection_mode": "default", "response_status": "completed",
                "custom_value": "", "custom_variables": {}, "first_name": contact["FirstName"],
                "last_name": contact["LastName"], "email_address": contact["Email"], "ip_address": "",
                "logic_path": {}, "page_path": [], "total_time": rng.randint(40, 900),
                "date_created": answered, "date_modified": answered, "edit_url": "", "analyze_url": "",
                "metadata": {}, "pages": [{"id": survey["pages"][0]["id"], "questions": _answers(
                    survey, rng, rng.random() < scale.negative_share)}],
            }  # fmt: skip
            survey["response_count"] += 1
            reminded = sent + timedelta(days=5)
            sends.append({
                "send_key": f"bench:{batch}:{contact['Id']}", "kind": "invite",
                "account_id": contact["AccountId"], "contact_id": contact["Id"], "status": "sent",
                "survey_id": survey["id"], "collector_id": collector_id, "message_id": message_id,
                "recipient_id": recipient_id, "sent_at": sent, "reminder_key": f"bench-reminded:{batch}",
                "reminder_sent_at": reminded, "run_id": "bench-setup",
                "lp_reminder_task_id": "00Tbench0000000",
            })  # fmt: skip
            made += 1
    state.save()
    accounts, ledger_contacts = ledger_rows_from_sandbox(sf)
    return {"accounts": accounts, "contacts": ledger_contacts, "sends": sends, "batches": batches,
            "responses": made, "state_mb": round(state.path.stat().st_size / 1e6, 1)}  # fmt: skip


def seed_ledger(ledger, world: dict[str, Any]) -> None:
    """Accounts, contacts and the synthetic quarter's sends into a migrated, empty ledger: the sends as one
    executemany INSERT in one transaction (a fresh ledger has nothing to conflict with; multi-row
    ``INSERT .. RETURNING`` chunks compiled per chunk took a minute at 100x on a loaded machine)."""
    from closed_loop.ledger.models import SurveySend
    from closed_loop.ledger.upsert import clean_rows

    ledger.upsert_accounts(world["accounts"])
    ledger.upsert_contacts(world["contacts"])
    with ledger.session() as s:
        s.execute(SurveySend.__table__.insert(), clean_rows(SurveySend, world["sends"]))


def utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)
