"""Python API for tests and the demo: start the sandbox as a subprocess and talk to it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
SF_VERSION = "61.0"
# A message body SurveyMonkey accepts: every required merge tag, opt-out and privacy links labelled.
VALID_MESSAGE_BODY = (
    '<p><a href="[SurveyLink]">Take the survey</a></p><p><a href="[PrivacyLink]">Privacy</a> | '
    '<a href="[OptOutLink]">Unsubscribe</a></p><p>[FooterLink]</p>'
)


@dataclass
class SandboxInfo:
    sf_instance_url: str
    sm_base_url: str
    ca_file: str
    sf_access_token: str
    sm_access_token: str
    admin_url: str
    pid: int
    state_file: str = ""
    sm_client_id: str = ""  # the SurveyMonkey app's client id (Sm-Apikey) and secret: webhook signing
    sm_client_secret: str = ""
    sf_consumer_key: str = ""  # the connected app for the OAuth flows (POST /services/oauth2/token)
    sf_consumer_secret: str = ""
    sf_jwt_key_file: str = ""  # private key whose certificate the connected app holds (JWT bearer)
    sf_username: str = ""  # the integration user (JWT "sub"; the client-credentials "Run As" user)

    def session(self) -> requests.Session:
        """A requests session that trusts the sandbox CA. trust_env is off because requests lets
        REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override `session.verify`."""
        session = requests.Session()
        session.verify = self.ca_file
        session.trust_env = False
        return session

    def sm_session(self) -> requests.Session:
        session = self.session()
        session.headers["Authorization"] = f"bearer {self.sm_access_token}"
        return session

    def salesforce(self) -> Any:
        """simple_salesforce.Salesforce on a direct session."""
        from simple_salesforce import Salesforce

        return Salesforce(
            session_id=self.sf_access_token,
            instance_url=self.sf_instance_url,
            version=SF_VERSION,
            session=self.session(),
        )

    def admin(self, method: str, path: str, json: Any = None, timeout: float = 60) -> Any:  # noqa: A002
        """Call /_sandbox/<path>; returns the decoded JSON body (raises on HTTP errors). ``timeout`` is a
        hang guard (a clock move runs the simulation: minutes at benchmark volume on a loaded machine)."""
        response = self.session().request(
            method, f"{self.admin_url}/{path.lstrip('/')}", json=json, timeout=timeout
        )
        response.raise_for_status()
        return response.json()

    def salesforce_conn(self, auth: str = "direct") -> dict[str, Any]:
        """The Salesforce connection (Airflow JSON format) for ``auth``: ``direct`` (a non-expiring access
        token), ``jwt_bearer`` or ``client_credentials`` (OAuth 2.0 against the sandbox token endpoint)."""
        base = {"ca_bundle": self.ca_file, "version": SF_VERSION}
        if auth == "direct":
            extra = {"instance_url": self.sf_instance_url, "access_token": self.sf_access_token, **base}
            return {"conn_type": "salesforce", "host": self.sf_instance_url, "password": None, "extra": extra}
        extra = {
            "auth_flow": auth,
            "login_url": self.sf_instance_url,
            "consumer_key": self.sf_consumer_key,
            **base,
        }
        if auth == "jwt_bearer":
            extra["private_key_file_path"] = self.sf_jwt_key_file
            return {"conn_type": "salesforce", "login": self.sf_username, "extra": extra}
        if auth == "client_credentials":
            extra["consumer_secret"] = self.sf_consumer_secret
            return {"conn_type": "salesforce", "extra": extra}
        raise ValueError(f"unknown auth {auth!r}")

    def airflow_conn_env(self, auth: str = "direct") -> dict[str, str]:
        """AIRFLOW_CONN_* variables (Airflow's JSON connection format) pointing at this sandbox."""
        salesforce = self.salesforce_conn(auth)
        surveymonkey = {
            "conn_type": "surveymonkey",
            "host": self.sm_base_url,
            "password": self.sm_access_token,
            "extra": {"ca_bundle": self.ca_file},
        }
        env = {
            "AIRFLOW_CONN_SALESFORCE_DEFAULT": json.dumps(salesforce),
            "AIRFLOW_CONN_SURVEYMONKEY_DEFAULT": json.dumps(surveymonkey),
        }
        if self.sm_client_id:  # the webhook receiver's secret (closed_loop.webhooks.receiver)
            webhook = {"conn_type": "generic", "login": self.sm_client_id, "password": self.sm_client_secret}
            env["AIRFLOW_CONN_SURVEYMONKEY_WEBHOOK"] = json.dumps(webhook)
        return env


def _flags(opts: dict[str, Any]) -> list[str]:
    out = []
    for key, value in opts.items():
        if isinstance(value, bool):  # a switch: --name when True
            out += [f"--{key.replace('_', '-')}"] if value else []
        elif value is not None:
            text = json.dumps(value) if isinstance(value, dict) else str(value)
            out += [f"--{key.replace('_', '-')}", text]
    return out


@contextlib.contextmanager
def run_sandbox(
    tmp_path: Path | str, seed: int = 7, state: Path | str | None = None, timeout: float = 30, **opts: Any
) -> Iterator[SandboxInfo]:
    """Start `python -m sandbox` (options: port, host, accounts, start_clock, sf_daily_limit,
    sm_minute_limit, sm_day_limit, field_names={"Account.MRR__c": ...}), wait for its JSON line, yield
    a SandboxInfo, stop it on exit."""
    state_file = Path(state) if state else Path(tmp_path) / "sandbox-state.json"
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "--seed",
        str(seed),
        "--state",
        str(state_file),
        *_flags({"port": 0, **opts}),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    try:
        if not lines or not lines[0].strip():
            raise RuntimeError(f"sandbox did not start (exit code {proc.poll()})")
        info = json.loads(lines[0])
        info.pop("airflow_conn_env", None)  # derived: SandboxInfo.airflow_conn_env() rebuilds it
        yield SandboxInfo(**info, state_file=str(state_file))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
