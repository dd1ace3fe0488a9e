"""Airflow as a deployment runs it, on one machine: api-server, scheduler and dag-processor processes on a
SQLite AIRFLOW_HOME (LocalExecutor). Runs are triggered by logical date through the REST API and executed
by the scheduler, so Airflow records them (task logs on disk, real start/end times) and the UI shows them.

    with LocalDeployment(home, extra_env=conn_env) as airflow:
        run = airflow.run_dag("sla_sweep", date(2026, 7, 15))   # trigger, wait, read back
        run.state, run.seconds, run.results                      # results: each task's "closed-loop result"

The scheduler only runs triggered runs (``[scheduler] use_job_schedule = False``): the demo decides which
logical dates run, in which order, with the sandbox clock set for each. ``stop()`` ends every process
group it started. ``ui_env`` is what ``make airflow`` shares (the same home, the same login).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

from devtools.airflow_cli import AIRFLOW, REPO, AirflowCli, airflow_env

UI_USER = "admin"
TERMINAL = {"success", "failed"}


def ui_login(home: Path) -> tuple[str, str, Path]:
    """The UI's user and password (SimpleAuthManager), generated once per AIRFLOW_HOME."""
    path = home / "ui-passwords.json"
    if not path.exists():
        path.write_text(json.dumps({UI_USER: secrets.token_urlsafe(12)}))
        path.chmod(0o600)
    return UI_USER, json.loads(path.read_text())[UI_USER], path


def deployment_env(home: Path, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """One environment for every process: local-only API, the UI login, triggered runs only."""
    user, _, passwords = ui_login(home)
    env = airflow_env(home, extra)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret(home, "jwt"),
            "AIRFLOW__API__SECRET_KEY": _secret(home, "api"),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.3",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        }
    )
    return env


def _secret(home: Path, name: str) -> str:
    path = home / f".{name}-secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text()


@dataclass
class DagRun:
    dag_id: str
    logical_date: date
    run_id: str
    state: str
    seconds: float
    results: dict = field(default_factory=dict)  # task_id -> the task's returned counts

    @property
    def ok(self) -> bool:
        return self.state == "success"


@dataclass
class LocalDeployment:
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    processes: tuple[str, ...] = ("api-server", "scheduler", "dag-processor")

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        if not self.port:
            from devtools.distributed import free_port

            self.port = free_port()
        self._procs: dict[str, subprocess.Popen] = {}
        self._token: str | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        return deployment_env(self.home, self.port, self.extra_env)

    def __enter__(self) -> LocalDeployment:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        AirflowCli(self.home, self.extra_env).migrate()

    def start(self, dag_ids: tuple[str, ...] = (), timeout: float = 300) -> LocalDeployment:
        if self._procs:  # already started (``with LocalDeployment(...).start(...) as airflow``)
            return self
        self.migrate()
        (self.home / "processes").mkdir(exist_ok=True)
        for name in self.processes:
            self._spawn(name)
        self._wait(self._api_ready, timeout, "the api-server")
        for dag_id in dag_ids:
            self._wait(lambda d=dag_id: self._dag_ready(d), timeout, f"DAG {dag_id} to be parsed")
        return self

    def stop(self, grace: float = 20) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self._procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(10)
        self._procs.clear()

    # ---- runs --------------------------------------------------------------------------------------
    def run_dag(self, dag_id: str, day: date, conf: dict | None = None, timeout: float = 600) -> DagRun:
        """Trigger ``dag_id`` for logical date ``day`` (midnight UTC), wait for it, read its task results.

        A run that already exists for that logical date (a rerun) is cleared and runs again."""
        started = time.monotonic()
        logical = datetime.combine(day, dtime(), UTC).isoformat().replace("+00:00", "Z")
        run_id = f"demo__{day.isoformat()}"
        body = {"dag_run_id": run_id, "logical_date": logical, "conf": conf or {}}
        try:
            self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", body)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise
            clear = {"dag_run_id": run_id, "dry_run": False, "reset_dag_runs": True, "only_failed": False}
            self.api("POST", f"/api/v2/dags/{dag_id}/clearTaskInstances", clear)
        state = self._wait_run(dag_id, run_id, timeout)
        return DagRun(dag_id, day, run_id, state, round(time.monotonic() - started, 1),
                      self.task_results(dag_id, run_id))  # fmt: skip

    def task_results(self, dag_id: str, run_id: str) -> dict[str, dict]:
        """Each task's returned counts (its XCom ``return_value``), as the UI shows them."""
        base = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        out = {}
        for ti in self.api("GET", base).get("task_instances", []):
            try:
                entry = self.api("GET", f"{base}/{ti['task_id']}/xcomEntries/return_value?deserialize=true")
            except urllib.error.HTTPError:
                continue
            value = entry.get("value")
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    continue
            if isinstance(value, dict):
                out[ti["task_id"]] = value
        return out

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    # ---- REST API ----------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - local http URL
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token()}"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
            raw = resp.read()
        return json.loads(raw) if raw else {}

    def token(self) -> str:
        if self._token is None:
            user, password, _ = ui_login(self.home)
            request = urllib.request.Request(  # noqa: S310 - local http URL
                f"http://127.0.0.1:{self.port}/auth/token", method="POST",
                data=json.dumps({"username": user, "password": password}).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    # ---- internals ---------------------------------------------------------------------------------
    def _spawn(self, name: str) -> None:
        args = [name, "--host", "127.0.0.1", "--port", str(self.port)] if name == "api-server" else [name]
        with (self.home / "processes" / f"{name}.log").open("ab") as out:
            self._procs[name] = subprocess.Popen(  # noqa: S603 - fixed executable
                [AIRFLOW, *args], env=self.env(), stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                start_new_session=True,
            )  # fmt: skip

    def _api_ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/api/v2/monitor/health"
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - local http URL
                return resp.status == 200
        except OSError:
            return False

    def _dag_ready(self, dag_id: str) -> bool:
        try:
            self.api("GET", f"/api/v2/dags/{dag_id}")
        except urllib.error.HTTPError:
            return False
        self.unpause(dag_id)
        return True

    def _wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        state: list[str] = []

        def done() -> bool:
            state[:] = [self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]]
            return state[0] in TERMINAL

        self._wait(done, timeout, f"{dag_id} {run_id}", interval=0.5)
        return state[0]

    def _wait(self, predicate, timeout: float, what: str, interval: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = {n: p.returncode for n, p in self._procs.items() if p.poll() is not None}
            if dead:
                raise RuntimeError(
                    f"Airflow processes exited while waiting for {what}: {dead}\n{self.tail()}"
                )
            if predicate():
                return
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self.tail()}")

    def tail(self, n: int = 2000) -> str:
        logs = sorted((self.home / "processes").glob("*.log"))
        return "\n".join(f"--- {p.stem} ---\n{p.read_text(errors='replace')[-n:]}" for p in logs)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
