"""Shared machinery of the reliability suite: hooks on a LocalStack, crash injection, pipeline drivers
and the ground-truth audit (duplicates, lost responses, ledger vs sandbox) every scenario ends with."""

from __future__ import annotations

import datetime as dt
import email
import types
from collections import Counter
from dataclasses import dataclass, field
from email import policy

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.playbook import load_playbook

START = dt.date(2026, 7, 1)  # the sandbox's start clock
INTAKE_DAY = dt.date(2026, 7, 10)
SWEEP_DAY = dt.date(2026, 7, 14)
PB = load_playbook()
CAL = BusinessCalendar.from_playbook(PB)


class SimulatedCrash(BaseException):  # noqa: N818 - it is a kill, not an error
    """A worker killed at an injection point. A BaseException, so the code under test's ``except Exception``
    cleanup does not run, exactly as with SIGKILL."""


@dataclass
class World:
    """One LocalStack with freshly built hooks (a rerun builds new hooks, as a new task attempt does)."""

    stack: object
    sf: object = None
    sm: object = None
    mail: object = None
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.fresh_hooks()

    def fresh_hooks(self) -> World:
        from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
        from closed_loop.hooks.mail import ClosedLoopSmtpHook

        self.sf, self.sm, self.mail = ClosedLoopSalesforceHook(), SurveyMonkeyHook(), ClosedLoopSmtpHook()
        for hook in (self.sf, self.sm):
            hook.sleep = lambda seconds: None  # retry waits are real policy, but not real time in tests
        return self

    @property
    def ledger(self):
        return self.stack.ledger

    def admin(self, method: str, path: str, body=None):
        return self.stack.sandbox.admin(method, path, body)

    def clock(self, day: dt.date, hour: int = 14) -> None:
        target = f"{day.isoformat()}T{hour:02d}:00:00Z"
        if self.admin("GET", "clock")["now"] < target:
            self.admin("POST", "clock", {"now": target})

    def faults(self, **switches) -> None:
        self.admin("POST", "faults", switches)

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")


# -- crash injection ---------------------------------------------------------------------------------


def _materialise(args: tuple) -> tuple:
    return tuple(list(a) if isinstance(a, types.GeneratorType) else a for a in args)


def crash_at(monkeypatch, obj, name: str, when: str, match=None, action=None) -> list:
    """Make ``obj.<name>`` crash right ``before`` (the call never happens) or right ``after`` (the call
    happened, its result is lost) its first call for which ``match(*args, **kwargs)`` holds.

    ``action`` replaces the crash (e.g. ``os._exit``). Returns a list that records the firing."""
    real = getattr(obj, name)
    fired: list[str] = []

    def wrapper(*args, **kwargs):
        args = _materialise(args)
        if not fired and (match is None or match(*args, **kwargs)):
            fired.append(f"{when} {name}")
            if when == "after":
                real(*args, **kwargs)
            if action:
                action()
            raise SimulatedCrash(f"killed {when} {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return fired


def sobject_is(sobject: str):
    return lambda sobj, *a, **k: sobj == sobject


def status_sent(results, *a, **k) -> bool:
    return any(r.get("status") == "sent" for r in results)


# -- pipeline drivers ----------------------------------------------------------------------------------


def dispatch_setup(w: World) -> None:
    from closed_loop.pipeline import dispatch

    w.clock(START)
    dispatch.sync_go_lives(w.sf, w.ledger, PB, START)


def dispatch_run(w: World, run_id: str = "run") -> dict:
    from closed_loop.pipeline import dispatch

    return dispatch.send_invites(w.sm, w.ledger, PB, START, run_id=run_id)


def reminder_setup(w: World) -> None:
    dispatch_setup(w)
    dispatch_run(w)
    w.clock(START + dt.timedelta(days=5))


def reminder_run(w: World, run_id: str = "run") -> dict:
    from closed_loop.pipeline import dispatch

    return dispatch.send_reminders(w.sm, w.sf, w.ledger, PB, START + dt.timedelta(days=5), run_id=run_id)


def intake_setup(w: World) -> None:
    from tests.integration.test_intake_pipeline import surveyed

    surveyed(w.stack)


def intake_run(w: World, run_id: str = "run") -> tuple:
    from closed_loop.pipeline.intake import ingest_responses, open_cases

    ingest = ingest_responses(w.sm, w.ledger, PB, CAL, INTAKE_DAY)
    return ingest, open_cases(w.sf, w.ledger, PB, CAL, INTAKE_DAY)


def sweep_setup(w: World, n: int = 8) -> None:
    from closed_loop.pipeline import sweep
    from tests.sweep_cases import open_cases

    open_cases(w.sf, w.ledger, START, n=n)
    w.clock(SWEEP_DAY, hour=11)
    sweep.read_back(w.sf, w.ledger, PB, CAL, SWEEP_DAY)
    w.notes["plan"] = sweep.plan_sweep(w.sf, w.ledger, PB, CAL, SWEEP_DAY)


def sweep_run(w: World, run_id: str = "run") -> dict:
    from closed_loop.pipeline import sweep

    return {
        "progress": sweep.progress_and_escalate(w.sf, w.mail, w.ledger, PB, CAL, SWEEP_DAY, run_id=run_id),
        "recovery": sweep.send_recovery_pulses(w.sm, w.ledger, PB, SWEEP_DAY, run_id=run_id),
        "digest": sweep.ops_digest(w.mail, w.ledger, PB, SWEEP_DAY, run_id=run_id),
    }


# -- the audit -----------------------------------------------------------------------------------------


def outbox_keys(stack) -> Counter:
    """``X-Closed-Loop-Key`` of every message the SMTP sink accepted."""
    keys: Counter = Counter()
    for path in stack.emails():
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        keys[message["X-Closed-Loop-Key"]] += 1
    return keys


def _dupes(counter: Counter) -> int:
    return sum(n - 1 for n in counter.values() if n > 1)


SETTLED = ("sent", "carried")  # carried: an owed email whose content went out inside a later one


def _carried_undelivered(lmails, mails) -> list[str]:
    return [f"email {m.email_key}: carried into {m.to}, never delivered"
            for m in lmails if m.status == "carried" and not any(mails[k] for k in m.to or [])]  # fmt: skip


def audit(w: World) -> dict:
    """Side effects observed, from the sandbox's ground truth, the SMTP sink and the ledger.

    ``duplicate_*`` count extra copies; ``lost_responses`` completed responses of known recipients missing
    from the ledger, or negatives without their Case; ``disagreements`` ledger rows the sandbox contradicts;
    ``pending`` intents/claims left unresolved; ``emails_withheld`` email intents never accepted by SMTP
    (at-most-once: reported to ops as unconfirmed, never resent)."""
    from sqlalchemy import select

    from closed_loop.ledger.models import Case, CaseStep, Email, Response, SlaEvent, SurveySend

    state = w.admin("GET", "state")
    sm, sf = state["sm"], state["sf"]
    survey_of = {cid: c.get("survey_id") for cid, c in sm.get("collectors", {}).items()}
    messages = w.admin("GET", "messages")
    sent = [m for m in messages if m["status"] == "sent"]
    invites = Counter(
        (survey_of.get(m["collector_id"]), r["email"].lower())
        for m in sent
        if m["type"] == "invite"
        for r in m["recipients"]
    )
    reminders = Counter(r["id"] for m in sent if m["type"] == "reminder" for r in m["recipients"])
    cases = Counter(c.get("Survey_Response_Id__c") for c in sf.get("Case", {}).values())
    cases.pop(None, None)
    tasks = Counter(t.get("Closed_Loop_Key__c") for t in sf.get("Task", {}).values())
    tasks.pop(None, None)
    mails = outbox_keys(w.stack)
    in_message = {(m["id"], r["id"]) for m in sent for r in m["recipients"]}

    with w.ledger.session() as s:
        sends = s.scalars(select(SurveySend)).all()
        lcases = s.scalars(select(Case)).all()
        steps = s.scalars(select(CaseStep)).all()
        events = s.scalars(select(SlaEvent)).all()
        lmails = s.scalars(select(Email)).all()
        responses = {r.response_id: r for r in s.scalars(select(Response))}
    task_ids = {t["Closed_Loop_Key__c"]: t["Id"] for t in sf.get("Task", {}).values()}
    case_ids = {c["Survey_Response_Id__c"]: c["Id"] for c in sf.get("Case", {}).values()}
    esc_keys = [(e.details or {}).get("task", {}).get("Closed_Loop_Key__c") for e in events]

    disagreements = []
    for r in sends:
        if r.status == "sent" and r.kind in ("invite", "recovery"):
            if (r.message_id, r.recipient_id) not in in_message:
                disagreements.append(f"send {r.send_key}: ledger sent, not in the sent message")
    sent_keys = {(r.message_id, r.recipient_id) for r in sends if r.status == "sent"}
    for message_id, recipient_id in in_message:
        if (message_id, recipient_id) not in sent_keys and not _reminder(messages, message_id):
            disagreements.append(f"recipient {recipient_id}: sent by SurveyMonkey, ledger does not say so")
    reminded = {(r.reminder_message_id, r.recipient_id) for r in sends if r.reminder_sent_at}
    for m in sent:
        for r in m["recipients"] if m["type"] == "reminder" else ():
            if (m["id"], r["id"]) not in reminded:
                disagreements.append(f"recipient {r['id']}: reminded by SurveyMonkey, not in the ledger")
    for c in lcases:
        if c.sf_case_id and case_ids.get(c.case_key) != c.sf_case_id:
            disagreements.append(f"case {c.case_key}: ledger id is not the Salesforce Case")
    for st in steps:
        if st.sf_task_id and task_ids.get(st.step_key) != st.sf_task_id:
            disagreements.append(f"step {st.step_key}: ledger id is not the Salesforce Task")
    for e, key in zip(events, esc_keys, strict=True):
        if e.sf_task_id and task_ids.get(key) != e.sf_task_id:
            disagreements.append(f"event {e.event_key}: ledger id is not the Salesforce Task")
    for m in lmails:
        if m.status == "sent" and not mails[m.email_key]:
            disagreements.append(f"email {m.email_key}: ledger sent, SMTP sink never got it")
    disagreements += _carried_undelivered(lmails, mails)
    for key in mails:
        if key not in {m.email_key for m in lmails}:
            disagreements.append(f"email {key}: delivered without a ledger row")

    main = {s_id for s_id, s_ in sm.get("surveys", {}).items() if s_.get("title") == PB.surveys.main.title}
    known = {r.recipient_id for r in sends if r.recipient_id}
    lost = [
        rid
        for rid, r in sm.get("responses", {}).items()
        if r.get("survey_id") in main and r.get("response_status") == "completed"
        and r.get("recipient_id") in known and rid not in responses and w.notes.get("intake_ran")
    ]  # fmt: skip
    lost += [
        rid
        for rid, r in responses.items()
        if r.negative and not r.is_recovery and r.account_id and rid not in case_ids
        and w.notes.get("intake_ran")
    ]  # fmt: skip
    return {
        "duplicate_invites": _dupes(invites),
        "duplicate_reminders": _dupes(reminders),
        "duplicate_cases": _dupes(cases),
        "duplicate_tasks": _dupes(tasks),
        "duplicate_escalations": _dupes(Counter(k for k in esc_keys if k and task_ids.get(k))),
        "duplicate_emails": _dupes(mails),
        "lost_responses": len(lost),
        "disagreements": disagreements,
        "pending": len(w.ledger.pending_intents()) + len(w.ledger.pending_reminders()),
        "emails_withheld": sum(
            m.status not in ("sent", "carried") and not mails[m.email_key] for m in lmails
        ),
        "totals": {
            "invites": sum(invites.values()),
            "reminders": sum(reminders.values()),
            "cases": sum(cases.values()),
            "tasks": sum(tasks.values()),
            "emails": sum(mails.values()),
            "responses": len(responses),
        },
    }


def _reminder(messages: list[dict], message_id: str) -> bool:
    return any(m["id"] == message_id and m["type"] == "reminder" for m in messages)


def assert_clean(report: dict, withheld: int = 0) -> None:
    duplicates = {k: v for k, v in report.items() if k.startswith("duplicate_") and v}
    assert not duplicates, duplicates
    assert report["lost_responses"] == 0, report
    assert report["disagreements"] == [], report["disagreements"][:5]
    assert report["pending"] == 0, report
    assert report["emails_withheld"] == withheld, report


# -- the crash scenarios (shared by the in-process tests and the subprocess kill runner) ---------------

PIPELINES = {
    "dispatch": (dispatch_setup, dispatch_run),
    "reminders": (reminder_setup, reminder_run),
    "intake": (intake_setup, intake_run),
    "sweep": (sweep_setup, sweep_run),
}
MATCHES = {
    None: None,
    "case": sobject_is("Case"),
    "task": sobject_is("Task"),
    "sent": status_sent,
    "responses_watermark": lambda session, name, value: name.startswith("intake:responses:"),
}


def inject(monkeypatch, w: World, target: str, when: str, match: str | None = None, action=None) -> list:
    """``target`` is ``"<sm|sf|mail|ledger>.<method>"`` on the world."""
    owner, name = target.split(".")
    return crash_at(monkeypatch, getattr(w, owner), name, when, MATCHES[match], action)


def fault_on(monkeypatch, w: World, target: str, match: str | None = None, **switches) -> list:
    """Switch sandbox faults on right before the first matching call of ``target`` (then call it)."""
    owner, name = target.split(".")
    obj = getattr(w, owner)
    real, check, fired = getattr(obj, name), MATCHES[match], []

    def wrapper(*args, **kwargs):
        args = _materialise(args)
        if not fired and (check is None or check(*args, **kwargs)):
            fired.append(name)
            w.faults(**switches)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return fired


def with_timeout(monkeypatch, w: World, seconds: float) -> World:
    """Rebuild the hooks with a connection extra ``timeout`` of ``seconds`` (both APIs)."""
    import json

    for var in ("AIRFLOW_CONN_SALESFORCE_DEFAULT", "AIRFLOW_CONN_SURVEYMONKEY_DEFAULT"):
        conn = json.loads(w.stack.conn_env[var])
        conn["extra"]["timeout"] = seconds
        monkeypatch.setenv(var, json.dumps(conn))
    return w.fresh_hooks()
