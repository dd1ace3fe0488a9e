"""No Salesforce field name the playbook maps is written in the code: the playbook is the only place."""

from __future__ import annotations

from pathlib import Path

from closed_loop.playbook import load_playbook

REPO = Path(__file__).resolve().parents[2]
STANDARD = {"Status", "Subject", "Priority", "Email"}  # standard fields every org has under these names


def mapped_field_names() -> set[str]:
    pb = load_playbook()
    sf = pb.salesforce
    names = {v for part in (sf.account, sf.contact, sf.case, sf.task) for v in part.model_dump().values()}
    names |= set(pb.sla.documentation_fields) | {pb.sla.dissatisfied_when.field}
    names |= {f for step in pb.steps for f in step.checks_fields}
    return {n for n in names if n[:1].isupper() and "_" in n or n.startswith("Has")} - STANDARD


def test_the_field_names_are_real_field_names():
    names = mapped_field_names()
    assert {"Closed_Loop_Key__c", "Survey_Response_Id__c", "MRR__c", "HasOptedOutOfEmail"} <= names


def test_no_mapped_field_name_in_the_code():
    names = mapped_field_names()
    files = [*(REPO / "plugins" / "closed_loop").rglob("*.py"), *(REPO / "dags").glob("*.py")]
    found = [
        f"{path.relative_to(REPO)}:{n}: {name}"
        for path in files
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for name in names
        if name in line
    ]
    assert not found, "field names belong in include/playbook.yaml:\n" + "\n".join(found)
