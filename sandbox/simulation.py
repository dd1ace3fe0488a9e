"""Simulated people, driven by the sandbox clock: respondents answer invites (some only after a reminder),
LPs work their Tasks and Cases. Every behaviour is a pure function of (seed, record id), and every action
is appended to sim.log with its sandbox timestamp."""

from __future__ import annotations

import heapq
import random
from datetime import datetime, time, timedelta
from typing import Any

from sandbox import answers, hostile, records
from sandbox.seed import MAIN_TITLE
from sandbox.sf_schema import org_name
from sandbox.state import SandboxState, hours, iso, parse_ts, sf_datetime, sm_datetime

PIS_ORIGIN = "Post-Implementation Survey"
STATUS_FILTER = {
    "has_not_responded": ("not_responded",),
    "partially_responded": ("partially_responded",),
    "completely_responded": ("completely_responded",),
    "responded": ("partially_responded", "completely_responded"),
    "all": None,
}


def _rng(state: SandboxState, kind: str, key: str) -> random.Random:
    return random.Random(f"{state.data['seed']}:{kind}:{key}")


def _log(state: SandboxState, **entry: Any) -> None:
    state.data["sim"]["log"].append({"at": iso(state.now), **entry})


def _step(at: datetime, action: str, **extra: Any) -> dict:
    return {"at": iso(at), "action": action, "done": False, **extra}


# planning ----------------------------------------------------------------------
def observe(state: SandboxState, sobject: str, record: dict) -> None:
    """Called after the API creates a record: plan what the simulated LP will do with it."""
    if sobject == "Task" and (record.get("WhatId") or "").startswith("500") and not record["IsClosed"]:
        _plan_task(state, record)
    elif sobject == "Case" and record.get("Origin") == PIS_ORIGIN and not record["IsClosed"]:
        _plan_case(state, record)


def _plan_task(state: SandboxState, task: dict) -> None:
    rng = _rng(state, "task", task["Id"])
    created = state.now
    due = task.get("ActivityDate")
    deadline = (
        datetime.combine(datetime.fromisoformat(due).date(), time(17), created.tzinfo)
        if due
        else created + timedelta(days=3)
    )
    roll = rng.random()
    behaviour = "on_time" if roll < 0.55 else "late" if roll < 0.8 else "never"
    steps = []
    if behaviour == "on_time":
        span = max(deadline - created, timedelta(hours=1))
        steps.append(_step(created + span * rng.uniform(0.2, 0.95), "completed"))
    elif behaviour == "late":
        steps.append(_step(max(deadline, created) + timedelta(days=rng.uniform(1, 10)), "completed"))
    state.data["sim"]["plans"][task["Id"]] = {
        "kind": "task",
        "behaviour": behaviour,
        "steps": steps,
        "activity_date": due,
        "key": task.get(org_name("Task", "Closed_Loop_Key__c")),
    }
    _log(
        state,
        object="Task",
        id=task["Id"],
        key=task.get(org_name("Task", "Closed_Loop_Key__c")),
        action="planned",
        behaviour=behaviour,
        activity_date=due,
        what_id=task.get("WhatId"),
    )


DOCUMENTATION_FIELDS = ("Root_Cause__c", "Actions_Taken__c", "Outcome__c")
CASE_BEHAVIOURS = [
    (0.45, "documented_close"),
    (0.6, "dissatisfied_then_close"),
    (0.72, "still_dissatisfied"),
    (0.85, "closed_without_docs"),
    (1.0, "untouched"),
]


def _plan_case(state: SandboxState, case: dict) -> None:
    rng = _rng(state, "case", case["Id"])
    roll = rng.random()
    behaviour = next(name for cut, name in CASE_BEHAVIOURS if roll < cut)
    t0 = state.now
    working = t0 + timedelta(days=rng.uniform(0.5, 2.5))
    steps = [] if behaviour == "untouched" else [_step(working, "working")]
    if behaviour == "documented_close":
        steps.append(_step(working + timedelta(days=rng.uniform(2, 10)), "documented_close"))
    if behaviour in ("dissatisfied_then_close", "still_dissatisfied"):
        sad = working + timedelta(days=rng.uniform(1, 5))
        steps.append(_step(sad, "still_dissatisfied"))
        if behaviour == "dissatisfied_then_close":
            steps.append(_step(sad + timedelta(days=rng.uniform(5, 20)), "documented_close"))
    if behaviour == "closed_without_docs":
        steps.append(_step(working + timedelta(days=rng.uniform(1, 8)), "closed_without_docs"))
    state.data["sim"]["plans"][case["Id"]] = {"kind": "case", "behaviour": behaviour, "steps": steps}
    _log(
        state,
        object="Case",
        id=case["Id"],
        action="planned",
        behaviour=behaviour,
        survey_response_id=case.get(org_name("Case", "Survey_Response_Id__c")),
    )


def _plan_respondent(state: SandboxState, recipient: dict, sent_at: datetime) -> None:
    rng = _rng(state, "respondent", recipient["id"])
    roll = rng.random()
    mode = "prompt" if roll < 0.5 else "after_reminder" if roll < 0.72 else "never"
    partial = rng.random() < 0.12
    plan = {
        "kind": "respondent",
        "behaviour": mode,
        "partial": partial,
        "steps": [],
        "delay_hours": rng.uniform(2, 120) if mode == "prompt" else rng.uniform(1, 72),
        "complete_after_hours": rng.uniform(12, 72) if partial and rng.random() < 0.5 else None,
    }
    if mode == "prompt":
        plan["steps"].append(_step(sent_at + hours(plan["delay_hours"]), "respond"))
    state.data["sim"]["plans"][recipient["id"]] = plan


# message delivery (also used by the /send endpoint) ------------------------------
def deliver(state: SandboxState, message: dict) -> None:
    """Send a message now: invites reach their recipients, reminders the matching collector recipients."""
    sm = state.data["sm"]
    now = state.now
    message.update(status="sent", date_sent=sm_datetime(now))
    if message["type"] == "invite":
        targets = [sm["recipients"][rid] for rid in message["recipient_ids"]]
        for recipient in targets:
            recipient.update(mail_status="sent", date_sent=sm_datetime(now))
            _plan_respondent(state, recipient, now)
    else:
        wanted = STATUS_FILTER.get(message.get("recipient_status") or "has_not_responded")
        targets = [
            r
            for r in sm["recipients"].values()
            if r["collector_id"] == message["collector_id"]
            and r.get("date_sent")
            and (wanted is None or r["survey_response_status"] in wanted)
        ]
        message["recipient_ids"] = [r["id"] for r in targets]
        for recipient in targets:
            recipient.setdefault("reminders_sent", []).append(sm_datetime(now))
            plan = state.data["sim"]["plans"].get(recipient["id"])
            if (
                message["type"] == "reminder"
                and plan
                and plan["behaviour"] == "after_reminder"
                and not plan["steps"]
            ):
                plan["steps"].append(_step(now + hours(plan["delay_hours"]), "respond"))
    _log(
        state,
        object="Message",
        id=message["id"],
        action=f"{message['type']}_sent",
        collector_id=message["collector_id"],
        recipients=[r["id"] for r in targets],
    )


# advancing ---------------------------------------------------------------------
def advance(state: SandboxState, target: datetime) -> int:
    """Run every due event up to `target` in time order; returns how many ran.

    Ties run in the order of a full scan: scheduled messages before plans, each in insertion order. A heap
    of the due events keeps this linear in their number (a rescan per event was quadratic: minutes at
    benchmark volume); a delivery, or a run that adds records, rebuilds it from a full scan."""
    events = _EventQueue(state, target)
    ran = 0
    while (event := events.pop()) is not None:
        at, group, key, step = event
        state.set_now(max(at, state.now))
        if group == 0:
            deliver(state, state.data["sm"]["messages"][key])
            events.rebuild()  # reminders append steps to any recipient's plan
        else:
            _run(state, key, state.data["sim"]["plans"][key], step)
            events.after_run(key)
        ran += 1
    state.set_now(max(target, state.now))
    state.data["sim"]["advanced_to"] = iso(state.now)
    return ran


def _next_step(plan: dict) -> dict | None:
    return next((s for s in plan["steps"] if not s["done"]), None)


class _EventQueue:
    """Due events as a heap of (time, group, scan position, n, key, step); stale entries are skipped."""

    def __init__(self, state: SandboxState, target: datetime) -> None:
        self.state, self.target, self.n = state, target, 0
        self.rebuild()

    def _sizes(self) -> tuple[int, int]:
        return len(self.state.data["sm"]["messages"]), len(self.state.data["sim"]["plans"])

    def _entry(self, at: datetime, group: int, position: int, key: str, step: dict | None) -> tuple:
        self.n += 1
        return (at, group, position, self.n, key, step)

    def _plan_entry(self, key: str, plan: dict) -> tuple | None:
        step = _next_step(plan)
        if step and (at := parse_ts(step["at"])) <= self.target:
            return self._entry(at, 1, self.order[key], key, step)
        return None

    def rebuild(self) -> None:
        self.heap: list[tuple] = []
        self.order: dict[str, int] = {}
        for position, (key, message) in enumerate(self.state.data["sm"]["messages"].items()):
            at = parse_ts(message["scheduled_date"]) if message["status"] == "scheduled" else None
            if at is not None and at <= self.target:
                self.heap.append(self._entry(at, 0, position, key, None))
        for position, (key, plan) in enumerate(self.state.data["sim"]["plans"].items()):
            self.order[key] = position
            if entry := self._plan_entry(key, plan):
                self.heap.append(entry)
        heapq.heapify(self.heap)
        self.sizes = self._sizes()

    def after_run(self, key: str) -> None:
        if self._sizes() != self.sizes:  # new messages or plans: rescan
            self.rebuild()
        elif entry := self._plan_entry(key, self.state.data["sim"]["plans"][key]):
            heapq.heappush(self.heap, entry)

    def pop(self) -> tuple[datetime, int, str, dict | None] | None:
        messages, plans = self.state.data["sm"]["messages"], self.state.data["sim"]["plans"]
        while self.heap:
            at, group, _, _, key, step = heapq.heappop(self.heap)
            if group == 0:
                message = messages.get(key)
                if message and message["status"] == "scheduled" and parse_ts(message["scheduled_date"]) == at:
                    return at, group, key, None
            elif (plan := plans.get(key)) is not None and _next_step(plan) is step:
                if parse_ts(step["at"]) == at:
                    return at, group, key, step
        return None


def _run(state: SandboxState, key: str, plan: dict, step: dict) -> None:
    step["done"] = True
    if plan["kind"] == "task":
        _task_step(state, key, plan)
    elif plan["kind"] == "case":
        _case_step(state, key, plan, step["action"])
    else:
        _respondent_step(state, key, plan, step)


def _task_step(state: SandboxState, task_id: str, plan: dict) -> None:
    task = state.data["sf"]["Task"].get(task_id)
    if not task or task["IsClosed"] or task.get("IsDeleted"):
        return
    records.update(state, "Task", task, {"Status": "Completed"}, by=task["OwnerId"])
    due = task.get("ActivityDate")
    timing = "on_time" if not due or state.now.date().isoformat() <= due else "late"
    _log(
        state,
        object="Task",
        id=task_id,
        key=task.get(org_name("Task", "Closed_Loop_Key__c")),
        action="completed",
        timing=timing,
        activity_date=due,
        what_id=task.get("WhatId"),
        completed_at=sf_datetime(state.now),
    )


def _case_step(state: SandboxState, case_id: str, plan: dict, action: str) -> None:
    case = state.data["sf"]["Case"].get(case_id)
    if not case or case["IsClosed"] or case.get("IsDeleted"):
        return
    rng = _rng(state, "casedoc", case_id)
    values: dict[str, Any] = {
        "working": {"Status": "Working"},
        "still_dissatisfied": {"Status": "Still Dissatisfied"},
        "closed_without_docs": {"Status": "Closed"},
    }.get(action, {})
    if action == "documented_close":
        values = {
            org_name("Case", "Root_Cause__c"): rng.choice(answers.ROOT_CAUSES),
            org_name("Case", "Actions_Taken__c"): rng.choice(answers.ACTIONS),
            org_name("Case", "Outcome__c"): rng.choice(answers.OUTCOMES),
            "Status": "Closed",
        }
    records.update(state, "Case", case, values, by=case["OwnerId"])
    _log(
        state,
        object="Case",
        id=case_id,
        action=action,
        status=case["Status"],
        documented=all(case.get(org_name("Case", f)) for f in DOCUMENTATION_FIELDS),
    )


def _respondent_step(state: SandboxState, recipient_id: str, plan: dict, step: dict) -> None:
    sm = state.data["sm"]
    recipient = sm["recipients"][recipient_id]
    collector = sm["collectors"][recipient["collector_id"]]
    survey = sm["surveys"][collector["survey_id"]]
    now = sm_datetime(state.now)
    if step["action"] == "respond":
        rng = _rng(state, "answers", recipient_id)
        partial = plan["partial"]
        response = answers.build_response(state, rng, survey, collector, recipient, partial)
        hostile.shape(state, survey, response, response["_profile"], MAIN_TITLE)
        hostile.abandon(state, survey, response, plan, MAIN_TITLE)
        sm["responses"][response["id"]] = response
        survey["response_count"] += 1
        recipient["survey_response_status"] = "partially_responded" if partial else "completely_responded"
        recipient["response_id"] = response["id"]
        if partial and plan["complete_after_hours"]:
            plan["steps"].append(_step(state.now + hours(plan["complete_after_hours"]), "complete"))
        _log(
            state,
            object="Response",
            id=response["id"],
            action="responded",
            recipient_id=recipient_id,
            collector_id=collector["id"],
            status=response["response_status"],
            profile=response.pop("_profile"),
        )
    else:
        response = sm["responses"][recipient["response_id"]]
        answers.complete(state, _rng(state, "answers", recipient_id), survey, response)
        response.update(response_status="completed", date_modified=now)
        recipient["survey_response_status"] = "completely_responded"
        _log(
            state, object="Response", id=response["id"], action="completed_partial", recipient_id=recipient_id
        )
