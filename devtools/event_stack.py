"""Event-driven intake end to end on this machine: sandbox, webhook receiver, Redis, and a distributed
Airflow (api-server, scheduler, dag-processor, triggerer, Celery worker) with
``CLOSED_LOOP_INTAKE_TRIGGER=events``. Used by the distributed test and the benchmark.

    with EventDrivenStack(tmp_path) as ev:
        ev.subscribe()                      # runs the surveymonkey_webhooks DAG on the cluster
        ev.start_intake()                   # unpause response_intake, wait for the triggerer to listen
        ev.stack.sandbox.admin("POST", "clock", {"advance_days": 2})   # respondents answer
        ev.wait_for_cases(expected_ids)     # {response_id: seconds from webhook to Case}

Everything gets unique names (Redis channel, PostgreSQL databases) and is removed on exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from devtools.airflow_cli import REPO
from devtools.distributed import DistributedAirflow, admin_sql

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = {"conn_type": "redis", "host": "127.0.0.1", "port": 6379, "extra": {"db": 0}}
DAG_FILES = ("response_intake.py", "surveymonkey_webhooks.py")


class EventDrivenStack:
    def __init__(self, workdir: Path | str, seed: int = 7, **sandbox_opts) -> None:
        self.workdir = Path(workdir)
        self.seed, self.sandbox_opts = seed, sandbox_opts
        self.channel = f"closed_loop.events.{secrets.token_hex(6)}"
        self.ledger_db = f"closed_loop_events_{secrets.token_hex(4)}"
        self.dags = self.workdir / "dags"
        self.case_seen: dict[str, float] = {}  # response id -> wall time the Case was first seen
        self._exit = contextlib.ExitStack()
        self._stop_watch = threading.Event()

    # ---- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> EventDrivenStack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._exit.close()

    def _start(self) -> None:
        from devtools.stack import LocalStack

        self.workdir.mkdir(parents=True, exist_ok=True)
        _admin_sql(f'CREATE DATABASE "{self.ledger_db}"')
        self._exit.callback(_admin_sql, f'DROP DATABASE IF EXISTS "{self.ledger_db}" WITH (FORCE)')
        self._exit.callback(self._clean_redis)
        ledger_url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{self.ledger_db}"
        self.stack = self._exit.enter_context(
            LocalStack(self.workdir / "stack", seed=self.seed, ledger_url=ledger_url, **self.sandbox_opts)
        )
        self.dags.mkdir(exist_ok=True)
        for name in DAG_FILES:
            shutil.copy(REPO / "dags" / name, self.dags / name)
        self.receiver_url = self._start_receiver()
        env = {
            **self.stack.conn_env,
            "AIRFLOW_CONN_REDIS_DEFAULT": json.dumps(REDIS),
            "CLOSED_LOOP_INTAKE_TRIGGER": "events",
            "CLOSED_LOOP_WEBHOOK_CHANNEL": self.channel,
        }
        self.cluster = DistributedAirflow(
            self.workdir / "cluster", dag_id="response_intake", dags_folder=self.dags, extra_env=env,
            triggerer=True,
        )  # fmt: skip
        self._exit.callback(self.cluster.stop)
        self.cluster.start()
        watcher = threading.Thread(target=self._watch_cases, daemon=True)
        watcher.start()
        self._exit.callback(self._stop_watch.set)

    def _start_receiver(self) -> str:
        """The receiver as its own process: only the webhook secret and Redis, no API credentials."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW__"))}
        env.update(
            AIRFLOW_HOME=str(self.workdir / "receiver-home"),
            AIRFLOW_CONN_SURVEYMONKEY_WEBHOOK=self.stack.sandbox.airflow_conn_env()[
                "AIRFLOW_CONN_SURVEYMONKEY_WEBHOOK"
            ],
            AIRFLOW_CONN_REDIS_DEFAULT=json.dumps(REDIS),
            PYTHONPATH=os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
        )
        self.receiver_log = self.workdir / "receiver.log"
        log = self.receiver_log.open("ab")
        self._exit.callback(log.close)
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, fixed module
            [sys.executable, "-m", "closed_loop.webhooks.receiver", "--port", "0", "--channel", self.channel],
            env=env, stdout=subprocess.PIPE, stderr=log, cwd=self.workdir, text=True,
        )  # fmt: skip
        self.receiver = proc
        self._exit.callback(_terminate, proc)
        for line in proc.stdout:  # Airflow's own warnings may come first
            if line.startswith('{"url"'):
                threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining
                return json.loads(line)["url"]
        raise RuntimeError(f"receiver did not start: {self.receiver_log.read_text()[-2000:]}")

    # ---- operations --------------------------------------------------------------------------------
    def subscribe(self, timeout: float = 120) -> dict:
        """Run surveymonkey_webhooks on the cluster with the receiver's URL; returns the sandbox hook."""
        self.cluster.wait_for_dag("surveymonkey_webhooks", timeout)
        run = self.cluster.trigger("surveymonkey_webhooks", conf={"subscription_url": self.receiver_url})
        state = self.cluster.wait_for_run("surveymonkey_webhooks", run, timeout)
        if state != "success":
            raise RuntimeError(f"surveymonkey_webhooks {state}\n{self.cluster.diagnostics()}")
        (hook,) = self.stack.sandbox.admin("GET", "state")["sm"]["webhooks"].values()
        return hook

    def start_intake(self, timeout: float = 120) -> None:
        """Unpause response_intake, wait until the triggerer listens on the channel and the catch-up
        reconciliation run of the latest past tick (``catchup=False``) has finished."""
        self.cluster.cli("dags", "unpause", "response_intake")
        self.cluster._wait(lambda: self.listeners() > 0, timeout, "the triggerer to subscribe")
        self.cluster._wait(self.idle, timeout, "the catch-up reconciliation run")

    def idle(self) -> bool:
        return bool(self.runs()) and all(r["state"] in ("success", "failed") for r in self.runs())

    def listeners(self) -> int:
        import redis

        client = redis.Redis(host=REDIS["host"], port=REDIS["port"])
        return dict(client.pubsub_numsub(self.channel)).get(self.channel.encode(), 0)

    def set_reconcile_schedule(self, cron: str, timeout: float = 120) -> None:
        """Change the cluster's copy of response_intake's RECONCILE_SCHEDULE and wait for the re-parse."""
        path = self.dags / "response_intake.py"
        text = path.read_text()
        start = text.index('RECONCILE_SCHEDULE = "') + len('RECONCILE_SCHEDULE = "')
        path.write_text(text[:start] + cron + text[text.index('"', start) :])

        def reparsed() -> bool:
            rows = self.cluster.query("SELECT timetable_summary FROM dag WHERE dag_id = 'response_intake'")
            return bool(rows) and cron in (rows[0][0] or "")

        self.cluster._wait(reparsed, timeout, "response_intake re-parsed with the new reconciliation")

    def runs(self) -> list[dict]:
        rows = self.cluster.query(
            "SELECT run_id, run_type, state, start_date, end_date FROM dag_run"
            " WHERE dag_id = 'response_intake' ORDER BY id"
        )
        return [dict(zip(("run_id", "run_type", "state", "start", "end"), r, strict=True)) for r in rows]

    def deliveries(self) -> list[dict]:
        return self.stack.sandbox.admin("GET", "webhooks/deliveries")

    def wait_for_cases(self, response_ids: set[str], timeout: float) -> dict[str, float]:
        """Wait until every response in ``response_ids`` has a Case; seconds from its first webhook
        delivery (or, without one, from ``time`` of the call) to the Case."""
        started = time.time()
        self.cluster._wait(lambda: response_ids <= set(self.case_seen), timeout, "the Cases", interval=0.5)
        sent: dict[str, float] = {}
        for d in self.deliveries():
            if d.get("response_id") in response_ids and "queued_at" in d:
                sent.setdefault(d["response_id"], d["queued_at"])
        return {rid: self.case_seen[rid] - sent.get(rid, started) for rid in response_ids}

    def _watch_cases(self) -> None:
        while not self._stop_watch.is_set():
            with contextlib.suppress(Exception):
                for case in self.stack.sandbox.admin("GET", "records/Case"):
                    rid = case.get("Survey_Response_Id__c")
                    if rid and rid not in self.case_seen:
                        self.case_seen[rid] = time.time()
            self._stop_watch.wait(0.25)

    def _clean_redis(self) -> None:
        import redis

        client = redis.Redis(host=REDIS["host"], port=REDIS["port"], db=0)
        for key in client.scan_iter(f"{self.channel}:*"):
            client.delete(key)


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _admin_sql(sql: str) -> None:
    admin_sql(PG, sql)
