"""A real distributed Airflow on this machine's PostgreSQL and Redis, for tests and trials.

    with DistributedAirflow(workdir, dag_id="response_intake", extra_env=conn_env) as cluster:
        run_id = cluster.trigger("response_intake", conf={})
        assert cluster.wait_for_run("response_intake", run_id) == "success"
        tis = cluster.task_instances("response_intake", run_id)  # state, hostname, queue, ...

``start()`` creates a fresh metadata database, runs ``airflow db migrate`` and starts ``api-server``,
``scheduler``, ``dag-processor`` and ``celery worker`` as subprocesses (CeleryExecutor, Redis broker);
``stop()`` ends every process group it started and drops the database. Task instances run by the worker
report the hostname ``worker_hostname`` (``[core] hostname_callable`` is set for the worker only).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devtools.airflow_cli import AIRFLOW, POOLS, REPO

WORKER_HOSTNAME_ENV = "CLOSED_LOOP_WORKER_HOSTNAME"
TERMINAL_RUN_STATES = {"success", "failed"}
_WORKLOAD_LINE = re.compile(
    r"Executing workload in Celery: .*?task_id='(?P<task>[^']+)'.*?run_id='(?P<run>[^']+)'"
)
log = logging.getLogger(__name__)


def worker_hostname() -> str:
    """``[core] hostname_callable`` for the Celery worker: a name that proves where a task ran."""
    return os.environ.get(WORKER_HOSTNAME_ENV) or socket.getfqdn()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DistributedAirflow:
    """CeleryExecutor Airflow made of separate processes; a context manager (start/stop)."""

    workdir: Path
    dag_id: str | None = None  # wait for this DAG to be parsed in start()
    dags_folder: Path = REPO / "dags"
    extra_env: dict[str, str] = field(default_factory=dict)
    pg_dsn: str = "postgresql://postgres@127.0.0.1:5432"
    redis_url: str = "redis://127.0.0.1:6379"
    redis_db: int = 11
    worker_concurrency: int = 4
    pools: dict[str, dict] = field(default_factory=lambda: dict(POOLS))
    ledger: bool = False  # a fresh PostgreSQL ledger database behind AIRFLOW_CONN_CLOSED_LOOP_DB
    triggerer: bool = False  # also run `airflow triggerer` (deferrable tasks, asset watchers)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.database = f"airflow_celery_{secrets.token_hex(4)}"
        self.ledger_database = f"{self.database}_ledger"
        self.api_port = free_port()
        self.worker_name = f"celery-worker-{secrets.token_hex(3)}"
        self.jwt_secret = secrets.token_urlsafe(32)
        self.api_secret_key = secrets.token_urlsafe(32)
        self.worker_log_port = free_port()
        self._procs: dict[str, subprocess.Popen] = {}
        self._db_created = False

    # ---- environment -------------------------------------------------------------------------------
    @property
    def sql_alchemy_conn(self) -> str:
        return f"{self.pg_dsn.replace('postgresql://', 'postgresql+psycopg2://', 1)}/{self.database}"

    def env(self, role: str = "cli") -> dict[str, str]:
        """The one environment every process shares (plus the worker's hostname callable)."""
        env = dict(os.environ)
        for key in [k for k in env if k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))]:
            del env[key]
        home = self.workdir / "airflow-home"
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
                "AIRFLOW__CELERY__BROKER_URL": f"{self.redis_url}/{self.redis_db}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.pg_dsn}/{self.database}",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__API__SECRET_KEY": self.api_secret_key,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.worker_log_port),
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "5",
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(REPO / "plugins"), str(REPO), env.get("PYTHONPATH")])
                ),
                "CLOSED_LOOP_PLAYBOOK": env.get(
                    "CLOSED_LOOP_PLAYBOOK", str(REPO / "include" / "playbook.yaml")
                ),
            }
        )
        if self.ledger:
            env["AIRFLOW_CONN_CLOSED_LOOP_DB"] = f"{self.pg_dsn}/{self.ledger_database}"
        env.update(self.extra_env)
        if role == "worker":
            env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] = f"{__name__}.worker_hostname"
            env[WORKER_HOSTNAME_ENV] = self.worker_name
        return env

    # ---- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> DistributedAirflow:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 120) -> DistributedAirflow:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        with self._timed("create databases"):
            self._db_created = True
            self._admin_sql(f'CREATE DATABASE "{self.database}"')
            if self.ledger:
                self._admin_sql(f'CREATE DATABASE "{self.ledger_database}"')
                from closed_loop.ledger import Ledger

                Ledger.from_url(
                    f"postgresql+psycopg2://{self.pg_dsn.split('://', 1)[1]}/{self.ledger_database}"
                ).migrate()
            self._flush_redis()
        with self._timed("db migrate"):
            self.cli("db", "migrate", timeout=300)
        if self.pools:
            with self._timed("pools import"):
                pools_file = self.workdir / "pools.json"
                pools_file.write_text(json.dumps(self.pools))
                self.cli("pools", "import", str(pools_file))
        with self._timed("start processes"):
            self._spawn("api-server", ["api-server", "--port", str(self.api_port)])
            self._spawn("scheduler", ["scheduler"])
            self._spawn("dag-processor", ["dag-processor"])
            self._spawn(
                "celery-worker",
                [
                    "celery",
                    "worker",
                    "--concurrency",
                    str(self.worker_concurrency),
                    "--celery-hostname",
                    f"{self.worker_name}@%h",
                ],
                role="worker",
            )
            if self.triggerer:
                self._spawn("triggerer", ["triggerer"])
            self._wait(self._api_ready, timeout, "api-server health")
            self._wait(lambda: "ready" in self.log_text("celery-worker"), timeout, "celery worker ready")
        if self.dag_id:
            with self._timed(f"parse {self.dag_id}"):
                self.wait_for_dag(self.dag_id, timeout)
        return self

    def stop(self, grace: float = 20) -> None:
        """SIGTERM every process group (worker first), SIGKILL what is left, drop the database."""
        with self._timed("stop"):
            for name in ["celery-worker", "triggerer", "scheduler", "dag-processor", "api-server"]:
                proc = self._procs.get(name)
                if proc and proc.poll() is None:
                    _signal_group(proc, signal.SIGTERM)
            deadline = time.monotonic() + grace
            for name, proc in self._procs.items():
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in %ss: killing its process group", name, grace)
                _signal_group(proc, signal.SIGKILL)
                proc.wait(10)
            self._procs.clear()
            if self._db_created:
                for db in (self.database, self.ledger_database):
                    self._admin_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                self._db_created = False
                self._flush_redis()

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self._procs.items()}

    # ---- operations --------------------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run ``airflow <args>`` with the cluster's environment; raise on a non-zero exit."""
        proc = subprocess.run(  # noqa: S603 - fixed executable, arguments from the caller
            [AIRFLOW, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc.stdout

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        def parsed() -> bool:
            errors = self.query("SELECT filename, stacktrace FROM import_error")
            if errors:
                raise RuntimeError(f"DAG import errors: {errors}")
            return bool(self.query("SELECT 1 FROM dag WHERE dag_id = %s AND NOT is_stale", dag_id))

        self._wait(parsed, timeout, f"DAG {dag_id} parsed by the dag-processor")

    def trigger(self, dag_id: str, conf: dict | None = None, run_id: str | None = None) -> str:
        """Unpause and trigger ``dag_id`` through the CLI; returns the run id."""
        run_id = run_id or f"distributed__{secrets.token_hex(4)}"
        with self._timed(f"unpause+trigger {dag_id}"):
            self.cli("dags", "unpause", dag_id)
            self.cli("dags", "trigger", dag_id, "--run-id", run_id, "-c", json.dumps(conf or {}))
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Poll the metadata DB until the run is success/failed; returns the final state."""
        state: list[str] = []

        def done() -> bool:
            rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id)
            state[:] = [rows[0][0]] if rows else []
            return bool(state) and state[0] in TERMINAL_RUN_STATES

        with self._timed(f"run {dag_id}"):
            self._wait(done, timeout, f"{dag_id} run {run_id} to finish")
        return state[0]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        cols = [
            "task_id",
            "map_index",
            "state",
            "hostname",
            "queue",
            "executor",
            "external_executor_id",
            "try_number",
        ]
        rows = self.query(
            f"SELECT {', '.join(cols)} FROM task_instance WHERE dag_id = %s AND run_id = %s"
            " ORDER BY task_id, map_index",
            dag_id,
            run_id,
        )
        return [dict(zip(cols, row, strict=True)) for row in rows]

    def worker_task_ids(self, run_id: str) -> set[str]:
        """Task ids the Celery worker's log says it executed for ``run_id``."""
        return {
            m["task"] for m in _WORKLOAD_LINE.finditer(self.log_text("celery-worker")) if m["run"] == run_id
        }

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(f"{self.pg_dsn}/{self.database}") as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def log_path(self, name: str) -> Path:
        return self.workdir / "logs" / f"{name}.log"

    def log_text(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def diagnostics(self, tail: int = 3000) -> str:
        """The end of every process log, for an assertion message."""
        return "\n".join(f"--- {name} ---\n{self.log_text(name)[-tail:]}" for name in self._log_names())

    # ---- internals ---------------------------------------------------------------------------------
    def _log_names(self) -> list[str]:
        return sorted(p.stem for p in (self.workdir / "logs").glob("*.log"))

    def _spawn(self, name: str, args: list[str], role: str = "cli") -> None:
        with self.log_path(name).open("ab") as out:
            self._procs[name] = subprocess.Popen(  # noqa: S603 - fixed executable
                [AIRFLOW, *args],
                env=self.env(role),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )

    def _api_ready(self) -> bool:
        import urllib.request

        try:
            url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - local http URL
                return resp.status == 200
        except OSError:
            return False

    def _wait(self, predicate, timeout: float, what: str, interval: float = 1.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = {n: p.returncode for n, p in self._procs.items() if p.poll() is not None}
            if dead:
                raise RuntimeError(f"processes exited while waiting for {what}: {dead}\n{self.diagnostics()}")
            if predicate():
                return
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}\n{self.diagnostics()}")

    def _admin_sql(self, sql: str) -> None:
        admin_sql(self.pg_dsn, sql)

    def _flush_redis(self) -> None:
        import redis

        redis.Redis.from_url(f"{self.redis_url}/{self.redis_db}").flushdb()

    @contextmanager
    def _timed(self, label: str):
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[label] = round(time.monotonic() - t0, 1)


def admin_sql(pg_dsn: str, sql: str) -> None:
    """Run one statement on the server's ``postgres`` database outside a transaction (CREATE/DROP)."""
    import psycopg2

    conn = psycopg2.connect(f"{pg_dsn}/postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


# ---- docker compose "sandbox" profile: the sandbox's JSON line -> a LocalFilesystemBackend file ------
_LOOPBACK = re.compile(r"(?<=[/\"@])(127\.0\.0\.1|localhost|0\.0\.0\.0)(?=[:/\"]|$)")


def sandbox_connections(info: dict, host: str, smtp: str | None = None) -> dict[str, object]:
    """Connections (conn_id -> URI or dict) from the sandbox's info line, its loopback host -> ``host``."""
    conn_env = info.get("airflow_conn_env")
    if not isinstance(conn_env, dict):
        raise ValueError("the sandbox's JSON line has no 'airflow_conn_env' object")
    conns: dict[str, object] = {}
    for name, value in conn_env.items():
        value = _LOOPBACK.sub(host, value)
        parsed = json.loads(value) if value.lstrip().startswith("{") else value
        if isinstance(parsed, dict) and isinstance(parsed.get("extra"), dict):
            parsed["extra_dejson"] = parsed.pop("extra")
        conns[name.removeprefix("AIRFLOW_CONN_").lower()] = parsed
    if smtp:
        smtp_host, _, port = smtp.partition(":")
        conns["smtp_default"] = {
            "conn_type": "smtp",
            "host": smtp_host,
            "port": int(port or 25),
            "extra_dejson": {"disable_ssl": True, "disable_tls": True},
        }
    return conns


def _read_info(path: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines() if path.exists() else []:
            if line.lstrip().startswith("{"):
                return json.loads(line)
        time.sleep(1)
    raise TimeoutError(f"no JSON line in {path} after {timeout}s")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Write the sandbox's Airflow connections to a JSON file.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("sandbox-connections")
    cmd.add_argument("--info", type=Path, required=True, help="file holding the sandbox's JSON line")
    cmd.add_argument("--host", default="sandbox", help="host name the other containers reach it by")
    cmd.add_argument("--smtp", help="host:port of an SMTP sink for smtp_default")
    cmd.add_argument("--out", type=Path, required=True)
    cmd.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    conns = sandbox_connections(_read_info(args.info, args.timeout), args.host, args.smtp)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(conns, indent=2))
    tmp.replace(args.out)
    print(f"wrote {sorted(conns)} to {args.out}")


if __name__ == "__main__":
    main()
