"""The fixed Salesforce org schema (see docs/contributing.md): field types, picklists, lookups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Field:
    type: str  # id string textarea email date datetime boolean currency picklist reference autonumber
    length: int = 0
    required: bool = False
    readonly: bool = False
    values: tuple[str, ...] = ()  # restricted picklist values
    refs: tuple[str, ...] = ()  # target sObjects of a lookup
    rel: str = ""  # relationship name of a lookup
    external_id: bool = False
    default: object = None


def _ref(*targets: str, rel: str, readonly: bool = False) -> Field:
    return Field("reference", 18, refs=targets, rel=rel, readonly=readonly)


_AUDIT = {
    "Id": Field("id", 18, readonly=True),
    "IsDeleted": Field("boolean", readonly=True, default=False),
    "CreatedDate": Field("datetime", readonly=True),
    "CreatedById": _ref("User", rel="CreatedBy", readonly=True),
    "LastModifiedDate": Field("datetime", readonly=True),
    "LastModifiedById": _ref("User", rel="LastModifiedBy", readonly=True),
    "SystemModstamp": Field("datetime", readonly=True),
}
_OWNER = {"OwnerId": _ref("User", rel="Owner")}
_LONG = Field("textarea", 32768)

SCHEMA: dict[str, dict[str, Field]] = {
    "User": {
        **_AUDIT,
        "Username": Field("string", 80, required=True),
        "Name": Field("string", 121, readonly=True),
        "FirstName": Field("string", 40),
        "LastName": Field("string", 80, required=True),
        "Email": Field("email", 128, required=True),
        "Title": Field("string", 80),
        "IsActive": Field("boolean", default=True),
    },
    "Account": {
        **_AUDIT,
        **_OWNER,
        "Name": Field("string", 255, required=True),
        "Go_Live_Date__c": Field("date"),
        "MRR__c": Field("currency"),
        "Transition_Success_Manager__c": _ref("User", rel="Transition_Success_Manager__r"),
        "At_Risk__c": Field("boolean", default=False),
    },
    "Contact": {
        **_AUDIT,
        **_OWNER,
        "AccountId": _ref("Account", rel="Account"),
        "Name": Field("string", 121, readonly=True),
        "FirstName": Field("string", 40),
        "LastName": Field("string", 80, required=True),
        "Email": Field("email", 80),
        "Title": Field("string", 128),
        "Implementations_Project_Manager__c": Field("boolean", default=False),
        "HasOptedOutOfEmail": Field("boolean", default=False),
    },
    "Case": {
        **_AUDIT,
        **_OWNER,
        "CaseNumber": Field("autonumber", 30, readonly=True),
        "Subject": Field("string", 255),
        "Description": Field("textarea", 32000),
        "Status": Field(
            "picklist",
            40,
            values=("New", "Working", "Still Dissatisfied", "Escalated", "Closed"),
            default="New",
        ),
        "Priority": Field("picklist", 40, values=("High", "Medium", "Low"), default="Medium"),
        "Origin": Field("picklist", 40, values=("Email", "Phone", "Web", "Post-Implementation Survey")),
        "Reason": Field("string", 255),
        "AccountId": _ref("Account", rel="Account"),
        "ContactId": _ref("Contact", rel="Contact"),
        "IsClosed": Field("boolean", readonly=True, default=False),
        "ClosedDate": Field("datetime", readonly=True),
        "Survey_Response_Id__c": Field("string", 255, external_id=True),
        "Root_Cause__c": _LONG,
        "Actions_Taken__c": _LONG,
        "Outcome__c": _LONG,
    },
    "Task": {
        **_AUDIT,
        **_OWNER,
        "Subject": Field("string", 255),
        "Status": Field(
            "picklist",
            40,
            values=("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"),
            default="Not Started",
        ),
        "Priority": Field("picklist", 40, values=("High", "Normal", "Low"), default="Normal"),
        "ActivityDate": Field("date"),
        "WhatId": _ref("Account", "Case", rel="What"),
        "WhoId": _ref("Contact", rel="Who"),
        "Description": Field("textarea", 32000),
        "IsClosed": Field("boolean", readonly=True, default=False),
        "CompletedDateTime": Field("datetime", readonly=True),
        "Type": Field("string", 40),
        "TaskSubtype": Field("string", 40, default="Task"),
        "Closed_Loop_Key__c": Field("string", 255, external_id=True),
    },
}
CLOSED_TASK_STATUSES = frozenset({"Completed"})
# This org's own names for fields of the fixed schema ((sObject, documented name) -> name in this org).
RENAMED: dict[tuple[str, str], str] = {}


def rename_fields(renames: Mapping[str, str]) -> None:
    """Give this org its own field names, as a customer's org may (``{"Account.MRR__c": "ARR_Month__c"}``).

    A renamed lookup's relationship name follows it (``X__c`` -> ``X__r``). Apply once, before seeding."""
    for dotted, new in renames.items():
        sobject, _, old = dotted.partition(".")
        if sobject not in SCHEMA or old not in SCHEMA[sobject] or new in SCHEMA[sobject]:
            raise ValueError(f"cannot rename {dotted} to {new}")
        spec = SCHEMA[sobject].pop(old)
        if spec.type == "reference" and new.endswith("__c"):
            spec = replace(spec, rel=new[: -len("__c")] + "__r")
        SCHEMA[sobject][new] = spec
        RENAMED[(sobject, old)] = new


def org_name(sobject: str, name: str) -> str:
    """The name this org gives the documented field ``name`` of ``sobject``."""
    return RENAMED.get((sobject, name), name)


def rename_in_records(data: dict) -> None:
    """Move the seeded records' values to this org's field names."""
    for (sobject, old), new in RENAMED.items():
        for record in data.get(sobject, {}).values():
            if old in record:
                record[new] = record.pop(old)


def field_of(sobject: str, name: str) -> tuple[str, Field] | None:
    """Case-insensitive field lookup; returns (canonical name, Field)."""
    fields = SCHEMA[sobject]
    if name in fields:
        return name, fields[name]
    lower = name.lower()
    for key, spec in fields.items():
        if key.lower() == lower:
            return key, spec
    return None


def relationship_of(sobject: str, rel: str) -> tuple[str, Field] | None:
    """Find the lookup field behind a relationship name (Owner -> OwnerId), case-insensitively."""
    for key, spec in SCHEMA[sobject].items():
        if spec.type == "reference" and spec.rel.lower() == rel.lower():
            return key, spec
    return None


def sobject_name(name: str) -> str | None:
    for key in SCHEMA:
        if key.lower() == name.lower():
            return key
    return None
