"""A complete local stack for tests and the demo: sandbox (HTTPS), SMTP sink, ledger, Airflow connections.

with LocalStack(tmp_path, seed=7) as stack:
    stack.conn_env            # AIRFLOW_CONN_* for salesforce_default, surveymonkey_default, smtp_default,
                              # closed_loop_db
    with stack.connections(): # the same, set in os.environ for in-process hooks and operators
        ...
    stack.airflow(home)       # an AirflowCli whose `airflow dags test` runs see this stack
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devtools.airflow_cli import AirflowCli

SENDER = "closed-loop@northwind.example"


class LocalStack:
    def __init__(
        self,
        workdir: Path | str,
        seed: int = 7,
        ledger_url: str | None = None,
        outbox: Path | str | None = None,
        **sandbox_opts: Any,
    ):
        self.workdir = Path(workdir)
        self.seed = seed
        self.ledger_url = ledger_url
        self.sandbox_opts = sandbox_opts
        self._stack = contextlib.ExitStack()
        self.sandbox = None
        self.outbox = Path(outbox) if outbox else self.workdir / "outbox"

    def __enter__(self) -> LocalStack:
        from closed_loop.ledger import Ledger
        from devtools import mail_sink
        from sandbox.testing import run_sandbox

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sandbox = self._stack.enter_context(
            run_sandbox(
                self.workdir, seed=self.seed, state=self.workdir / "sandbox-state.json", **self.sandbox_opts
            )
        )
        self.smtp = mail_sink.start(self.outbox)
        self._stack.callback(self.smtp.stop)
        url = self.ledger_url or f"sqlite:///{self.workdir / 'ledger.db'}"
        self.ledger = Ledger.from_url(url)
        self.ledger.migrate()
        self._stack.callback(self.ledger.dispose)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @property
    def conn_env(self) -> dict[str, str]:
        smtp = {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": self.smtp.port,
            "extra": {"from_email": SENDER, "disable_tls": True, "disable_ssl": True, "timeout": 10},
        }
        ledger = {"conn_type": "generic", "extra": {"sqlalchemy_url": str(self.ledger.engine.url)}}
        return {
            **self.sandbox.airflow_conn_env(),
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(smtp),
            "AIRFLOW_CONN_CLOSED_LOOP_DB": json.dumps(ledger),
        }

    @contextlib.contextmanager
    def connections(self) -> Iterator[LocalStack]:
        """Set the stack's AIRFLOW_CONN_* variables in this process for the duration of the block."""
        saved = {k: os.environ.get(k) for k in self.conn_env}
        os.environ.update(self.conn_env)
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def airflow(self, home: Path | str, **extra_env: str) -> AirflowCli:
        """A migrated Airflow home whose CLI runs see this stack's connections."""
        cli = AirflowCli(Path(home), {**self.conn_env, **extra_env})
        cli.migrate()
        return cli

    def emails(self) -> list[Path]:
        return sorted(self.outbox.glob("*.eml"))


def ledger_rows_from_sandbox(sf_records: dict) -> tuple[list[dict], list[dict]]:
    """Ledger account and contact rows from the sandbox's Salesforce ground truth (``state["sf"]``): what
    survey_dispatch's sync would record, for tests and the benchmark that start from a synced ledger."""
    users = sf_records["User"]
    accounts = [
        {
            "sf_id": a["Id"],
            "name": a["Name"],
            "go_live_date": a["Go_Live_Date__c"],
            "mrr": a["MRR__c"],
            "tsm_user_id": a["Transition_Success_Manager__c"],
            "tsm_username": users[a["Transition_Success_Manager__c"]]["Username"]
            if a["Transition_Success_Manager__c"]
            else None,
            "at_risk": a["At_Risk__c"],
        }
        for a in sf_records["Account"].values()
    ]
    contacts = [
        {
            "sf_id": c["Id"],
            "account_id": c["AccountId"],
            "email": c["Email"],
            "first_name": c["FirstName"],
            "last_name": c["LastName"],
            "is_impl_pm": c["Implementations_Project_Manager__c"],
            "opted_out": c["HasOptedOutOfEmail"],
        }
        for c in sf_records["Contact"].values()
    ]
    return accounts, contacts
