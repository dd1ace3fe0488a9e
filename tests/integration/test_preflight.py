"""closed_loop_preflight: every check passes on the sandbox org; on a deliberately misconfigured org each
misconfiguration fails its own check with its own message (expected values written from the playbook)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
from closed_loop.playbook import load_playbook
from closed_loop.preflight.run import report, run_preflight
from closed_loop.survey_messages import check_messages
from closed_loop.templating import TEMPLATES_DIR, environment
from sandbox.seed import MAIN_TITLE, PULSE_TITLE
from sandbox.testing import REPO, run_sandbox


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    with run_sandbox(tmp_path, seed=7, accounts=12) as sb:
        for name, value in sb.airflow_conn_env().items():
            monkeypatch.setenv(name, value)
        yield sb


def preflight(playbook=None):
    playbook = playbook or load_playbook()
    return run_preflight(ClosedLoopSalesforceHook(), SurveyMonkeyHook(), playbook, check_messages(playbook))


def test_the_sandbox_org_passes_every_check_and_the_console_prints_one_line_each(sandbox):
    results = preflight()
    assert [c.line() for c in results if not c.ok] == []
    pb = load_playbook()
    names = [c.name for c in results]
    # one line per mapped heading, role and message template, at least
    assert names.count("surveymonkey.topic heading") == len(pb.topics.by_heading)
    assert {f"people.role {r}" for r in pb.people.roles} <= set(names)
    assert {"surveymonkey.message invite", "surveymonkey.message reminder"} <= set(names)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    console = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "closed_loop.preflight"], env=env, capture_output=True, text=True, check=False
    )
    # (Airflow's own warnings share stdout: keep the report's lines)
    lines = [
        line for line in console.stdout.splitlines() if line.startswith(("PASS  ", "FAIL  ", "preflight: "))
    ]
    assert console.returncode == 0, console.stdout[-2000:] + console.stderr[-2000:]
    assert len(lines) == len(results) + 1 and all(line.startswith("PASS  ") for line in lines[:-1])
    assert (
        lines[-1]
        == f"preflight: {len(results)} passed, 0 failed - the org and the surveys match the playbook"
    )


def _misconfigure(sandbox, tmp_path, monkeypatch) -> None:
    sandbox.admin(
        "POST",
        "org",
        {
            "describe_overrides": {
                "Case.Survey_Response_Id__c": {"externalId": False, "unique": False},
                "Account.MRR__c": {"drop": True},
                "Account.Go_Live_Date__c": {"type": "string"},
                "Case.Status": {"picklist_remove": ["Still Dissatisfied"]},
                "Case.Origin": {"picklist_remove": ["Post-Implementation Survey"]},
                "Task.Priority": {"picklist_remove": ["Normal"]},
                "Task.Status": {"picklist_remove": ["Completed"]},
            },
            "survey_edits": [
                {"survey_title": MAIN_TITLE, "from": "Not helpful at all", "to": "Not at all helpful"},
                {
                    "survey_title": MAIN_TITLE,
                    "from": "How helpful was the marketing onboarding?",
                    "to": "How helpful was our marketing onboarding?",
                },
                {
                    "survey_title": MAIN_TITLE,
                    "from": "Would you like someone from our team to contact you about your feedback?",
                    "to": "May we contact you?",
                },
                {"survey_title": PULSE_TITLE, "from": PULSE_TITLE, "to": "Pulse (old)"},
            ],
            "sm_scopes": ["surveys_read", "collectors_read", "collectors_write", "responses_read"],
        },
    )
    sf = sandbox.salesforce()
    ms = sf.query("SELECT Id FROM User WHERE Username = 'ms@closedloop.example'")["records"][0]["Id"]
    sf.User.update(ms, {"IsActive": False})
    sandbox.admin("POST", "config", {"sf_daily_limit": 100, "sm_day_limit": 25})
    broken = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, broken)
    reminder = broken / "survey_reminder.html"
    reminder.write_text(reminder.read_text().replace("[FooterLink]", ""))
    monkeypatch.setenv("CLOSED_LOOP_TEMPLATES", str(broken))
    environment.cache_clear()


def test_a_misconfigured_org_fails_check_by_check(sandbox, tmp_path, monkeypatch):
    _misconfigure(sandbox, tmp_path, monkeypatch)
    pb = load_playbook()
    no_digest = pb.model_copy(update={"people": pb.people.model_copy(update={"ops_digest_emails": []})})
    try:
        results = preflight(no_digest)
    finally:
        environment.cache_clear()
    failed = {}
    for check in results:
        if not check.ok:
            assert check.fix, check.line()  # every failure says how to fix it
            failed.setdefault(check.name, []).append(check.detail)
    expected = {
        "salesforce.field Case.Survey_Response_Id__c": "not External ID + Unique",
        "salesforce.field Account.MRR__c": "missing (MRR)",
        "salesforce.field Account.Go_Live_Date__c": "type string, needs date",
        "salesforce.picklist Case.Status": "missing ['Still Dissatisfied']",
        "salesforce.picklist Case.Origin": "missing ['Post-Implementation Survey']",
        "salesforce.picklist Task.Priority": "missing ['Normal']",
        "salesforce.picklist Task.Status": "missing ['Completed']",
        "people.role ms": "ms@closedloop.example: inactive user",
        "people.ops_digest_emails": "empty",
        "surveymonkey.answers negative_answer": "not a choice of any question: ['Not helpful at all']",
        "surveymonkey.answers at_risk": "not a choice of any question: ['Not helpful at all']",
        "surveymonkey.topic heading": "'How helpful was the marketing onboarding?' -> marketing: no such",
        "surveymonkey.topics coverage": "unmapped questions: ['How helpful was our marketing onboarding?', "
        "'May we contact you?']",
        "surveymonkey.trigger follow_up_request": "is not a question of the main survey",
        "surveymonkey.survey recovery_pulse": f"{PULSE_TITLE!r}: not found",
        "surveymonkey.message reminder": "survey_reminder.html: missing [FooterLink]",
        "surveymonkey.scopes": "missing ['responses_read_detail (GET responses/bulk)']",
        "salesforce.budget": "of 100 calls left today",
        "surveymonkey.budget": "of 25 calls left today",
    }
    assert set(failed) == set(expected), report(results)
    for name, text in expected.items():
        assert len(failed[name]) == 1 and text in failed[name][0], (name, failed[name])


@pytest.mark.airflow
def test_the_preflight_dag_passes_on_the_demo_stack(stack_airflow):
    result = stack_airflow.dags_test("closed_loop_preflight", "2026-07-01")
    assert result.ok, result.output[-3000:]
    assert "preflight: " in result.output and " passed, 0 failed" in result.output
