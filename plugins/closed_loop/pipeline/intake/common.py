"""What every intake module shares: quarantine sources, ledger keys (watermarks, recovery sends), the
quarantine ``Problem`` row, timestamp parsing and the CasePlan as stored on ``cases.plan``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from closed_loop.domain.plan import CasePlan, StepContext
from closed_loop.domain.scoring import Trigger
from closed_loop.ledger.cases import CASE_UPDATE_PREFIX  # noqa: F401 - re-exported
from closed_loop.ledger.types import to_utc

SOURCE = "intake"  # quarantine source of response problems (unknown respondent, bad answers, MRR/TSM)
SF_SOURCE = "intake_salesforce"  # quarantine source of Salesforce write failures
QUARANTINE_SOURCES = (SOURCE, SF_SOURCE)
RECOVERY_PREFIX = "recovery:"
KEY_MAX = 255


def recovery_send_key(case_key: str) -> str:
    """The send_key of the recovery pulse following up ``case_key`` (how pulses find their case)."""
    return f"{RECOVERY_PREFIX}{case_key}"


def watermark_name(survey_id: str) -> str:
    return f"intake:responses:{survey_id}"


def partial_watermark_name(survey_id: str) -> str:
    return f"intake:abandoned_partials:{survey_id}"


@dataclass
class Problem:
    q_key: str
    record_id: str | None
    reason: str
    payload: dict

    def row(self, source: str = SOURCE) -> dict:
        return {"q_key": self.q_key[:KEY_MAX], "source": source, "record_id": self.record_id,
                "reason": self.reason, "payload": self.payload}  # fmt: skip


def plan_to_json(plan: CasePlan, playbook) -> dict:
    """The CasePlan as stored on ``cases.plan``: exactly what is written to Salesforce, plus the step
    context (for steps planned later, e.g. the follow-up and escalations)."""
    return {
        "version": 1,
        "case": plan.case_fields(playbook),
        "owner_username": plan.owner_username,
        "received_on": plan.received_on.isoformat(),
        "steps": {
            s.key: {
                "step": s.step,
                "owner_username": s.owner_username,
                "owner_role": s.owner_role,
                "due_date": s.due_date.isoformat(),
                "fields": s.task_fields(playbook),
            }
            for s in plan.steps
        },
        "context": json.loads(json.dumps(dataclasses.asdict(plan.context), default=str)),
    }


def context_from_json(plan_json: Mapping) -> StepContext:
    """Rebuild the StepContext kept in ``cases.plan`` (for plan_activated_steps / plan_escalation)."""
    ctx = dict(plan_json["context"])
    ctx["triggers"] = tuple(Trigger(**t) for t in ctx.get("triggers") or ())
    ctx["comments"] = tuple(tuple(c) for c in ctx.get("comments") or ())
    for name in ("topics", "audience", "flags", "inactive_roles", "problems"):
        ctx[name] = tuple(ctx.get(name) or ())
    return StepContext(**ctx)


def parse_ts(value: Any) -> datetime | None:
    try:
        return to_utc(value) if value else None
    except (TypeError, ValueError):
        return None


def as_text(value: Any) -> str | None:
    return None if value is None else str(value)
