"""Run whole DAGs through the real Airflow CLI on a throw-away SQLite AIRFLOW_HOME (tests and the demo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
# Pools that cap concurrent calls per external system (the DAGs' tasks name them; docker-compose's
# airflow-init and the distributed harness create the same).
POOLS = {
    "salesforce_api": {"slots": 4, "description": "Concurrent Salesforce REST calls"},
    "surveymonkey_api": {"slots": 2, "description": "Concurrent SurveyMonkey calls (120/min, 500/day)"},
}


def airflow_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for an Airflow CLI process rooted at ``home`` and this repository's DAGs and plugins."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": env.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO"),
            "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO), env.get("PYTHONPATH", "")]),
            "CLOSED_LOOP_PLAYBOOK": env.get("CLOSED_LOOP_PLAYBOOK", str(REPO / "include" / "playbook.yaml")),
        }
    )
    env.update(extra or {})
    return env


@dataclass
class DagRunResult:
    dag_id: str
    logical_date: str
    returncode: int
    output: str = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and "state=success" in self.output


@dataclass
class AirflowCli:
    """A migrated AIRFLOW_HOME plus the environment (connections, playbook) its DAG runs see."""

    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return airflow_env(self.home, self.extra_env)

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if (self.home / "airflow.db").exists():
            return
        self.run("db", "migrate", check=True)
        for name, pool in POOLS.items():
            self.run("pools", "set", name, str(pool["slots"]), pool["description"], check=True)

    def run(self, *args: str, check: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(  # noqa: S603 - fixed executable, arguments from the caller
            [AIRFLOW, *args], env=self.env(), capture_output=True, text=True, timeout=timeout, cwd=REPO
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    def dags_test(self, dag_id: str, logical_date: str, conf: dict | None = None) -> DagRunResult:
        """``airflow dags test <dag_id> <date>``: one real DAG run, in-process executor."""
        args = ["dags", "test", dag_id, logical_date]
        if conf:
            args += ["-c", json.dumps(conf)]
        proc = self.run(*args)
        return DagRunResult(dag_id, logical_date, proc.returncode, proc.stdout + proc.stderr)
