"""Security: no token/password/session id in task output or exception texts, no customer PII in INFO logs,
SOQL escaping of hostile values, customer HTML inert in Tasks and emails, TLS verification never off."""

from __future__ import annotations

import email
import json
import logging
import re
import subprocess
from email import policy
from pathlib import Path

import pytest
from reliability_helpers import (
    CAL,
    PB,
    START,
    SWEEP_DAY,
    World,
    dispatch_run,
    dispatch_setup,
    intake_run,
    intake_setup,
    sweep_run,
)

from closed_loop.hooks.errors import SalesforceApiError, SalesforceSessionExpired, SurveyMonkeyAuthError

REPO = Path(__file__).resolve().parents[2]
SF_PASSWORD = "Sf-connection-password-4f1e9"  # never used by the token flow: must never be shown either


def secrets_of(stack) -> list[str]:
    return [stack.sandbox.sf_access_token, stack.sandbox.sm_access_token, SF_PASSWORD]


def pii_of(w: World) -> list[str]:
    """Contact emails and full names, and the comments respondents wrote, from the sandbox ground truth."""
    contacts = w.admin("GET", "records/Contact")
    out = [c["Email"] for c in contacts if c.get("Email")]
    out += [f"{c['FirstName']} {c['LastName']}" for c in contacts if c.get("FirstName") and c.get("LastName")]
    for r in w.admin("GET", "responses"):
        for page in r.get("pages") or []:
            for q in page.get("questions") or []:
                out += [a["text"] for a in q.get("answers") or [] if len(a.get("text") or "") >= 20]
    return sorted(set(out))


def leaks(text: str, needles: list[str]) -> list[str]:
    return [n for n in needles if n and n in text]


# -- secrets and PII in whole DAG runs -----------------------------------------------------------------


@pytest.mark.airflow
def test_whole_dags_print_no_secret_and_no_pii(stack, airflow_home, record):
    """survey_dispatch -> (respondents answer) -> response_intake -> sla_sweep via `airflow dags test`."""
    from devtools.airflow_cli import AirflowCli

    env = dict(stack.conn_env)
    sf_conn = json.loads(env["AIRFLOW_CONN_SALESFORCE_DEFAULT"]) | {
        "login": "integration",
        "password": SF_PASSWORD,
    }
    env["AIRFLOW_CONN_SALESFORCE_DEFAULT"] = json.dumps(sf_conn)
    cli = AirflowCli(airflow_home.home, env)
    w = World.__new__(World)
    w.stack = stack
    outputs = {}
    w.admin("POST", "clock", {"now": "2026-07-01T14:00:00Z"})
    outputs["survey_dispatch"] = cli.dags_test("survey_dispatch", "2026-07-01T14:00:00+00:00")
    w.admin("POST", "clock", {"now": "2026-07-08T14:00:00Z"})
    outputs["response_intake"] = cli.dags_test("response_intake", "2026-07-08T14:00:00+00:00")
    w.admin("POST", "clock", {"now": "2026-07-21T11:00:00Z"})
    outputs["sla_sweep"] = cli.dags_test("sla_sweep", "2026-07-21T07:00:00+00:00")
    for dag_id, result in outputs.items():
        assert result.ok, (dag_id, result.output[-3000:])
    assert stack.ledger.read_frame("responses").shape[0] > 0 and stack.ledger.sla_events(), "work was done"
    text = "\n".join(r.output for r in outputs.values())
    pii = pii_of(w)
    assert len(pii) > 50
    assert leaks(text, secrets_of(stack)) == []
    assert leaks(text, pii) == []
    record("3 whole DAG runs (dispatch, intake, sweep): task output scanned",
           f"0 of 3 secrets, 0 of {len(pii)} PII strings found in {len(text):,} characters")  # fmt: skip


def test_pipelines_log_no_pii_at_info(world, caplog, record):
    caplog.set_level(logging.DEBUG)  # the pipelines' counts are DEBUG (the task summary logs them once)
    dispatch_setup(world)
    dispatch_run(world)
    intake_setup(world)
    intake_run(world)
    from tests.sweep_cases import open_cases

    open_cases(world.sf, world.ledger, START, n=6)
    world.clock(SWEEP_DAY, hour=11)
    from closed_loop.pipeline import sweep

    sweep.read_back(world.sf, world.ledger, PB, CAL, SWEEP_DAY)
    sweep_run(world)
    text = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records if r.levelno >= logging.INFO
    )
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert "intake:" in everything and "progress_and_escalate" in everything, "the pipelines did log"
    pii = pii_of(world)
    assert leaks(text, pii) == [] and leaks(text, secrets_of(world.stack)) == []
    record("INFO logs of dispatch + intake + sweep in process",
           f"0 of {len(pii)} PII strings, 0 secrets in {len(caplog.records)} records")  # fmt: skip


@pytest.mark.parametrize("fault", ["sm_revoke_token", "sf_expire_session"])
def test_exception_texts_carry_no_token(world, record, fault):
    world.faults(**{fault: True})
    if fault.startswith("sm"):
        with pytest.raises(SurveyMonkeyAuthError) as err:
            world.sm.request("GET", "/users/me")
        ok, message = world.sm.test_connection()
    else:
        with pytest.raises(SalesforceSessionExpired) as err:
            list(world.sf.query("SELECT Id FROM Account LIMIT 1"))
        ok, message = world.sf.test_connection()
    texts = [str(err.value), repr(err.value), message, repr(err.value.__cause__), repr(err.value.__context__)]
    assert not ok and leaks("\n".join(texts), secrets_of(world.stack)) == []
    record(f"{fault}: exception and test_connection texts", f"no token ({type(err.value).__name__})")


# -- SOQL injection ------------------------------------------------------------------------------------


def test_hostile_values_are_escaped_in_soql(world, record):
    from closed_loop.pipeline.salesforce_writes import resolve_user_ids

    hostile = next(a for a in world.admin("GET", "records/Account") if a["Name"].startswith("O'Brien"))
    assert "'" in hostile["Name"] and '"' in hostile["Name"] and "\\" in hostile["Name"]
    found = list(world.sf.query("SELECT Id, Name FROM Account WHERE Name = {name}", name=hostile["Name"]))
    assert [r["Id"] for r in found] == [hostile["Id"]]
    for attack in ("x' OR Name != '", "x\\' OR Name != \\'", "%' OR Name LIKE '%"):
        assert list(world.sf.query("SELECT Id FROM Account WHERE Name = {name}", name=attack)) == []
    users = resolve_user_ids(world.sf, ["doi@closedloop.example", "o'brien\\\" OR Username != '@x.example"])
    assert list(users) == ["doi@closedloop.example"], "the hostile username matched nobody"
    record("SOQL with O'Brien \"Billing\" \\ Co and injection strings",
           "exact match only; injections match nothing (escaped by format_soql)")  # fmt: skip


# -- customer HTML stays inert -------------------------------------------------------------------------


def test_customer_html_renders_inert_in_tasks_and_emails(world, record):
    from closed_loop.pipeline import sweep
    from tests.sweep_cases import open_cases

    evil = "<script>alert('x')</script> <img src=x onerror=alert(1)> \"Evil\" & Co"
    plans = open_cases(world.sf, world.ledger, START, n=6)
    for account_id in {p.account_id for p in plans}:
        world.sf.get_conn().Account.update(account_id, {"Name": evil})
    world.clock(SWEEP_DAY, hour=11)
    sweep.read_back(world.sf, world.ledger, PB, CAL, SWEEP_DAY)
    sweep_run(world)
    html_parts = []
    for path in world.stack.emails():
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        html_parts += [p.get_content() for p in message.walk() if p.get_content_type() == "text/html"]
    with_name = [h for h in html_parts if "Evil" in h]
    assert with_name, "the hostile account name reached the emails"
    for html in with_name:
        assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    tasks = [t for t in world.admin("GET", "records/Task") if (t.get("Closed_Loop_Key__c") or "").startswith(
        "escalation")] or world.admin("GET", "records/Task")  # fmt: skip
    describe = world.stack.sandbox.salesforce().Task.describe()
    kind = next(f["type"] for f in describe["fields"] if f["name"] == "Description")
    assert kind == "textarea" and tasks, "Task Description is plain text: never rendered as HTML"
    record(
        "account name with <script>/<img onerror> in sweep emails and Tasks",
        f"escaped in {len(with_name)} HTML emails (Jinja autoescape); Tasks are plain-text fields",
    )


# -- TLS -----------------------------------------------------------------------------------------------

TLS_OFF = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context")


def test_no_code_disables_tls_verification():
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.py"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    files = [f for f in files if not f.startswith("tests/reliability/")]
    offenders = [f for f in files if TLS_OFF.search((REPO / f).read_text(errors="replace"))]
    assert len(files) > 50 and offenders == []


def test_a_wrong_ca_is_refused_by_both_hooks(world, monkeypatch, tmp_path, record):
    import trustme

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", world.stack.sandbox.ca_file)  # must not rescue a wrong bundle
    for var in ("AIRFLOW_CONN_SALESFORCE_DEFAULT", "AIRFLOW_CONN_SURVEYMONKEY_DEFAULT"):
        conn = json.loads(world.stack.conn_env[var])
        conn["extra"]["ca_bundle"] = str(other)
        monkeypatch.setenv(var, json.dumps(conn))
    world.fresh_hooks()
    import requests

    with pytest.raises(requests.exceptions.SSLError):
        world.sm.request("GET", "/users/me")
    with pytest.raises(SalesforceApiError, match="CONNECTION_ERROR: SSLError"):
        list(world.sf.query("SELECT Id FROM Account LIMIT 1"))
    record(
        "hooks with a CA bundle that did not sign the server certificate",
        "SSLError on both APIs (REQUESTS_CA_BUNDLE cannot override it)",
    )
