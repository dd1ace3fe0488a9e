"""An org with its own field names: every Salesforce field the playbook maps is renamed, in a playbook copy
and in the sandbox org (``--field-names``), and dispatch, intake and the SLA sweep run end to end on it.

Expected values come from the sandbox's ground truth under the renamed names; the documented names do not
exist in that org, so any hard-coded field name in the code fails the run.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.playbook import default_path, load_playbook

START = dt.date(2026, 7, 1)  # the sandbox's start clock
# playbook section, key -> (sObject, the documented name, this org's name)
RENAMED = {
    ("account", "go_live_date"): ("Account", "Go_Live_Date__c", "Live_On__c"),
    ("account", "mrr"): ("Account", "MRR__c", "Monthly_Revenue__c"),
    ("account", "tsm_lookup"): ("Account", "Transition_Success_Manager__c", "Success_Lead__c"),
    ("account", "at_risk"): ("Account", "At_Risk__c", "Watch_List__c"),
    ("contact", "ipm_checkbox"): ("Contact", "Implementations_Project_Manager__c", "Survey_Me__c"),
    ("contact", "opted_out"): ("Contact", "HasOptedOutOfEmail", "No_Survey_Email__c"),
    ("case", "external_id"): ("Case", "Survey_Response_Id__c", "Feedback_Ref__c"),
    ("case", "root_cause"): ("Case", "Root_Cause__c", "Why__c"),
    ("case", "actions_taken"): ("Case", "Actions_Taken__c", "What_We_Did__c"),
    ("case", "outcome"): ("Case", "Outcome__c", "Result__c"),
    ("task", "external_id"): ("Task", "Closed_Loop_Key__c", "Loop_Ref__c"),
}
NEW = {old: new for _, old, new in RENAMED.values()}


def renamed_playbook(tmp_path: Path):
    """A copy of the playbook mapping this org's names (every field-name value replaced)."""
    data = yaml.safe_load(default_path().read_text(encoding="utf-8"))
    for (section, key), (_, old, new) in RENAMED.items():
        assert data["salesforce"][section][key] == old, (section, key)
        data["salesforce"][section][key] = new
    data["salesforce"]["account"]["tsm_relationship"] = "Success_Lead__r"
    data["sla"]["documentation_fields"] = [NEW[f] for f in data["sla"]["documentation_fields"]]
    for step in data["steps"]:
        step["checks_fields"] = [NEW[f] for f in step.get("checks_fields") or []]
    path = tmp_path / "playbook.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_playbook(path)


@pytest.fixture
def org(tmp_path):
    from devtools.stack import LocalStack

    names = {f"{sobject}.{old}": new for sobject, old, new in RENAMED.values()}
    with LocalStack(tmp_path / "stack", seed=7, field_names=names) as local:
        yield local


def test_the_org_uses_only_its_own_names(org):
    described = org.sandbox.salesforce().Case.describe()
    names = {f["name"] for f in described["fields"]}
    assert {"Feedback_Ref__c", "Why__c"} <= names
    assert not names & {"Survey_Response_Id__c", "Root_Cause__c"}
    account = org.sandbox.admin("GET", "records/Account")[0]
    assert "Monthly_Revenue__c" in account and "MRR__c" not in account


def test_dispatch_intake_and_sweep_run_on_renamed_fields(org, tmp_path):
    from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
    from closed_loop.hooks.mail import ClosedLoopSmtpHook
    from closed_loop.pipeline import dispatch, intake, sweep

    pb = renamed_playbook(tmp_path)
    cal = BusinessCalendar.from_playbook(pb)
    led, admin = org.ledger, org.sandbox.admin

    def move_clock(day: dt.date) -> None:
        admin("POST", "clock", {"now": f"{day.isoformat()}T14:00:00Z"})

    with org.connections():
        sf, sm, mail = ClosedLoopSalesforceHook(), SurveyMonkeyHook(), ClosedLoopSmtpHook()
        dispatch.sync_go_lives(sf, led, pb, START)
        dispatch.send_invites(sm, led, pb, START, run_id="invites")
        opened_on = START + dt.timedelta(days=7)
        move_clock(opened_on)
        ingest = intake.ingest_responses(sm, led, pb, cal, opened_on)
        opened = intake.open_cases(sf, led, pb, cal, opened_on)
        day, sweeps = opened_on, []
        while day < START + dt.timedelta(days=24):
            day += dt.timedelta(days=3)
            move_clock(day)
            sweeps.append(sweep.read_back(sf, led, pb, cal, day))
            sweeps.append(sweep.progress_and_escalate(sf, mail, led, pb, cal, day, run_id=f"s-{day}"))

    accounts = {a["Id"]: a for a in admin("GET", "records/Account")}
    contacts = {c["Id"]: c for c in admin("GET", "records/Contact")}
    users = {u["Id"]: u for u in admin("GET", "records/User")}

    # dispatch read go-live, MRR, TSM, the IPM flag and the opt-out through the renamed fields
    ledger_accounts = led.read_frame("accounts").set_index("sf_id")
    for sf_id, row in ledger_accounts.iterrows():
        truth = accounts[sf_id]
        assert str(row["go_live_date"])[:10] == truth["Live_On__c"]
        if truth["Monthly_Revenue__c"] is None:
            assert row["mrr"] != row["mrr"]  # NaN
        else:
            assert row["mrr"] == pytest.approx(truth["Monthly_Revenue__c"])
        tsm = truth["Success_Lead__c"]
        assert (row["tsm_username"] if tsm else None) == (users[tsm]["Username"] if tsm else None)
    invited = {r["contact_id"] for _, r in led.read_frame("survey_sends").iterrows() if r["status"] == "sent"}
    assert invited
    assert all(contacts[c]["Survey_Me__c"] and not contacts[c]["No_Survey_Email__c"] for c in invited)

    # intake opened Cases keyed by the renamed external id, with step Tasks keyed by the renamed key
    assert opened.cases_created == ingest.cases_planned > 0
    cases = admin("GET", "records/Case")
    by_ref = {c["Feedback_Ref__c"]: c for c in cases}
    ledger_cases = led.read_frame("cases").set_index("case_key")
    assert set(ledger_cases.index) <= set(by_ref)
    tasks = admin("GET", "records/Task")
    step_tasks = [t for t in tasks if re.fullmatch(r".+:[a-z_]+", t.get("Loop_Ref__c") or "")]
    assert len({t["Loop_Ref__c"] for t in step_tasks}) == len(step_tasks) > 0
    # MRR > 3000 with an active TSM -> the TSM owns the Case (read through the renamed lookup)
    for key, case in ledger_cases.iterrows():
        account = accounts[case["account_id"]]
        tsm = account["Success_Lead__c"]
        if (account["Monthly_Revenue__c"] or 0) > 3000 and tsm and users[tsm]["IsActive"]:
            assert by_ref[key]["OwnerId"] == tsm

    # the sweep read completions and documented closes back through the renamed fields
    completed_in_sf = {t["Loop_Ref__c"] for t in step_tasks if t["IsClosed"]}
    steps = led.read_frame("case_steps")
    done_in_ledger = set(steps[steps["status"] == "completed"]["step_key"])
    assert done_in_ledger and done_in_ledger <= completed_in_sf
    documented = [
        c for c in cases if c["IsClosed"] and c["Why__c"] and c["What_We_Did__c"] and c["Result__c"]
    ]
    assert documented
    ledger_cases = led.read_frame("cases").set_index("case_key")
    for case in documented:
        row = ledger_cases.loc[case["Feedback_Ref__c"]]
        assert (row["root_cause"], row["outcome"]) == (case["Why__c"], case["Result__c"])
    # escalations became Tasks keyed by the renamed field; nothing was quarantined as missing or failed
    escalations = [e for e in led.sla_events() if e["kind"] == "escalation"]
    assert escalations and all(e["sf_task_id"] for e in escalations)
    reasons = set(led.read_frame("quarantine")["reason"]) if len(led.read_frame("quarantine")) else set()
    assert not {r for r in reasons if "missing in Salesforce" in r or "upsert failed" in r}
