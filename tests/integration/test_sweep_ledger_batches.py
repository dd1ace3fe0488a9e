"""Issue 18 item 3: the sweep's escalations write the ledger one statement per batch, not one per event,
and leave the rows the SOP asks for (the same on SQLite and PostgreSQL), exactly as the one-row-at-a-time
ledger methods would."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import event

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.ledger import Ledger
from closed_loop.pipeline import sweep
from closed_loop.playbook import load_playbook

PB = load_playbook()
CAL = BusinessCalendar.from_playbook(PB)
TODAY = dt.date(2026, 8, 19)  # a Wednesday; no US holiday around it
DUE = dt.date(2026, 8, 5)  # ten business days before TODAY: overdue
TOMORROW = dt.date(2026, 8, 20)  # due tomorrow: the pre-due reminder's day (1 business day before)
LATE = dt.datetime(2026, 8, 10, 15, tzinfo=dt.UTC)  # completed after DUE: a late completion
STEPS = [s.key for s in PB.steps if s.activation_kind != "on_condition"][:4]


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path):
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database_url")
    )
    led = Ledger.from_url(url)
    led.migrate()
    yield led
    led.dispose()


def seed(led: Ledger, n: int, prefix: str = "c") -> None:
    """``n`` open cases with four Task-backed steps each: every 3rd has its last step due tomorrow, every
    4th its second step completed late, every 5th is "Still Dissatisfied", every 7th closed undocumented."""
    doi = PB.username("doi")
    for i in range(n):
        led.upsert_case({"case_key": f"{prefix}{i:03d}", "account_id": f"001{i:012d}", "lp_role": "doi",
                         "lp_username": doi, "tier": "mid", "channel": "personalised_email",
                         "severity": "high", "priority": "High", "account_name": f"Account {i}"})  # fmt: skip
        led.mark_case_created(f"{prefix}{i:03d}", f"500{prefix}{i:011d}")
    led.upsert_case_steps(
        {"step_key": f"{prefix}{i:03d}:{s}", "case_key": f"{prefix}{i:03d}", "step": s, "owner_username": doi,
         "owner_role": "lp", "due_date": TOMORROW if (i % 3 == 0 and j == 3) else DUE}
        for i in range(n) for j, s in enumerate(STEPS)
    )  # fmt: skip
    led.mark_steps_created(
        {f"{prefix}{i:03d}:{s}": f"00T{prefix}{i:09d}{j:02d}" for i in range(n) for j, s in enumerate(STEPS)}
    )
    led.record_case_status({"case_key": f"{prefix}{i:03d}", "sf_dissatisfied": i % 5 == 0,
                            "sf_closed": i % 7 == 0, "sf_documented": False} for i in range(n))  # fmt: skip
    led.record_step_status({"step_key": f"{prefix}{i:03d}:{STEPS[1]}", "status": "completed",
                            "completed_at": LATE} for i in range(0, n, 4))  # fmt: skip


def expected(n: int, prefix: str = "c") -> dict[str, set[str]]:
    """The SOP's events for the seed, by kind: every step due before today is breached (the late one
    too); each open case with an open overdue step is escalated once; a dissatisfied case once; a late
    completion is a Case-history line; a reminder for an open case's step due tomorrow; a doc flag for
    each case closed without documentation."""
    cases = [f"{prefix}{i:03d}" for i in range(n)]
    return {
        "breach": {
            f"breach:{c}:{s}"
            for i, c in enumerate(cases)
            for j, s in enumerate(STEPS)
            if not (i % 3 == 0 and j == 3)
        },  # fmt: skip
        "late_completion": {f"late:{c}:{STEPS[1]}" for i, c in enumerate(cases) if i % 4 == 0},
        "reminder": {f"reminder:{c}:{STEPS[3]}" for i, c in enumerate(cases) if i % 3 == 0 and i % 7},
        "doc_missing": {f"doc_missing:{c}" for i, c in enumerate(cases) if i % 7 == 0},
        "escalated_cases": {c for i, c in enumerate(cases) if i % 7},
        "dissatisfied_cases": {c for i, c in enumerate(cases) if i % 5 == 0},
    }


def record(led: Ledger) -> int:
    """Run the sweep's intent recording for TODAY; returns the INSERT/UPDATE statements it executed."""
    writes = []

    def count(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            writes.append(statement)

    event.listen(led.engine, "before_cursor_execute", count)
    try:
        plan = sweep.plan_sweep(None, led, PB, CAL, TODAY)
        sweep.record_intents(led, plan, PB, CAL, TODAY)
    finally:
        event.remove(led.engine, "before_cursor_execute", count)
    return len(writes)


def test_the_escalations_are_the_sops_and_written_in_a_constant_number_of_statements(ledger):
    seed(ledger, 12, prefix="s")
    few = record(ledger)
    seed(ledger, 48, prefix="m")
    many = record(ledger)
    assert many == few, "one statement per batch: four times the cases, the same number of writes"

    events = ledger.sla_events()
    by_kind: dict[str, set[str]] = {}
    for e in events:
        by_kind.setdefault(e["kind"], set()).add(e["event_key"])
    want = {k: v | w for (k, v), w in zip(expected(12, "s").items(), expected(48, "m").values(), strict=True)}
    for kind in ("breach", "late_completion", "reminder", "doc_missing"):
        assert by_kind[kind] == want[kind], kind
    escalations = [e for e in events if e["kind"] == "escalation"]
    overdue = {e["case_key"] for e in escalations if e["details"]["reason"] == "overdue"}
    dissatisfied = [e["case_key"] for e in escalations if e["details"]["reason"] == "dissatisfied"]
    assert overdue == want["escalated_cases"]
    assert sorted(dissatisfied) == sorted(want["dissatisfied_cases"])  # once each
    assert all(e["details"]["episode"] == 1 for e in escalations if e["details"]["reason"] == "dissatisfied")
    cases = ledger.cases_by_key([c["case_key"] for c in ledger.open_cases_and_steps()])
    assert {k for k, c in cases.items() if c["dissatisfied"]} == want["dissatisfied_cases"]
    flagged = {k for k, c in cases.items() if c["doc_missing_flagged_at"] is not None}
    assert flagged == {k.split(":", 1)[1] for k in want["doc_missing"]}

    assert record(ledger) <= many and ledger.sla_events() == events  # a rerun adds nothing


def _normalised(rows: list[dict], prefix: str) -> list[str]:
    """Rows as JSON with the test's key prefix replaced (``a...`` and ``b...`` rows compare equal) and the
    write times left out."""
    times = ("created_at", "reported_at", "resolved_at")
    return sorted(
        json.dumps({k: v for k, v in r.items() if k not in times}, default=str, sort_keys=True)
        .replace(f'"{prefix}', '"X')
        .replace(f"00T{prefix}", "00TX")
        for r in rows
    )


def test_the_batched_ledger_writes_leave_the_rows_of_one_write_per_event(ledger):
    def events(p):
        return [
            {
                "event_key": f"{p}e{i}",
                "kind": "reminder",
                "case_key": f"{p}k{i % 3}",
                "step_key": f"{p}s{i}",
                "occurred_on": TODAY,
                "details": {"i": i},
            }
            for i in range(9)
        ]

    def quarantined(p):
        return [
            {
                "q_key": f"{p}q{i}",
                "source": "sla_sweep",
                "record_id": None,
                "reason": "Task upsert failed",
                "payload": {"key": f"{p}t{i}"},
            }
            for i in range(4)
        ]

    for e in events("a"):  # one write per event
        ledger.add_sla_event(e)
    for i in range(0, 9, 2):
        ledger.set_sla_event_task(f"ae{i}", f"00Ta{i}")
    for q in quarantined("a"):
        ledger.quarantine(**q)
    assert len(ledger.add_sla_events(events("b"))) == 9  # one statement per batch
    assert ledger.set_sla_event_tasks({f"be{i}": f"00Tb{i}" for i in range(0, 9, 2)}) == 5
    assert len(ledger.quarantine_all(quarantined("b"))) == 4
    assert ledger.add_sla_events(events("b")) == [] and ledger.quarantine_all(quarantined("b")) == []

    rows = ledger.sla_events()
    a, b = ([r for r in rows if r["event_key"].startswith(p)] for p in "ab")
    assert len(a) == 9 and _normalised(a, "a") == _normalised(b, "b")
    assert sum(r["sf_task_id"] is not None for r in b) == 5
    rows = ledger.unreported_quarantine()
    a, b = ([r for r in rows if r["q_key"].startswith(p)] for p in "ab")
    assert len(a) == 4 and _normalised(a, "a") == _normalised(b, "b")
