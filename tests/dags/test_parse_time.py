"""DAG files stay cheap to parse: no network, no heavy imports at top level."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
