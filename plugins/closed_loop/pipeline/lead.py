"""The Lead Person decided once, when the Cases are opened, from Salesforce as it is then.

Accounts are synced once a day, so an upsell, a new or departed TSM, or an MRR typed as text since then
would be missed. ``account_facts`` re-reads the accounts of the batch's new Cases with one SOQL (an IN
list) and keeps the raw MRR and the TSM user's IsActive; ``decide_leads`` routes each Case again with
those facts and the role users' state (an inactive DOI/MS hands their part to the playbook's fallback)
and, when the decision changed, re-plans it. The decision is stored on the ledger Case (lp_role,
lp_username, plan, step owners) before anything is written to Salesforce; the Tasks, drafts,
escalations, notices and the report all read it from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from closed_loop.domain.plan import CasePlan, ContactFacts, plan_case
from closed_loop.domain.routing import AccountFacts, route
from closed_loop.domain.scoring import ResponseScore, Trigger

ROLES_CHECKED = ("doi", "ms", "management")  # role users whose inactivity changes a Case


def account_soql(playbook) -> str:
    f = playbook.salesforce.account
    rel = f.tsm_relationship
    return (
        f"SELECT Id, Name, {f.mrr}, {f.tsm_lookup}, {rel}.Username, {rel}.IsActive, {f.at_risk} "
        "FROM Account WHERE Id IN {values}"
    )


def read_accounts(sf, playbook, account_ids: Iterable[str]) -> dict[str, dict]:
    """``{account id: record}`` as Salesforce has them now: one SOQL per ~550 ids (one per batch)."""
    ids = sorted({a for a in account_ids if a})
    if not ids:
        return {}
    return {rec["Id"]: rec for rec in sf.query_in_chunks(account_soql(playbook), ids)}


def facts_of(rec: Mapping, playbook, active_users: set[str]) -> AccountFacts:
    """Routing facts from a Salesforce Account: the raw MRR (parsed by AccountFacts, never guessed) and
    the TSM, active only when both the relationship and the users' lookup say so."""
    f = playbook.salesforce.account
    tsm = (rec.get(f.tsm_relationship) or {}) if rec.get(f.tsm_lookup) else {}
    username = tsm.get("Username")
    return AccountFacts(
        account_id=rec["Id"],
        name=rec.get("Name") or rec["Id"],
        mrr=rec.get(f.mrr),
        tsm_username=username,
        tsm_active=bool(tsm.get("IsActive")) and bool(username) and username.casefold() in active_users,
        at_risk=bool(rec.get(f.at_risk)),
    )


def _score_of(ctx: Mapping) -> ResponseScore:
    return ResponseScore(
        response_id=ctx["response_id"],
        negative=True,
        severity=ctx["severity"],
        topics=tuple(ctx.get("topics") or ()),
        triggers=tuple(Trigger(**t) for t in ctx.get("triggers") or ()),
        problems=tuple(ctx.get("problems") or ()),
        comments=tuple(tuple(c) for c in ctx.get("comments") or ()),
    )


def _stored(ctx: Mapping) -> tuple:
    return (ctx["lp_role"], ctx["lp_username"], ctx["tier"], tuple(ctx.get("flags") or ()),
            tuple(ctx.get("audience") or ()), tuple(ctx.get("inactive_roles") or ()))  # fmt: skip


def inactive_roles(playbook, active_users: set[str]) -> tuple[str, ...]:
    return tuple(r for r in ROLES_CHECKED if playbook.username(r).casefold() not in active_users)


def decide_leads(
    cases: list[dict], records: Mapping[str, Mapping], active_users: set[str], playbook, calendar
) -> list[tuple[dict, CasePlan]]:
    """Re-route each new Case (ledger rows with ``plan``) on its account ``records`` and the active
    users (casefolded usernames). Returns ``[(case, new CasePlan)]`` for the Cases whose decision
    changed; pure, the caller stores them."""
    gone = inactive_roles(playbook, active_users)
    changed = []
    for case in cases:
        rec = records.get(case["account_id"])
        if rec is None:  # deleted or unreadable: keep the decision taken at intake
            continue
        ctx = case["plan"]["context"]
        account = facts_of(rec, playbook, active_users)
        score = _score_of(ctx)
        routing = route(account, score.topics, playbook, gone)
        decision = (routing.lp_role, routing.lp_username, routing.tier, routing.flags,
                    routing.internal_call_audience, routing.inactive_roles)  # fmt: skip
        if decision == _stored(ctx):
            continue
        contact = ContactFacts(ctx.get("contact_id"), ctx.get("contact_first_name"))
        received = date.fromisoformat(case["plan"]["received_on"])
        plan = plan_case(score, account, contact, routing, playbook, calendar, received, ctx["response_url"])
        changed.append((case, plan))
    return changed
