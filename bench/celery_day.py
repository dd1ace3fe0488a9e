"""A 100x day on the Celery stack (``python bench/run.py --celery``; not part of ``make bench``: ~15 min).

With one Celery worker, then two (separate ``airflow celery worker`` processes, one task slot each), a fresh
100x org with one day's responses (550: a quarter's 50,000 / 91 days) in a fresh
sandbox, a PostgreSQL ledger and a CeleryExecutor Airflow (``devtools.distributed``: api-server, scheduler,
dag-processor, Celery worker on Redis). The day, as DAG runs triggered with their logical dates:

A. survey_dispatch (14:00) and the busy response_intake run (14:15: the day's responses, Cases and Tasks),
   triggered together: what can overlap when there is more than one slot;
B. sla_sweep (read back, escalate, pulses, digest);
C. idle response_intake runs (nothing new: what each of the other 95 runs of a day costs).

Measured per phase: wall time, CPU seconds of every Airflow process tree (``psutil``: own + reaped
children) and of the sandbox, and each task instance's queued/running times from the metadata database.
"""

from __future__ import annotations

import json
import math
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.world import Scale, build_world, seed_ledger

DAY = Scale("100x-day", accounts=10_000, responses=math.ceil(50_000 / 91))
INTAKE_RUNS_PER_DAY = 96


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants: live ones by their own times, reaped ones through
    their parents' children times."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
    return total


def _cpu(cluster, sandbox_pid: int) -> dict[str, float]:
    out = {name: _tree_cpu(pid) for name, pid in cluster.pids().items()}
    out["sandbox"] = _tree_cpu(sandbox_pid)
    return out


def _trigger(cluster, dag_id: str, logical: str) -> str:
    run_id = f"bench__{dag_id}__{logical.replace(':', '').replace('-', '')}"
    cluster.cli("dags", "trigger", dag_id, "--run-id", run_id, "--logical-date", logical, "-c", "{}")
    return run_id


def _phase(cluster, sandbox_pid: int, runs: list[tuple[str, str]], timeout: float = 3600) -> dict:
    """Trigger the runs together, wait for all; wall, CPU per process, task instance timings."""
    from concurrent.futures import ThreadPoolExecutor

    before, t0 = _cpu(cluster, sandbox_pid), time.monotonic()
    with ThreadPoolExecutor(len(runs)) as pool:  # together: a CLI call takes seconds on a loaded machine
        futures = [(d, pool.submit(_trigger, cluster, d, lg)) for d, lg in runs]
        ids = [(d, f.result()) for d, f in futures]
    states = {f"{d}/{r}": cluster.wait_for_run(d, r, timeout=timeout) for d, r in ids}
    wall = time.monotonic() - t0
    after = _cpu(cluster, sandbox_pid)
    tasks = []
    for dag_id, run_id in ids:
        rows = cluster.query(
            "SELECT task_id, state, EXTRACT(EPOCH FROM (start_date - queued_dttm)), duration, start_date, "
            "end_date FROM task_instance WHERE dag_id = %s AND run_id = %s ORDER BY start_date",
            dag_id,
            run_id,
        )
        for task_id, state, queued_s, duration, start, end in rows:
            tasks.append({"dag_id": dag_id, "task_id": task_id, "state": state,
                          "queued_s": round(float(queued_s or 0), 2), "running_s": round(duration or 0, 2),
                          "start": start.isoformat() if start else None,
                          "end": end.isoformat() if end else None})  # fmt: skip
    return {
        "runs": [f"{d} {lg}" for d, lg in runs],
        "states": states,
        "wall_s": round(wall, 1),
        "cpu_s": {k: round(after[k] - before.get(k, 0.0), 2) for k in after},
        "tasks": tasks,
        "overlapping_tasks": _overlaps(tasks),
    }


def _overlaps(tasks: list[dict]) -> list[str]:
    spans = [
        (t["start"], t["end"], f"{t['dag_id']}.{t['task_id']}") for t in tasks if t["start"] and t["end"]
    ]
    return sorted(
        f"{a[2]} || {b[2]}"
        for i, a in enumerate(spans)
        for b in spans[i + 1 :]
        if a[0] < b[1] and b[0] < a[1]
    )


def _second_worker(cluster) -> None:
    """A second ``airflow celery worker`` process on the same broker (its own Celery node name)."""
    cluster._spawn(  # noqa: SLF001 - the harness starts one worker; a second one the same way
        "celery-worker-2",
        ["celery", "worker", "--concurrency", "1", "--celery-hostname", f"{cluster.worker_name}-2@%h"],
        role="worker",
    )
    ready = lambda: "ready" in cluster.log_text("celery-worker-2")  # noqa: E731
    cluster._wait(ready, 300, "second celery worker ready")  # noqa: SLF001


def _one(root: Path, workers: int, idle_runs: int) -> dict:
    from devtools import mail_sink
    from devtools.distributed import DistributedAirflow
    from sandbox.testing import run_sandbox

    workdir = root / f"celery-{workers}"
    workdir.mkdir(parents=True)
    t0 = time.monotonic()
    world = build_world(workdir, DAY)
    sink = mail_sink.start(workdir / "outbox")
    smtp = {"conn_type": "smtp", "host": "127.0.0.1", "port": sink.port,
            "extra": {"from_email": "closed-loop@northwind.example", "disable_tls": True,
                      "disable_ssl": True, "timeout": 10}}  # fmt: skip
    opts = {"accounts": DAY.accounts, "save_interval": 10**6, "sm_minute_limit": 10**9,
            "sm_day_limit": 10**9, "sf_daily_limit": 10**9, "timeout": 900}  # fmt: skip
    try:
        with run_sandbox(workdir, seed=7, state=workdir / "sandbox-state.json", **opts) as info:
            env = {
                "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp),
                **info.airflow_conn_env(),
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            }  # only the runs triggered here
            cluster = DistributedAirflow(workdir / "cluster", extra_env=env, ledger=True,
                                         worker_concurrency=1, redis_db=13)  # fmt: skip
            with cluster:
                from closed_loop.ledger import Ledger

                if workers == 2:
                    _second_worker(cluster)

                url = cluster.env()["AIRFLOW_CONN_CLOSED_LOOP_DB"].replace(
                    "postgresql://", "postgresql+psycopg2://"
                )
                ledger = Ledger.from_url(url)
                seed_ledger(ledger, world)
                ledger.dispose()
                del world
                for dag_id in ("survey_dispatch", "response_intake", "sla_sweep"):
                    cluster.wait_for_dag(dag_id, timeout=900)
                    cluster.cli("dags", "unpause", dag_id)
                setup_s = time.monotonic() - t0
                idle = _idle_background(cluster, info.pid, seconds=30)
                day = "2026-07-01"
                phases = {
                    "A_dispatch_and_busy_intake": _phase(cluster, info.pid, [
                        ("survey_dispatch", f"{day}T14:00:00+00:00"),
                        ("response_intake", f"{day}T14:15:00+00:00")]),
                    "B_sweep": _phase(cluster, info.pid, [("sla_sweep", f"{day}T15:00:00+00:00")]),
                    "C_idle_intake": _phase(cluster, info.pid, [
                        ("response_intake", f"{day}T{15 + i // 4:02d}:{15 * (i % 4):02d}:00+00:00")
                        for i in range(1, idle_runs + 1)]),
                }  # fmt: skip
                timings = dict(cluster.timings)
    finally:
        sink.stop()
    return {"workers": workers, "slots_per_worker": 1, "setup_s": round(setup_s, 1),
            "harness_timings": timings, "idle_background": idle, "phases": phases}  # fmt: skip


def _idle_background(cluster, sandbox_pid: int, seconds: float) -> dict:
    """CPU the platform burns with nothing to run (scheduler loop, dag-processor re-parsing the files)."""
    before = _cpu(cluster, sandbox_pid)
    time.sleep(seconds)
    after = _cpu(cluster, sandbox_pid)
    return {"seconds": seconds, "cpu_s": {k: round(after[k] - before.get(k, 0.0), 2) for k in after}}


def summarise(runs: list[dict]) -> dict:
    """A day's compute from the phases. The platform's background CPU (scheduler loop, dag-processor
    re-parsing) is measured with nothing running and taken out of each phase (rate x wall); the work of a
    day is A + B + (96 - 1) idle intake runs, an idle run being task start-up and bookkeeping (its work is
    one responses page)."""
    out = {}
    for r in runs:
        ph, bg = r["phases"], r["idle_background"]
        airflow = [k for k in bg["cpu_s"] if k != "sandbox"]
        rate = sum(bg["cpu_s"][k] for k in airflow) / bg["seconds"]
        total = {p: sum(v["cpu_s"].get(k, 0) for k in airflow) for p, v in ph.items()}
        work = {p: max(0.0, total[p] - rate * v["wall_s"]) for p, v in ph.items()}
        idle = ph["C_idle_intake"]
        per_idle_run = work["C_idle_intake"] / max(1, len(idle["runs"]))
        startups = (INTAKE_RUNS_PER_DAY - 1) * per_idle_run
        day_work = work["A_dispatch_and_busy_intake"] + work["B_sweep"] + startups
        out[f"{r['workers']}_worker{'s' if r['workers'] > 1 else ''}"] = {
            "wall_s": {p: v["wall_s"] for p, v in ph.items()},
            "airflow_cpu_s": {p: round(t, 2) for p, t in total.items()},
            "airflow_work_cpu_s": {p: round(t, 2) for p, t in work.items()},
            "sandbox_cpu_s": {p: v["cpu_s"].get("sandbox") for p, v in ph.items()},
            "background_cpu_s_per_s": round(rate, 3),
            "idle_intake_run_cpu_s": round(per_idle_run, 2),
            "worker_cpu_per_idle_task_s": round(
                sum(v for k, v in idle["cpu_s"].items() if k.startswith("celery-worker"))
                / max(1, 2 * len(idle["runs"])),
                2,
            ),
            "day_work_cpu_s": round(day_work, 1),
            "day_background_cpu_s": round(rate * 86400, 0),
            "intake_startups_per_day": 2 * INTAKE_RUNS_PER_DAY,
            "intake_startup_share_of_day_work": round(startups / day_work, 3) if day_work else None,
            "intake_startup_share_incl_background": round(startups / (day_work + rate * 86400), 3)
            if day_work
            else None,
            "overlapping_tasks_phase_A": ph["A_dispatch_and_busy_intake"]["overlapping_tasks"],
        }
    return out


def measure(root: Path, workers=(1, 2), idle_runs: int = 4) -> dict:
    started = time.monotonic()
    runs = [_one(root, w, idle_runs) for w in workers]
    return {"when": datetime.now(UTC).isoformat(timespec="seconds"), "scale": DAY.__dict__,
            "load_average": round(os.getloadavg()[0], 1), "runs": runs, "summary": summarise(runs),
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
