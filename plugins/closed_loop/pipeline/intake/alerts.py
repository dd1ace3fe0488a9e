"""Data-quality Tasks: one per quarantined intake problem, for the data-quality owner; completed when
their record exists after all (a refused Case or Task written on a retry)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

from closed_loop.domain.records import task_record
from closed_loop.pipeline.intake.common import KEY_MAX
from closed_loop.pipeline.salesforce_writes import upsert_tasks

if TYPE_CHECKING:
    from closed_loop.pipeline.intake.open_cases import OpenPlan

log = logging.getLogger(__name__)


def _dq_key(q_key: str) -> str:
    key = f"dq:{q_key}"
    return key if len(key) <= KEY_MAX else f"dq:{hashlib.sha256(q_key.encode()).hexdigest()}"


def close_fixed_alerts(sf_hook, ledger, done: list[str], playbook) -> int:
    """Complete the data-quality Task of every alert whose record now exists in Salesforce (a refused
    Case or Task written on a retry), so ops is not left with an alarm that outlived its cause. One
    Task upsert call, only when there is something to close."""
    if not done:
        return 0
    fixed = ledger.reported_open_quarantine(done)
    if not fixed:
        return 0
    ext, status = playbook.salesforce.task.external_id, playbook.salesforce.task.completed_status
    rows = [{ext: _dq_key(k), "Status": status} for k in fixed]
    closed = sum(r.ok for r in upsert_tasks(sf_hook, rows, ext))
    log.info("open_cases: %d data-quality alert(s) closed: their record now exists", closed)
    return closed


def _alert_task(alert: Mapping, owner_id: str, what_id: str | None, playbook, due: date) -> dict:
    payload = alert.get("payload") or {}
    ids = ", ".join(f"{k}={v}" for k, v in sorted(payload.items()) if isinstance(v, str))
    reason = alert["reason"]
    description = "\n\n".join([
        f"The closed-loop intake set a record aside ({alert['source']}).",
        f"Reason: {reason}",
        f"Record: {alert.get('record_id') or '-'}" + (f" ({ids})" if ids else ""),
        "Fix the data in Salesforce (or the survey mapping); the next run picks it up again.",
    ])  # fmt: skip
    return task_record(playbook, key=_dq_key(alert["q_key"]), subject=f"Data quality: {reason}",
                       description=description, due=due, owner_id=owner_id, what_id=what_id)  # fmt: skip


def alert_rows(ledger, plan: OpenPlan, playbook, due: date, task_rows: list[dict]) -> dict[str, str]:
    """Append one data-quality Task per alert (linked to its case when that has an id); returns
    ``{task key: quarantine key}``."""
    dq_id = plan.owners.ids.get(plan.dq_user)
    if not plan.alerts or not dq_id:
        return {}
    linked = ledger.salesforce_case_ids((a.get("payload") or {}).get("case_key") for a in plan.alerts)
    keys = {}
    for alert in plan.alerts:
        what = linked.get((alert.get("payload") or {}).get("case_key"))
        task = _alert_task(alert, dq_id, what, playbook, due)
        task_rows.append(task)
        keys[task[playbook.salesforce.task.external_id]] = alert["q_key"]
    return keys
