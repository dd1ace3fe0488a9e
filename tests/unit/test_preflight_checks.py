"""Preflight field and survey checks, line by line (no sandbox): the exact PASS/FAIL lines an operator reads,
written out from include/playbook.yaml's mapping and the survey built in survey_builders."""

from __future__ import annotations

import copy

from survey_builders import CONTACT, HELPFUL, MARKETING, RECOMMEND, RESOLVED, survey_details

from closed_loop.domain.survey import parse_survey_details
from closed_loop.playbook import load_playbook
from closed_loop.preflight.checks import check_fields, check_surveys

PB = load_playbook()


def field(name, kind="string", length=0, **flags):
    return {"name": name, "type": kind, "length": length, "createable": True, "updateable": True, **flags}


def ext_id(name):
    return field(name, "string", 255, externalId=True, unique=True)


def org() -> dict[str, dict]:
    """Describes of an org that matches the shipped playbook."""
    standard = [field(n, length=255) for n in ("Subject", "Description")]
    return {
        "Account": {
            "fields": [
                field("Go_Live_Date__c", "date"),
                field("MRR__c", "currency"),
                field(
                    "Transition_Success_Manager__c",
                    "reference",
                    18,
                    referenceTo=["User"],
                    relationshipName="Transition_Success_Manager__r",
                ),
                field("At_Risk__c", "boolean"),
            ]
        },
        "Contact": {
            "fields": [
                field("Implementations_Project_Manager__c", "boolean"),
                field("HasOptedOutOfEmail", "boolean"),
            ]
        },
        "Case": {
            "fields": [
                ext_id("Survey_Response_Id__c"),
                field("Status", "picklist", 40),
                *(field(n, "textarea", 32000) for n in ("Root_Cause__c", "Actions_Taken__c", "Outcome__c")),
                *standard,
                field("Priority", "picklist", 40),
                field("Origin", "picklist", 40),
                *(field(n, "reference", 18) for n in ("AccountId", "ContactId")),
                field("OwnerId", "reference", 18),
            ]
        },
        "Task": {
            "fields": [
                ext_id("Closed_Loop_Key__c"),
                *standard,
                field("Status", "picklist", 40),
                field("Priority", "picklist", 40),
                field("ActivityDate", "date"),
                *(field(n, "reference", 18) for n in ("WhatId", "WhoId")),
                field("OwnerId", "reference", 18),
            ]
        },
    }


def find(describes, sobject, name):
    return next(f for f in describes[sobject]["fields"] if f["name"] == name)


HAPPY_FIELDS = [
    "PASS  salesforce.field Account.Go_Live_Date__c: date",
    "PASS  salesforce.field Account.MRR__c: currency",
    "PASS  salesforce.field Account.Transition_Success_Manager__c: reference(18)",
    "PASS  salesforce.field Account.At_Risk__c: boolean",
    "PASS  salesforce.field Contact.Implementations_Project_Manager__c: boolean",
    "PASS  salesforce.field Contact.HasOptedOutOfEmail: boolean",
    "PASS  salesforce.field Case.Survey_Response_Id__c: string(255), External ID, unique",
    "PASS  salesforce.field Task.Closed_Loop_Key__c: string(255), External ID, unique",
    "PASS  salesforce.field Case.Status: picklist(40)",
    "PASS  salesforce.field Case.Actions_Taken__c: textarea(32000)",
    "PASS  salesforce.field Case.Outcome__c: textarea(32000)",
    "PASS  salesforce.field Case.Root_Cause__c: textarea(32000)",
    "PASS  salesforce.field Case.Subject: string(255)",
    "PASS  salesforce.field Case.Description: string(255)",
    "PASS  salesforce.field Case.Priority: picklist(40)",
    "PASS  salesforce.field Case.Origin: picklist(40)",
    "PASS  salesforce.field Case.AccountId: reference(18)",
    "PASS  salesforce.field Case.ContactId: reference(18)",
    "PASS  salesforce.field Case.OwnerId: reference(18)",
    "PASS  salesforce.field Task.Subject: string(255)",
    "PASS  salesforce.field Task.Description: string(255)",
    "PASS  salesforce.field Task.Status: picklist(40)",
    "PASS  salesforce.field Task.Priority: picklist(40)",
    "PASS  salesforce.field Task.ActivityDate: date",
    "PASS  salesforce.field Task.WhatId: reference(18)",
    "PASS  salesforce.field Task.WhoId: reference(18)",
    "PASS  salesforce.field Task.OwnerId: reference(18)",
]


def lines(checks) -> list[str]:
    return [c.line() for c in checks]


def test_a_matching_org_passes_every_field_check_in_mapping_order():
    assert lines(check_fields(PB, org())) == HAPPY_FIELDS


def test_field_names_match_without_case():
    describes = org()
    find(describes, "Case", "Subject")["name"] = "SUBJECT"
    assert lines(check_fields(PB, describes)) == HAPPY_FIELDS


def test_each_field_problem_has_its_own_line_and_fix():
    describes = org()
    describes["Account"]["fields"] = [f for f in describes["Account"]["fields"] if f["name"] != "MRR__c"]
    find(describes, "Account", "Go_Live_Date__c").update(type="string", length=80)
    find(describes, "Account", "Transition_Success_Manager__c").update(
        referenceTo=["Account"], relationshipName=None
    )
    find(describes, "Case", "Survey_Response_Id__c").update(externalId=False, createable=False)
    find(describes, "Task", "Closed_Loop_Key__c").update(type="double", unique=False)
    find(describes, "Task", "OwnerId")["updateable"] = False
    find(describes, "Case", "Root_Cause__c")["type"] = "picklist"
    del describes["Contact"]
    got = {c.name: c.line() for c in check_fields(PB, describes)}
    expected = {
        "Account.Go_Live_Date__c": "FAIL  salesforce.field Account.Go_Live_Date__c: type string, needs "
        "date -> "
        "fix: fix Account.Go_Live_Date__c (go-live date) or its mapping in playbook.yaml",
        "Account.MRR__c": "FAIL  salesforce.field Account.MRR__c: missing (MRR) -> fix: create "
        "Account.MRR__c or "
        "map another field in playbook.yaml salesforce:",
        "Account.Transition_Success_Manager__c": "FAIL  salesforce.field "
        "Account.Transition_Success_Manager__c: "
        "refers to ['Account'], needs User; relationship name None, the playbook says "
        "'Transition_Success_Manager__r' -> fix: fix Account.Transition_Success_Manager__c (TSM lookup "
        "to User) "
        "or its mapping in playbook.yaml",
        "Contact.Implementations_Project_Manager__c": "FAIL  salesforce.field "
        "Contact.Implementations_Project_Manager__c: missing (Implementations/Project Manager checkbox) "
        "-> fix: "
        "create Contact.Implementations_Project_Manager__c or map another field in playbook.yaml salesforce:",
        "Contact.HasOptedOutOfEmail": "FAIL  salesforce.field Contact.HasOptedOutOfEmail: missing "
        "(email opt-out) "
        "-> fix: create Contact.HasOptedOutOfEmail or map another field in playbook.yaml salesforce:",
        "Case.Survey_Response_Id__c": "FAIL  salesforce.field Case.Survey_Response_Id__c: not External "
        "ID + Unique; "
        "not createable/updateable by the API user -> fix: edit Case.Survey_Response_Id__c: tick "
        "External ID and "
        "Unique (they make every upsert idempotent)",
        "Task.Closed_Loop_Key__c": "FAIL  salesforce.field Task.Closed_Loop_Key__c: type double, needs "
        "string or "
        "textarea; not External ID + Unique -> fix: fix Task.Closed_Loop_Key__c (external id (upsert "
        "key)) or its "
        "mapping in playbook.yaml",
        "Case.Root_Cause__c": "FAIL  salesforce.field Case.Root_Cause__c: type picklist, needs string "
        "or textarea "
        "-> fix: fix Case.Root_Cause__c (documentation field) or its mapping in playbook.yaml",
        "Task.OwnerId": "FAIL  salesforce.field Task.OwnerId: not createable/updateable by the API user "
        "-> fix: fix "
        "Task.OwnerId (written by the pipelines) or its mapping in playbook.yaml",
    }
    assert {
        k.removeprefix("salesforce.field "): v for k, v in got.items() if v.startswith("FAIL")
    } == expected
    assert len(got) == len(HAPPY_FIELDS)


def test_a_tsm_lookup_with_another_relationship_name_and_a_read_only_mapped_field():
    describes = org()
    find(describes, "Account", "Transition_Success_Manager__c")["relationshipName"] = "TSM__r"
    find(describes, "Account", "MRR__c")["createable"] = (
        False  # read only: fine, the pipelines do not write it
    )
    find(describes, "Case", "Origin")["createable"] = False
    failed = [line for line in lines(check_fields(PB, describes)) if line.startswith("FAIL")]
    assert failed == [
        "FAIL  salesforce.field Account.Transition_Success_Manager__c: relationship name 'TSM__r', the "
        "playbook "
        "says 'Transition_Success_Manager__r' -> fix: fix Account.Transition_Success_Manager__c (TSM "
        "lookup to "
        "User) or its mapping in playbook.yaml",
        "FAIL  salesforce.field Case.Origin: not createable/updateable by the API user -> fix: fix "
        "Case.Origin "
        "(written by the pipelines) or its mapping in playbook.yaml",
    ]


# -- the main survey ----------------------------------------------------------------------------------
TOPIC_LINES = [
    "PASS  surveymonkey.topic heading: 'Go-live happened on the agreed timeline.' -> implementation",
    "PASS  surveymonkey.topic heading: 'Have all the issues you raised during implementation been "
    "resolved?' -> "
    "implementation",
    "PASS  surveymonkey.topic heading: 'How helpful was the marketing onboarding?' -> marketing",
    "PASS  surveymonkey.topic heading: 'How helpful was your implementation project manager?' -> "
    "implementation",
    "PASS  surveymonkey.topic heading: 'Marketing launch materials met our expectations.' -> marketing",
    "PASS  surveymonkey.topic heading: 'The implementation team understood our business needs.' -> "
    "implementation",
    "PASS  surveymonkey.topic heading: 'The product works the way we were told it would.' -> product_support",
    "PASS  surveymonkey.topic heading: 'Training prepared our team to use the product.' -> implementation",
]
MAIN_OK = "PASS  surveymonkey.survey main: 'Post-Implementation Feedback' (id 400000001)"
PULSE_MISSING = (
    "FAIL  surveymonkey.survey recovery_pulse: 'Post-Implementation Follow-up Pulse': not found -> fix: "
    "create the "
    "survey titled 'Post-Implementation Follow-up Pulse' or set surveys.recovery_pulse.title/id in "
    "playbook.yaml"
)


def main_lines(details) -> list[str]:
    return lines(check_surveys(PB, parse_survey_details(details), None))


def question(details, heading):
    return next(q for p in details["pages"] for q in p["questions"] if q["headings"][0]["heading"] == heading)


def test_the_conventions_survey_passes_every_main_survey_check():
    assert main_lines(survey_details()) == [
        MAIN_OK,
        PULSE_MISSING,
        *TOPIC_LINES,
        "PASS  surveymonkey.trigger low_score: 'How likely are you to recommend us to a colleague?'",
        "PASS  surveymonkey.trigger low_score scale: 11 choices for the 0..10 scale",
        "PASS  surveymonkey.trigger unresolved_issue: 'Have all the issues you raised during "
        "implementation been "
        "resolved?'",
        "PASS  surveymonkey.answers unresolved_issue: every answer is a choice",
        "PASS  surveymonkey.trigger follow_up_request: 'Would you like someone from our team to contact "
        "you about "
        "your feedback?'",
        "PASS  surveymonkey.answers follow_up_request: every answer is a choice",
        "PASS  surveymonkey.answers negative_answer: 4 answers found",
        "PASS  surveymonkey.answers at_risk: 6 answers found",
        "PASS  surveymonkey.topics coverage: all 7 questions mapped",
    ]


def test_a_survey_that_drifted_from_the_playbook_fails_check_by_check():
    details = survey_details()
    for heading in (MARKETING, "How helpful was your implementation project manager?"):
        for choice in question(details, heading)["answers"]["choices"]:
            if choice["text"] == HELPFUL[-1]:
                choice["text"] = "Not at all helpful"
    resolved = question(details, RESOLVED)["answers"]
    resolved["choices"] = [c for c in resolved["choices"] if c["text"] != "Partially"]
    question(details, RECOMMEND)["answers"]["choices"].pop()  # 0..9: ten choices
    question(details, CONTACT)["headings"][0]["heading"] = "May we contact you?"
    extra = copy.deepcopy(question(details, RESOLVED))
    extra.update(id="600000099", position=99, headings=[{"heading": "Anything new?"}])
    details["pages"][1]["questions"].append(extra)
    assert main_lines(details) == [
        MAIN_OK,
        PULSE_MISSING,
        *TOPIC_LINES,
        "PASS  surveymonkey.trigger low_score: 'How likely are you to recommend us to a colleague?'",
        "FAIL  surveymonkey.trigger low_score scale: 10 choices for the 0..10 scale -> fix: the score "
        "question needs "
        "exactly 11 choices (scores come from their position)",
        "PASS  surveymonkey.trigger unresolved_issue: 'Have all the issues you raised during "
        "implementation been "
        "resolved?'",
        "FAIL  surveymonkey.answers unresolved_issue: missing among the choices of 'Have all the issues "
        "you raised "
        "during implementation been resolved?': ['Partially'] -> fix: correct the answer text(s) "
        "['Partially'] in "
        "playbook.yaml to the survey's exact choice text",
        "FAIL  surveymonkey.trigger follow_up_request: 'Would you like someone from our team to contact "
        "you about "
        "your feedback?' is not a question of the main survey -> fix: fix the heading in playbook.yaml or in "
        "SurveyMonkey (main survey)",
        "FAIL  surveymonkey.answers negative_answer: not a choice of any question: ['Not helpful at "
        "all'] -> fix: "
        "correct triggers.negative_answer in playbook.yaml to the survey's exact choice texts (a typo "
        "silently "
        "disables the trigger)",
        "FAIL  surveymonkey.answers at_risk: not a choice of any question: ['Not helpful at all'] -> "
        "fix: correct "
        "triggers.at_risk in playbook.yaml to the survey's exact choice texts (a typo silently disables the "
        "trigger)",
        "FAIL  surveymonkey.topics coverage: unmapped questions: ['May we contact you?', 'Anything "
        "new?'] -> fix: "
        "map each question under topics.by_heading or list it under topics.left_to_default",
    ]


def test_missing_questions_and_rows_and_the_alarming_comment_questions():
    details = survey_details()
    page = details["pages"][1]
    page["questions"] = [q for q in page["questions"] if q["headings"][0]["heading"] != RECOMMEND]
    matrix = details["pages"][0]["questions"][0]["answers"]
    matrix["rows"] = matrix["rows"][:-1]  # "The product works the way we were told it would." is gone
    t = PB.triggers
    alarming = t.alarming_comment.model_copy(
        update={"questions": ["Is there anything else you would like to share with us?", "Gone?"]}
    )
    pb = PB.model_copy(update={"triggers": t.model_copy(update={"alarming_comment": alarming})})
    got = lines(check_surveys(pb, parse_survey_details(details), None))
    failed = [line for line in got if line.startswith("FAIL") and line != PULSE_MISSING]
    assert failed == [
        "FAIL  surveymonkey.topic heading: 'The product works the way we were told it would.' -> "
        "product_support: "
        "no such question or matrix row -> fix: fix topics.by_heading in playbook.yaml to the survey's exact "
        "heading/row text",
        "FAIL  surveymonkey.trigger low_score: 'How likely are you to recommend us to a colleague?' is not a "
        "question of the main survey -> fix: fix the heading in playbook.yaml or in SurveyMonkey (main "
        "survey)",
        "FAIL  surveymonkey.trigger alarming_comment: 'Gone?' is not a question of the main survey -> "
        "fix: fix the "
        "heading in playbook.yaml or in SurveyMonkey (main survey)",
    ]
    assert (
        "PASS  surveymonkey.trigger alarming_comment: 'Is there anything else you would like to share "
        "with us?'" in got
    )
    assert not any("low_score scale" in line for line in got)  # no question, no scale to check
    assert got[-1] == "PASS  surveymonkey.topics coverage: all 6 questions mapped"


def test_a_missing_survey_skips_its_question_checks():
    got = lines(check_surveys(PB, None, None))
    assert got == [
        "FAIL  surveymonkey.survey main: 'Post-Implementation Feedback': not found -> fix: create the survey "
        "titled 'Post-Implementation Feedback' or set surveys.main.title/id in playbook.yaml",
        PULSE_MISSING,
    ]


def test_every_priority_the_sweep_and_recovery_write_must_be_in_the_org_picklists():
    """The escalation, undocumented-close and keep-informed Tasks and the Case fallback write priorities
    from the playbook's sla/recovery sections: an org whose picklists lack them fails preflight."""
    from closed_loop.preflight.checks import check_picklists

    tuned = PB.model_copy(
        update={"sla": PB.sla.model_copy(update={"escalation_priority": "Urgent"})}, deep=True
    )
    standard_task = ["High", "Normal", "Low"]
    standard_case = ["High", "Medium", "Low"]
    describes = org()

    def picklist(sobject, name, values):
        find(describes, sobject, name)["picklistValues"] = [{"value": v, "active": True} for v in values]

    picklist("Task", "Priority", standard_task)
    picklist("Case", "Priority", standard_case)
    lines = {c.name: c for c in check_picklists(tuned, describes)}
    task = lines["salesforce.picklist Task.Priority"]
    assert not task.ok and task.detail == "missing ['Urgent']"
    assert lines["salesforce.picklist Case.Priority"].ok
    picklist("Task", "Priority", [*standard_task, "Urgent"])
    assert {c.name: c for c in check_picklists(tuned, describes)}["salesforce.picklist Task.Priority"].ok
