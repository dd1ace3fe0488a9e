"""A reproducible, synthetic multi-quarter ledger for tests and demos of the quarterly report."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pandas as pd

from closed_loop.reporting.data import ReportData
from closed_loop.reporting.metrics import RECOMMEND_HEADING, SATISFACTION_HEADING, SOP_STEPS
from closed_loop.reporting.quarters import Quarter

MATRIX = "Please rate your agreement with each statement about your implementation."
ROWS = {
    "The implementation team understood our business needs.": "implementation",
    "Go-live happened on the agreed timeline.": "timeline",
    "Training prepared our team to use the product.": "training",
    "Marketing launch materials met our expectations.": "marketing",
    "The product works the way we were told it would.": "product",
}
PM = "How helpful was your implementation project manager?"
ROOT_CAUSES = [
    "Missed requirements in kickoff",
    "missed requirements in kickoff.",
    "  Missed  requirements in KICKOFF ",
    "Data migration delay",
    "Training scheduled too late",
    "Marketing assets late",
    "<script>alert('x')</script> & config error",
]
STEP_DUE_BD = dict(zip(SOP_STEPS, (3, 5, 10, 10, 21, 15, 20, 25), strict=True))
USERS = ["tsm1@closedloop.example", "tsm2@closedloop.example", "doi@closedloop.example"]


def _ts(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randrange(8, 18), rng.randrange(60)), UTC)


def _bd(day: date, n: int) -> date:
    return np.busday_offset(np.datetime64(day, "D"), n, roll="forward").astype(date)


def synthetic_report_data(
    quarters: list[Quarter], seed: int = 7, invites_per_quarter: int = 80
) -> ReportData:
    """Invites, responses, answers, triggers, cases, steps, SLA events and pulses over ``quarters``."""
    rng = random.Random(seed)
    t: dict[str, list[dict]] = {k: [] for k in ReportData.__dataclass_fields__}
    n = 0
    for qi, q in enumerate(quarters):
        span = (q.end - q.start).days
        negative_odds = 0.36 - 0.02 * qi  # negative feedback falls over time
        for _ in range(invites_per_quarter):
            n += 1
            account, contact, key = f"001A{n % 23:04d}", f"003C{n:05d}", f"inv-{n}"
            sent = q.start + timedelta(days=rng.randrange(span + 1))
            status = rng.choices(["sent", "bounced", "opted_out", "planned"], [0.85, 0.05, 0.05, 0.05])[0]
            t["survey_sends"].append(
                {
                    "send_key": key,
                    "kind": "invite",
                    "account_id": account,
                    "contact_id": contact,
                    "go_live_date": sent - timedelta(days=14),
                    "due_date": sent,
                    "status": status,
                    "sent_at": _ts(sent, rng) if status in ("sent", "bounced") else None,
                    "reminder_sent_at": None,
                }
            )
            if status != "sent" or rng.random() > 0.6:
                continue
            rid = f"R{n:05d}"
            created = _ts(sent + timedelta(days=rng.randrange(0, 25)), rng)  # may cross the quarter end
            negative = rng.random() < negative_odds
            bad_rows = rng.sample(sorted(ROWS), rng.randrange(1, 3)) if negative else []
            score = rng.randrange(0, 7) if negative else rng.randrange(6, 11)
            t["responses"].append(
                {
                    "response_id": rid,
                    "recipient_id": f"rc{n}",
                    "send_key": key,
                    "account_id": account,
                    "contact_id": contact,
                    "response_status": "completed",
                    "date_created": created,
                    "date_modified": created,
                    "negative": negative,
                    "severity": "high" if negative else None,
                    "topics": sorted({ROWS[r] for r in bad_rows}),
                    "is_recovery": False,
                    "case_key": None,
                    "nps": score if rng.random() < 0.7 else None,
                }
            )
            t["answers"].append(
                {
                    "response_id": rid,
                    "question_id": "q4",
                    "heading": RECOMMEND_HEADING,
                    "choice_text": str(score),
                }
            )
            for row in bad_rows:
                t["answers"].append(
                    {
                        "response_id": rid,
                        "question_id": "q1",
                        "heading": MATRIX,
                        "row_text": row,
                        "choice_text": "Disagree",
                        "topic": ROWS[row],
                    }
                )
                t["triggers"].append(
                    {
                        "response_id": rid,
                        "kind": "negative_answer",
                        "question_id": "q1",
                        "heading": MATRIX,
                        "row": row,
                        "answer": "Disagree",
                        "severity": "medium",
                    }
                )
            if negative and rng.random() < 0.3:
                t["triggers"].append(
                    {
                        "response_id": rid,
                        "kind": "negative_answer",
                        "question_id": "q2",
                        "heading": PM,
                        "row": None,
                        "answer": "Not helpful at all",
                    }
                )
            if negative:
                _case(t, rng, rid, account, created, score)
    return ReportData.from_frames({k: pd.DataFrame(v) for k, v in t.items()})


def _case(
    t: dict[str, list[dict]], rng: random.Random, rid: str, account: str, created: datetime, score: int
):
    opened = created + timedelta(hours=rng.randrange(1, 30))
    lp = rng.choice(USERS)
    closed = None
    if rng.random() < 0.85:
        closed = _ts(_bd(opened.date(), rng.randrange(8, 40)), rng)
    t["cases"].append(
        {
            "case_key": rid,
            "sf_case_id": f"500{rid}",
            "account_id": account,
            "lp_role": "tsm",
            "lp_username": lp,
            "tier": "tsm",
            "severity": "high",
            "status": "Closed" if closed else "Working",
            "opened_at": opened,
            "dissatisfied": False,
            "closed_at": closed,
            "root_cause": rng.choice(ROOT_CAUSES) if closed and rng.random() < 0.9 else None,
        }
    )
    for step, due_bd in STEP_DUE_BD.items():
        if step == "escalate" and rng.random() < 0.8:
            continue
        due = _bd(opened.date(), due_bd)
        done = _ts(_bd(opened.date(), max(0, due_bd + rng.randrange(-3, 4))), rng)
        if closed is None and rng.random() < 0.4:
            done = None
        status = "skipped" if rng.random() < 0.05 else ("done" if done else "open")
        owner = lp if step != "internal_call" else "doi@closedloop.example"
        key = f"{rid}:{step}"
        t["case_steps"].append(
            {
                "step_key": key,
                "case_key": rid,
                "step": step,
                "owner_username": owner,
                "due_date": due,
                "status": status,
                "created_at": opened,
                "completed_at": done,
            }
        )
        if done is None or done.date() > due:
            t["sla_events"].append(
                {
                    "event_key": f"{key}:breach",
                    "case_key": rid,
                    "step_key": key,
                    "kind": "breach",
                    "occurred_on": _bd(due, 1),
                }
            )
        if step == "escalate":
            t["sla_events"].append(
                {
                    "event_key": f"{key}:esc",
                    "case_key": rid,
                    "step_key": key,
                    "kind": "escalation",
                    "occurred_on": due,
                }
            )
    if closed is not None and rng.random() < 0.6:
        pid = f"P{rid}"
        after = min(10, score + rng.randrange(-2, 6))
        pulse_at = closed + timedelta(days=rng.randrange(1, 10))
        t["responses"].append(
            {
                "response_id": pid,
                "send_key": f"rec-{rid}",
                "account_id": account,
                "response_status": "completed",
                "date_created": pulse_at,
                "negative": False,
                "topics": [],
                "is_recovery": True,
                "case_key": rid,
                "nps": after if rng.random() < 0.5 else None,
            }
        )
        t["answers"].append({"response_id": pid, "heading": RECOMMEND_HEADING, "choice_text": str(after)})
        t["answers"].append(
            {
                "response_id": pid,
                "heading": SATISFACTION_HEADING,
                "choice_text": rng.choice(["Very satisfied", "Satisfied", "Neutral", "Dissatisfied"]),
            }
        )
