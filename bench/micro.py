"""CPU-side measurements: scoring throughput and DAG file parse time (each in fresh subprocesses)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_PATH = f"{REPO / 'plugins'}:{REPO}"

SCORING = r"""
import json, random, sys, time
sys.path[:0] = sys.argv[2].split(":")
sys.path.insert(0, sys.argv[3])
import survey_builders as sb
sys.path.insert(0, sys.argv[4])
from scoring_reference import score_responses_naive
from closed_loop.domain.scoring import score_responses
from closed_loop.playbook import load_playbook

n = int(sys.argv[1])
pb, details, rng = load_playbook(), sb.survey_details(), random.Random(7)
def one(i):
    a = dict(sb.HAPPY)
    if rng.random() < 0.1:
        a[sb.RECOMMEND] = str(rng.randint(0, 6))
        a[sb.RESOLVED] = rng.choice(["No", "Partially"])
    if rng.random() < 0.05:
        a[sb.COMMENT] = "We are considering cancelling our subscription."
    return sb.response(details, str(10**9 + i), a)
responses = [one(i) for i in range(n)]
pages = [json.dumps({"data": responses[i : i + 100]}) for i in range(0, n, 100)]  # the API's pages
out = {"responses": n}
t0 = time.process_time(); parsed = [json.loads(p) for p in pages]; s = time.process_time() - t0
out["json_parse"] = {"seconds": round(s, 3), "per_second": round(n / max(s, 1e-9))}
del parsed
sample = responses[: min(n, 2000)]  # the per-answer reference loop: on a sample (its cost is per response)
runs = (("vectorised", score_responses, responses), ("vectorised_sample", score_responses, sample),
        ("naive", score_responses_naive, sample))
for name, fn, rs in runs:
    t0 = time.process_time(); result = fn(details, rs, pb); s = time.process_time() - t0
    out[name] = {"responses": len(rs), "seconds": round(s, 3), "per_second": round(len(rs) / s),
                 "negatives": len(result.negatives())}
print(json.dumps(out))
"""

PARSE = r"""
import json, os, sys, time
from airflow.dag_processing.dagbag import DagBag

files, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
DagBag(dag_folder=files["(empty DAG)"])  # warm: DagBag's own lazy set-up is not a DAG file's cost


def once(path):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # like the DAG processor: each file parsed in a fresh fork of a process with Airflow loaded
        os.close(read)
        import logging
        logging.disable(logging.CRITICAL)
        t0, w0 = time.process_time(), time.perf_counter()
        bag = DagBag(dag_folder=path)
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
        tasks = sum(len(d.tasks) for d in bag.dags.values())
        os.write(write, json.dumps({"cpu": cpu, "wall": wall, "dags": len(bag.dags), "tasks": tasks,
                                    "errors": len(bag.import_errors)}).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(data)


for name, path in files.items():  # warm-up round, not counted: every module's bytecode cached
    once(path)
runs = {name: [] for name in files}
for _ in range(repeats):  # alternating: a burst of load hits every file alike
    for name, path in files.items():
        runs[name].append(once(path))
warm = {name: [] for name in files}  # the same parses in this one process, modules already imported
for name, path in files.items():
    DagBag(dag_folder=path)
for _ in range(repeats):
    for name, path in files.items():
        t0 = time.process_time()
        DagBag(dag_folder=path)
        warm[name].append(time.process_time() - t0)
print(json.dumps({"runs": runs, "warm": warm}))
"""

EMPTY_DAG = """from airflow.sdk import DAG

with DAG(dag_id="bench_empty", schedule=None):
    pass
"""

EMPTY_OPERATORS_DAG = """from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(dag_id="bench_empty_operators_{n}", schedule=None):
    tasks = [EmptyOperator(task_id=f"t{{i}}") for i in range({n})]
    for a, b in zip(tasks, tasks[1:]):
        a >> b
"""

# the same with the DAG-level arguments every closed-loop DAG file has by the house rules: its cron schedule,
# the dry_run Param (Airflow validates every DAG param against its JSON schema at each parse) and the
# default_args (owner, retries)
HOUSE_EMPTY_OPERATORS_DAG = """from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from closed_loop.dag_defaults import default_args, dry_run_param

with DAG(dag_id="bench_empty_operators_{n}_house", schedule={schedule!r},
         start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         params={{"dry_run": dry_run_param()}}, default_args=default_args(timedelta(minutes=5))):
    tasks = [EmptyOperator(task_id=f"t{{i}}") for i in range({n})]
    for a, b in zip(tasks, tasks[1:]):
        a >> b
"""


def scoring_throughput(n: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SCORING, str(n), ENV_PATH, str(REPO / "tests" / "unit"), str(REPO / "tests")],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["speedup"] = round(out["naive"]["seconds"] / out["vectorised_sample"]["seconds"], 1)  # same responses
    # CPU time of flatten + every trigger + explanations vs json.loads of the same pages, one process
    out["ratio_to_json_parse"] = round(
        out["vectorised"]["seconds"] / max(out["json_parse"]["seconds"], 1e-9), 1
    )
    return out


def _schedule(path: Path) -> str | None:
    import re

    text = path.read_text()
    match = re.search(r'schedule\s*=\s*"([^"]+)"', text) or re.search(r'SCHEDULE\s*=\s*"([^"]+)"', text)
    return match.group(1) if match else None


def dag_parse_times(repeats: int, airflow_home: Path, max_files: int | None = None) -> dict:
    """CPU time of a DagBag load of each dags/*.py file, of an empty DAG file and of DAG files with the same
    number of EmptyOperator tasks (bare, and with the house rules' DAG arguments). Each load runs in a fresh
    fork of
    one process that has Airflow imported (as the DAG processor parses each file); the files alternate,
    ``repeats`` rounds, and the minimum CPU time (``time.process_time`` in the child) is the figure: load
    from other processes on a shared machine only ever adds to it."""
    import os

    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": ENV_PATH, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        # like with like: every module from bytecode (site-packages ship .pyc files; this environment sets
        # PYTHONDONTWRITEBYTECODE, which would leave only the project's modules compiled at every parse)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        empty = Path(tmp) / "bench_empty_dag.py"
        empty.write_text(EMPTY_DAG)
        dag_files = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))[:max_files]
        counts = _task_counts(dag_files, env)
        files = {"(empty DAG)": str(empty)} | {p.name: str(p) for p in dag_files}
        twins: dict[str, tuple[str, str]] = {}
        for p in dag_files:
            n, schedule = counts[p.name], _schedule(p)
            bare = Path(tmp) / f"bench_empty_operators_{n}.py"
            bare.write_text(EMPTY_OPERATORS_DAG.format(n=n))
            files[f"({n} EmptyOperator DAG)"] = str(bare)
            twin = f"({n} EmptyOperator DAG)", None
            if schedule:
                house = Path(tmp) / f"bench_empty_operators_{n}_{abs(hash(schedule))}.py"
                house.write_text(HOUSE_EMPTY_OPERATORS_DAG.format(n=n, schedule=schedule))
                files[f"({n} EmptyOperator DAG, house rules, {schedule})"] = str(house)
                twin = twin[0], f"({n} EmptyOperator DAG, house rules, {schedule})"
            twins[p.name] = twin
        proc = subprocess.run([sys.executable, "-c", PARSE, json.dumps(files), str(repeats)],
                              capture_output=True, text=True, check=True, env=env, cwd=REPO)  # fmt: skip
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    runs, warm = measured["runs"], measured["warm"]
    out = {}
    for name, rs in runs.items():
        out[name] = {
            "cpu_min_s": round(min(r["cpu"] for r in rs), 5),
            "cpu_median_s": round(statistics.median(r["cpu"] for r in rs), 5),
            "warm_cpu_min_s": round(min(warm[name]), 5),
            "wall_min_s": round(min(r["wall"] for r in rs), 5),
            "repeats": len(rs),
            "dags": rs[0]["dags"],
            "tasks": rs[0]["tasks"],
            "import_errors": rs[0]["errors"],
        }
    base = out["(empty DAG)"]["cpu_min_s"]
    for row in out.values():
        row["vs_empty"] = round(row["cpu_min_s"] / base, 2)
    for name, (bare, sched) in twins.items():
        row = out[name]
        row["empty_operator_dag_s"] = out[bare]["cpu_min_s"]
        row["ratio_to_empty_operator_dag"] = round(row["cpu_min_s"] / out[bare]["cpu_min_s"], 2)
        if sched:
            row["house_empty_operator_dag_s"] = out[sched]["cpu_min_s"]
            row["ratio_to_house_empty_operator_dag"] = round(row["cpu_min_s"] / out[sched]["cpu_min_s"], 2)
            warm_ratio = row["warm_cpu_min_s"] / out[sched]["warm_cpu_min_s"]
            row["warm_ratio_to_house_empty_operator_dag"] = round(warm_ratio, 2)
    return out


def _task_counts(dag_files: list[Path], env: dict) -> dict[str, int]:
    code = (
        "import json, sys\nfrom airflow.dag_processing.dagbag import DagBag\nout = {}\n"
        "for p in sys.argv[1:]:\n    bag = DagBag(dag_folder=p)\n"
        "    out[p.rsplit('/', 1)[-1]] = sum(len(d.tasks) for d in bag.dags.values())\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *map(str, dag_files)], capture_output=True, text=True,
                          check=True, env=env, cwd=REPO)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])
