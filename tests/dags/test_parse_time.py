"""DAG files stay cheap to parse: no network, no heavy imports at top level."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from closed_loop.dag_defaults import OWNER

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ["pandas", "simple_salesforce", "matplotlib", "requests", "closed_loop.domain.scoring"]

PROBE = r"""
import json, socket, sys, runpy
def _no_network(*a, **k):
    raise RuntimeError("network I/O at DAG parse time")
socket.socket.connect = _no_network
socket.create_connection = _no_network
socket.getaddrinfo = _no_network
runpy.run_path(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules)))
"""


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_without_network_or_heavy_imports(dag_file, tmp_path):
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file)], capture_output=True, text=True, env=env, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    loaded = [m for m in HEAVY if m in modules]
    assert not loaded, f"{dag_file.name} imports {loaded} at top level"


def test_there_are_dag_files():
    assert len(DAG_FILES) >= 4


MERGES = r"""
import json, sys
import airflow.sdk.bases.operator as op
from airflow.dag_processing.dagbag import DagBag

calls = [0]
real = op.get_merged_defaults


def counting(*args, **kwargs):
    calls[0] += 1
    return real(*args, **kwargs)


op.get_merged_defaults = counting
bag = DagBag(dag_folder=sys.argv[1])
assert not bag.import_errors, bag.import_errors
tasks = [t for d in bag.dags.values() for t in d.tasks]
owners = sorted({t.owner for t in tasks})
dry_run = all("dry_run" in t.params for t in tasks)
print(json.dumps({"merges": calls[0], "tasks": len(tasks), "owners": owners, "dry_run": dry_run}))
"""


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_operators_merge_dag_defaults_at_most_twice_per_task(dag_file, tmp_path):
    """Parse cost bounded by work, not time: Airflow merges default_args and deep-copies the DAG params at
    every ``__init__`` level of an operator's class hierarchy; ours do it at the outermost level, and
    Airflow's BaseOperator once more (its own wrapper). The tasks still get the DAG's defaults."""
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": f"{REPO / 'plugins'}:{REPO}",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-c", MERGES, str(dag_file)], capture_output=True, text=True, env=env, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tasks"] >= 1
    assert out["merges"] <= 2 * out["tasks"], out  # a three-level operator merged four times per task
    assert out["owners"] == [OWNER] and out["dry_run"], out  # the DAG's default_args and params still apply
