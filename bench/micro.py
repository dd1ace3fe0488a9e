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
for name, fn in (("vectorised", score_responses), ("naive", score_responses_naive)):
    t0 = time.process_time(); result = fn(details, responses, pb); s = time.process_time() - t0
    out[name] = {"seconds": round(s, 3), "per_second": round(n / s), "negatives": len(result.negatives())}
print(json.dumps(out))
"""

PARSE = r"""
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - t0
tasks = sum(len(d.tasks) for d in bag.dags.values())
out = {"seconds": seconds, "dags": len(bag.dags), "errors": len(bag.import_errors), "tasks": tasks}
print(json.dumps(out))
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


def scoring_throughput(n: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SCORING, str(n), ENV_PATH, str(REPO / "tests" / "unit"), str(REPO / "tests")],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["speedup"] = round(out["naive"]["seconds"] / out["vectorised"]["seconds"], 1)
    # CPU time of flatten + every trigger + explanations vs json.loads of the same pages, one process
    out["ratio_to_json_parse"] = round(
        out["vectorised"]["seconds"] / max(out["json_parse"]["seconds"], 1e-9), 1
    )
    return out


def _parse_once(path: Path, env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", PARSE, str(path)], capture_output=True, text=True,
                          check=True, env=env, cwd=REPO)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dag_parse_times(repeats: int, airflow_home: Path, max_files: int | None = None) -> dict:
    """Median DagBag load time of each dags/*.py file and of an empty DAG file, each load in a fresh
    process (Airflow itself is imported before the clock starts)."""
    import os

    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PYTHONPATH": ENV_PATH, "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins")}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "bench_empty_dag.py"
        empty.write_text(EMPTY_DAG)
        dag_files = sorted((REPO / "dags").glob("*.py"))[:max_files]
        files = {"(empty DAG)": empty} | {p.name: p for p in dag_files}
        out = {}

        def measure(name: str, path: Path) -> dict:
            runs = [_parse_once(path, env) for _ in range(repeats)]
            out[name] = {
                "median_s": round(statistics.median(r["seconds"] for r in runs), 4),
                "runs_s": [round(r["seconds"], 4) for r in runs],
                "dags": runs[0]["dags"],
                "tasks": runs[0].get("tasks", 0),
                "import_errors": runs[0]["errors"],
            }
            return out[name]

        for name, path in files.items():
            measure(name, path)
        for name in [n for n in out if n != "(empty DAG)"]:  # like with like: as many EmptyOperators
            n = out[name]["tasks"]
            twin = Path(tmp) / f"bench_empty_operators_{n}.py"
            if not twin.exists():
                twin.write_text(EMPTY_OPERATORS_DAG.format(n=n))
            ref = out.get(f"({n} EmptyOperator DAG)") or measure(f"({n} EmptyOperator DAG)", twin)
            out[name]["empty_operator_dag_s"] = ref["median_s"]
            out[name]["ratio_to_empty_operator_dag"] = round(out[name]["median_s"] / ref["median_s"], 2)
    base = out["(empty DAG)"]["median_s"]
    for row in out.values():
        row["vs_empty"] = round(row["median_s"] / base, 2)
    return out
