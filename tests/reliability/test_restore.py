"""A ledger restored from a backup (issue 19 item 7), Salesforce side: the replay of the Cases and Tasks
written after the backup finds them in Salesforce and never resets what the LPs did since."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

from reliability_helpers import CAL, INTAKE_DAY, PB, assert_clean, audit, intake_run, intake_setup

CASE_EXT, TASK_EXT = PB.salesforce.case.external_id, PB.salesforce.task.external_id
KEPT = PB.salesforce.kept_on_replay
UI = {"Sforce-Auto-Assign": "FALSE"}


def _db_file(w) -> Path:
    return Path(w.ledger.engine.url.database)


def backup(w, to: Path) -> None:
    """An online backup of the SQLite ledger (the sqlite3 backup API, WAL included)."""
    with sqlite3.connect(_db_file(w)) as src, sqlite3.connect(to) as dst:
        src.backup(dst)


def restore(w, backup_file: Path) -> None:
    w.ledger.engine.dispose()
    with sqlite3.connect(backup_file) as src, sqlite3.connect(_db_file(w)) as dst:
        src.backup(dst)


def _records(w, sobject: str, ext: str) -> dict[str, dict]:
    return {r[ext]: r for r in w.admin("GET", f"records/{sobject}") if r.get(ext)}


def _lp_works(w) -> dict[str, dict]:
    """What the LPs did after the backup: every Case set Working/Low and handed to the VP, the first step
    Task of every Case completed with its priority lowered. Returns the expected values by external id."""
    vp = next(u for u in w.admin("GET", "records/User") if u["Username"] == PB.username("management"))
    cases, tasks = _records(w, "Case", CASE_EXT), _records(w, "Task", TASK_EXT)
    client = w.stack.sandbox.salesforce()
    expected = {}
    for key, case in cases.items():
        # an LP's edit in the UI runs no assignment rule: the API edit says so with the header
        client.Case.update(
            case["Id"], {"Status": "Working", "Priority": "Low", "OwnerId": vp["Id"]}, headers=UI
        )
        expected[key] = {"Status": "Working", "Priority": "Low", "OwnerId": vp["Id"]}
        first = min((t for t in tasks.values() if t["WhatId"] == case["Id"]), key=lambda t: t["ActivityDate"])
        client.Task.update(first["Id"], {"Status": "Completed", "Priority": "Low"}, headers=UI)
        expected[first[TASK_EXT]] = {"Status": "Completed", "Priority": "Low", "OwnerId": first["OwnerId"]}
    now = {**_records(w, "Case", CASE_EXT), **_records(w, "Task", TASK_EXT)}
    assert all(now[k][f] == v[f] for k, v in expected.items() for f in v), "the LP's edits did not hold"
    return expected


def test_a_ledger_restored_from_before_the_cases_replays_them_without_resetting_the_lps_work(
    world, tmp_path, record
):
    intake_setup(world)
    world.notes["intake_ran"] = True
    backup(world, tmp_path / "before-intake.db")
    ingest, opened = intake_run(world, "before")
    assert opened.cases_created == ingest.cases_planned > 0
    made_cases, made_tasks = _records(world, "Case", CASE_EXT), _records(world, "Task", TASK_EXT)
    expected = _lp_works(world)

    restore(world, tmp_path / "before-intake.db")
    world.fresh_hooks()
    ingest_again, _ = intake_run(world, "after-restore")

    cases, tasks = _records(world, "Case", CASE_EXT), _records(world, "Task", TASK_EXT)
    assert ingest_again.cases_planned == ingest.cases_planned  # the gap was read again
    assert set(cases) == set(made_cases) and set(tasks) == set(made_tasks)  # nothing new, nothing twice
    assert {k: r["Id"] for k, r in cases.items()} == {k: r["Id"] for k, r in made_cases.items()}
    reset = {
        key: {f: (want[f], now[f]) for f in KEPT if now[f] != want[f]}
        for key, want in expected.items()
        for now in [cases.get(key) or tasks[key]]
        if any(now[f] != want[f] for f in KEPT)
    }
    assert reset == {}, f"{len(reset)} records reset by the replay, e.g. {next(iter(reset.items()))}"
    report = audit(world)
    assert_clean(report)  # ledger ids are the Salesforce records again, no duplicates, nothing lost
    record(
        "ledger restored from before the intake, intake rerun",
        f"{len(made_cases)} Cases / {len(made_tasks)} Tasks found again, 0 duplicates, "
        f"0 of {len(expected)} LP-worked records reset",
        **report["totals"],
    )


def test_a_ledger_restored_from_before_a_sweep_replays_its_tasks_without_resetting_them(world, tmp_path):
    from closed_loop.pipeline import sweep

    intake_setup(world)
    world.notes["intake_ran"] = True
    intake_run(world)
    day = INTAKE_DAY + dt.timedelta(days=14)  # steps activated and breaches escalated by then
    world.clock(day, hour=11)
    sweep.read_back(world.sf, world.ledger, PB, CAL, day)
    backup(world, tmp_path / "before-sweep.db")
    sweep.progress_and_escalate(world.sf, world.mail, world.ledger, PB, CAL, day, run_id="first")
    before = _records(world, "Task", TASK_EXT)
    made = {k: t for k, t in before.items() if t["CreatedDate"][:10] == day.isoformat()}
    assert made, "the sweep created no Task: the scenario tests nothing"
    client = world.stack.sandbox.salesforce()
    for task in made.values():
        client.Task.update(task["Id"], {"Status": "Completed", "Priority": "Low"})

    restore(world, tmp_path / "before-sweep.db")
    world.fresh_hooks()
    sweep.read_back(world.sf, world.ledger, PB, CAL, day)
    sweep.progress_and_escalate(world.sf, world.mail, world.ledger, PB, CAL, day, run_id="after-restore")

    after = _records(world, "Task", TASK_EXT)
    assert set(after) == set(before)
    reset = [k for k in made if (after[k]["Status"], after[k]["Priority"]) != ("Completed", "Low")]
    assert reset == [], f"{len(reset)} of {len(made)} Tasks reset by the replay"
