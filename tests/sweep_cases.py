"""Test helper: open a few follow-up Cases (+ step Tasks) in the sandbox and the ledger, as intake would.

Independent of the intake pipeline: plans with ``domain.plan.plan_case`` for synthetic negative responses
of seeded accounts/contacts, upserts through ClosedLoopSalesforceHook (owners resolved via SOQL on User)
and records everything in the ledger.
"""

from __future__ import annotations

import datetime as dt

from closed_loop.domain.calendar import BusinessCalendar
from closed_loop.domain.plan import ContactFacts, plan_case
from closed_loop.domain.routing import AccountFacts, route
from closed_loop.domain.scoring import ResponseScore
from closed_loop.pipeline.intake import plan_to_json
from closed_loop.pipeline.salesforce_writes import resolve_user_ids, upsert_cases, upsert_tasks
from closed_loop.playbook import load_playbook

ACCOUNTS = (
    "SELECT Id, Name, MRR__c, Transition_Success_Manager__r.Username, Transition_Success_Manager__r.IsActive "
    "FROM Account ORDER BY Name"
)
CONTACTS = "SELECT Id, AccountId, FirstName, LastName, Email FROM Contact WHERE AccountId IN {values}"


def open_cases(
    sf, ledger, received_on: dt.date, n: int = 8, playbook=None, offset: int = 0, triggers=(), comments=()
) -> list:
    """Open ``n`` cases for the first accounts (by name, from ``offset``) that have a contact with an
    email, each with ``triggers`` and ``comments`` as their score's. Returns the CasePlans."""
    playbook = playbook or load_playbook()
    calendar = BusinessCalendar.from_playbook(playbook)
    accounts = list(sf.query(ACCOUNTS))
    contacts = {}
    for c in sf.query_in_chunks(CONTACTS, [a["Id"] for a in accounts]):
        if c.get("Email") and "@" in c["Email"]:
            contacts.setdefault(c["AccountId"], c)
    chosen = [a for a in accounts if a["Id"] in contacts][offset : offset + n]
    plans = []
    for i, acc in enumerate(chosen):
        tsm = acc.get("Transition_Success_Manager__r") or {}
        facts = AccountFacts(
            acc["Id"], acc["Name"], acc.get("MRR__c"), tsm.get("Username"), bool(tsm.get("IsActive", True))
        )
        score = ResponseScore(
            f"sweep-test-{offset + i:03d}",
            True,
            ("high", "medium", "low")[i % 3],
            ("implementation",),
            tuple(triggers),
            comments=tuple(comments),
        )
        contact = contacts[acc["Id"]]
        routing = route(facts, score.topics, playbook)
        plans.append(
            plan_case(
                score,
                facts,
                ContactFacts(contact["Id"], contact["FirstName"], contact["LastName"]),
                routing,
                playbook,
                calendar,
                received_on,
                f"https://example.test/r/{i}",
            )
        )
    users = resolve_user_ids(
        sf, {p.owner_username for p in plans} | {s.owner_username for p in plans for s in p.steps}
    )
    case_results = upsert_cases(
        sf,
        [p.case_fields(playbook) | {"OwnerId": users[p.owner_username]} for p in plans],
        playbook.salesforce.case.external_id,
    )
    tasks = []
    for plan, res in zip(plans, case_results, strict=True):
        assert res.ok, res.error
        ledger.upsert_case(
            {
                "case_key": plan.response_id,
                "account_id": plan.account_id,
                "contact_id": plan.contact_id,
                "lp_role": plan.routing.lp_role,
                "lp_username": plan.routing.lp_username,
                "tier": plan.routing.tier,
                "channel": plan.routing.channel,
                "severity": plan.severity,
                "priority": plan.priority,
                "topics": list(plan.context.topics),
                "account_name": plan.context.account_name,
                "plan": plan_to_json(plan, playbook),
            }
        )
        ledger.upsert_case_steps(
            {
                "step_key": s.key,
                "case_key": plan.response_id,
                "step": s.step,
                "owner_username": s.owner_username,
                "owner_role": s.owner_role,
                "due_date": s.due_date,
            }
            for s in plan.steps
        )
        ledger.mark_case_created(plan.response_id, res.id)
        for s in plan.steps:
            tasks.append(
                s.task_fields(playbook)
                | {"OwnerId": users[s.owner_username], "WhatId": res.id, "WhoId": plan.contact_id}
            )
    task_results = upsert_tasks(sf, tasks, playbook.salesforce.task.external_id)
    assert all(r.ok for r in task_results), [r.error for r in task_results if not r.ok]
    ledger.mark_steps_created({r.key: r.id for r in task_results})
    return plans
