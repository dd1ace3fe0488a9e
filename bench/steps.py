"""One pipeline step in a fresh process: ``python bench/steps.py '<json>'`` prints one JSON line.

The JSON names the step, the run's logical date (``today``), the ledger URL and the playbook; the sandbox
connections come from the AIRFLOW_CONN_* variables in the environment. The line carries the step's own
output (counts), the hooks' call counters, wall time, CPU time and the process's peak RSS.

``python bench/steps.py --serve`` is a fork server: it imports what every step imports once (Airflow, the
hooks, pandas, SQLAlchemy: seconds per process on a loaded machine), then forks a fresh child per JSON line
on stdin and prints the child's result line, with the child's CPU time from ``wait4`` (user + system).
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]


def _reset_peak_rss() -> None:
    """A forked child inherits its parent's peak RSS (ru_maxrss / VmHWM): reset it (Linux clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _context(cfg: dict):
    from closed_loop.domain.calendar import BusinessCalendar
    from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
    from closed_loop.ledger import Ledger
    from closed_loop.playbook import load_playbook

    playbook = load_playbook(cfg.get("playbook")) if cfg.get("playbook") else load_playbook()
    return (ClosedLoopSalesforceHook(), SurveyMonkeyHook(), Ledger.from_url(cfg["ledger_url"]), playbook,
            BusinessCalendar.from_playbook(playbook))  # fmt: skip


def _jsonable(value):
    if hasattr(value, "as_xcom"):
        return value.as_xcom()
    return json.loads(json.dumps(value, default=str))


def _naive_sm(sm, ledger, playbook, n: int) -> dict:
    """The same n responses fetched one per call (per_page=1 paging: the sandbox, like SurveyMonkey's
    bulk listing, has no cheaper single-response read) and 100 per call."""
    from closed_loop.pipeline.surveys import resolve_survey_id

    survey_id = resolve_survey_id(sm, ledger, playbook.surveys.main)
    out = {}
    for mode, per_page in (("bulk", 100), ("naive", 1)):
        before, t0 = sm.calls_made, time.perf_counter()
        got = sum(1 for _ in itertools.islice(sm.iter_responses(survey_id=survey_id, per_page=per_page), n))
        out[mode] = {"records": got, "calls": sm.calls_made - before, "seconds": time.perf_counter() - t0}
    return out


def _naive_sf(sf, n: int) -> dict:
    """The same n Tasks (copies of the pipeline's) written with one simple-salesforce ``Task.create``
    each, and with sObject Collections upserts (200 per call)."""
    fields = "Subject, Description, Status, Priority, ActivityDate, OwnerId, WhatId, WhoId"
    fields += ", Closed_Loop_Key__c"
    soql = f"SELECT {fields} FROM Task WHERE Closed_Loop_Key__c != null ORDER BY CreatedDate LIMIT {n}"
    rows = [{k: v for k, v in r.items() if v is not None} for r in sf.query(soql)]
    out = {}
    before, t0 = sf.calls_made, time.perf_counter()
    bulk = [{**r, "Closed_Loop_Key__c": f"bulk:{r['Closed_Loop_Key__c']}"[:255]} for r in rows]
    ok = sum(r["success"] for r in sf.upsert_records("Task", "Closed_Loop_Key__c", bulk))
    out["bulk"] = {"records": ok, "calls": sf.calls_made - before, "seconds": time.perf_counter() - t0}
    conn = sf.get_conn()
    before, t0 = sf.calls_made, time.perf_counter()
    for r in rows:
        conn.Task.create({**r, "Closed_Loop_Key__c": f"naive:{r['Closed_Loop_Key__c']}"[:255]})
    seconds = time.perf_counter() - t0
    out["naive"] = {"records": len(rows), "calls": sf.calls_made - before, "seconds": seconds}
    return out


def run(cfg: dict) -> dict:
    os.environ.update(cfg.get("env") or {})  # this step's connections (AIRFLOW_CONN_*) and Airflow home
    _reset_peak_rss()
    t0 = time.perf_counter()
    sf, sm, ledger, playbook, cal = _context(cfg)
    today = date.fromisoformat(cfg["today"])
    run_id = f"bench-{cfg['step']}-{today}"
    step = cfg["step"]
    t1, c1 = time.perf_counter(), time.process_time()
    try:
        out = _step(cfg, step, sf, sm, ledger, playbook, cal, today, run_id)
    except Exception as exc:  # reported, not raised: the budget demo expects failures
        out = {"error": type(exc).__name__, "message": str(exc)[:300]}
    done, cpu = time.perf_counter(), time.process_time() - c1
    ledger.dispose()
    return {
        "step": step,
        "out": _jsonable(out),
        "hook_calls": {"salesforce": sf.calls_made, "surveymonkey": sm.calls_made},
        "seconds": round(done - t1, 3),
        "step_cpu_seconds": round(cpu, 3),
        "setup_seconds": round(t1 - t0, 3),
        "peak_rss_mb": _peak_rss_mb(),
        "pid": os.getpid(),
    }


def _step(cfg, step, sf, sm, ledger, playbook, cal, today, run_id):  # noqa: C901 - a flat dispatch table
    if step == "baseline":  # imports, hooks, ledger: what every step pays before working
        from closed_loop.domain import scoring  # noqa: F401
        from closed_loop.pipeline import dispatch, intake, sweep  # noqa: F401

        out = {}
    elif step == "sync":
        from closed_loop.pipeline import dispatch

        out = dispatch.sync_go_lives(sf, ledger, playbook, today)
    elif step == "invites":
        from closed_loop.pipeline import dispatch

        out = dispatch.send_invites(sm, ledger, playbook, today, run_id=run_id)
    elif step == "reminders":
        from closed_loop.pipeline import dispatch

        out = dispatch.send_reminders(sm, sf, ledger, playbook, today, run_id=run_id, calendar=cal)
    elif step == "intake":
        from closed_loop.pipeline import intake

        out = intake.ingest_responses(sm, ledger, playbook, cal, today)
    elif step == "open_cases":
        from closed_loop.pipeline import intake

        out = intake.open_cases(sf, ledger, playbook, cal, today)
    elif step in ("sweep_read_back", "sweep_read_back_next"):
        from closed_loop.pipeline import sweep

        out = sweep.read_back(sf, ledger, playbook, cal, today)
    elif step == "escalations":
        from closed_loop.hooks.mail import ClosedLoopSmtpHook
        from closed_loop.pipeline import sweep

        out = sweep.progress_and_escalate(
            sf, ClosedLoopSmtpHook(), ledger, playbook, cal, today, run_id=run_id
        )
    elif step == "recovery_pulses":
        from closed_loop.pipeline import sweep

        out = sweep.send_recovery_pulses(sm, ledger, playbook, today, run_id=run_id)
    elif step == "naive_sm":
        out = _naive_sm(sm, ledger, playbook, cfg["n"])
    elif step == "naive_sf":
        out = _naive_sf(sf, cfg["n"])
    else:
        raise SystemExit(f"unknown step {step}")
    return out


def _preimport() -> None:
    """Everything a step imports, so each forked child starts warm (what a long-lived worker would be)."""
    from sqlalchemy.orm import configure_mappers

    import closed_loop.domain.scoring  # noqa: F401
    import closed_loop.hooks  # noqa: F401
    import closed_loop.hooks.mail  # noqa: F401
    import closed_loop.ledger  # noqa: F401
    import closed_loop.pipeline.dispatch  # noqa: F401
    import closed_loop.pipeline.intake  # noqa: F401
    import closed_loop.pipeline.surveys  # noqa: F401
    import closed_loop.pipeline.sweep  # noqa: F401
    import closed_loop.playbook  # noqa: F401
    from closed_loop.ledger import models  # noqa: F401

    configure_mappers()  # the ORM's one-time mapper set-up, not a step's work


def _fork_one(cfg: dict) -> dict:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one step, its JSON on the pipe, no interpreter teardown
        os.close(read)
        code = 0
        try:
            payload = json.dumps(run(cfg)).encode()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            payload, code = json.dumps({"step": cfg.get("step"), "crash": repr(exc)[:2000]}).encode(), 1
        with os.fdopen(write, "wb") as out:
            out.write(payload)
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as inp:
        data = inp.read()
    _, _, usage = os.wait4(pid, 0)
    result = json.loads(data or b"{}")
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 3)
    return result


def serve() -> None:
    """Results on the original stdout; whatever a step prints (logs) goes to stderr."""
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    _preimport()
    reply.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    reply.flush()
    for line in sys.stdin:
        if line.strip():
            reply.write(json.dumps(_fork_one(json.loads(line))) + "\n")
            reply.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        print(json.dumps(run(json.loads(sys.argv[1]))))
