"""survey_dispatch step 2: who gets the survey today (pure ``plan_invites``), read from and written to the
ledger (``plan_from_ledger``, ``apply_plan``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from closed_loop.ledger.types import to_date

_SENT_LIKE = {"sent", "bounced", "opted_out"}


@dataclass(frozen=True)
class Decision:
    """What to do today with one (contact, go-live): send, hold (stay planned) or skip (final)."""

    send_key: str
    account_id: str
    contact_id: str
    go_live_date: dt.date | None
    due_date: dt.date | None
    action: str  # send | hold | skip
    reason: str | None = None

    def row(self) -> dict:
        return {
            "send_key": self.send_key,
            "kind": "invite",
            "account_id": self.account_id,
            "contact_id": self.contact_id,
            "go_live_date": self.go_live_date,
            "due_date": self.due_date,
            "status": "skipped" if self.action == "skip" else "planned",
            "reason": self.reason,
        }


def invite_key(contact_id: str, go_live: dt.date) -> str:
    """One invite per contact and go-live date: the natural key that makes it happen once."""
    return f"invite:{contact_id}:{go_live.isoformat()}"


def plan_invites(
    accounts: Iterable[Mapping],
    contacts: Iterable[Mapping],
    history: Iterable[Mapping],
    open_case_accounts: set[str],
    today: dt.date,
    rules,
) -> list[Decision]:
    """Decide today's invites. ``accounts``/``contacts`` are ledger rows, ``history`` every send to those
    contacts, ``rules`` the playbook's dispatch section. Returns a decision for each due (contact, go-live)
    that is not final yet, and a skip for each still-planned invite that no longer matches (go-live moved,
    contact unflagged, catch-up window passed)."""
    accounts = {a["sf_id"]: a for a in accounts}
    by_contact: dict[str, list[Mapping]] = defaultdict(list)
    for send in history:
        by_contact[send["contact_id"]].append(send)
    decisions: dict[str, Decision] = {}
    for contact in contacts:
        account = accounts.get(contact["account_id"])
        go_live = account and account.get("go_live_date")
        if not go_live or not contact.get("is_impl_pm"):
            continue
        due = go_live + dt.timedelta(days=rules.survey_delay_days)
        if not today - dt.timedelta(days=rules.catch_up_window_days) <= due <= today:
            continue
        key = invite_key(contact["sf_id"], go_live)
        sends = by_contact[contact["sf_id"]]
        current = next((s for s in sends if s["send_key"] == key), None)
        if current is not None and current["status"] != "planned":
            continue  # sent, in flight or already decided
        action, reason = _check(contact, account, key, sends, open_case_accounts, today, rules)
        decisions[key] = Decision(key, account["sf_id"], contact["sf_id"], go_live, due, action, reason)
    stale = []
    for sends in by_contact.values():
        for send in sends:
            if send["kind"] == "invite" and send["status"] == "planned" and send["send_key"] not in decisions:
                stale.append(_stale(send, accounts, rules, today))
    return sorted([*decisions.values(), *stale], key=lambda d: d.send_key)


def _check(contact, account, key, sends, open_case_accounts, today, rules) -> tuple[str, str | None]:
    if not contact.get("email"):
        return "skip", "no email address"
    if contact.get("opted_out"):
        return "skip", "opted out of email in Salesforce"
    earlier = [s for s in sends if s["send_key"] != key]
    for status, reason in (
        ("bounced", "an earlier survey bounced"),
        ("opted_out", "opted out in SurveyMonkey"),
    ):
        if any(s["status"] == status for s in earlier):
            return "skip", reason
    if any(s["status"] == "intent" for s in earlier):
        return "hold", "another survey to this contact is in flight"
    quarantine = dt.timedelta(days=rules.resurvey_quarantine_days)
    for s in earlier:
        sent_on = to_date(s.get("sent_at"))
        if s["status"] in _SENT_LIKE and sent_on and today < sent_on + quarantine:
            if s["account_id"] == account["sf_id"] and s["kind"] == "invite":
                return (
                    "skip",
                    f"already surveyed for go-live {s['go_live_date']} (go-live moved after the send)",
                )
            return "hold", f"re-survey quarantine until {sent_on + quarantine}"
    if rules.hold_while_open_case and account["sf_id"] in open_case_accounts:
        return "hold", "open follow-up case on the account"
    return "send", None


def _stale(send: Mapping, accounts: Mapping, rules, today: dt.date) -> Decision:
    account = accounts.get(send["account_id"]) or {}
    go_live = account.get("go_live_date")
    due = to_date(send.get("due_date"))
    if go_live and go_live != to_date(send.get("go_live_date")):
        reason = f"go-live moved to {go_live}"
    elif due and today > due + dt.timedelta(days=rules.catch_up_window_days):
        reason = f"catch-up window passed (was: {send.get('reason') or 'planned'})"
    else:
        reason = "contact no longer flagged for this account"
    return Decision(
        send["send_key"], send["account_id"], send["contact_id"], to_date(send.get("go_live_date")),
        due, "skip", reason,
    )  # fmt: skip


def plan_from_ledger(ledger, playbook, today: dt.date) -> tuple[list[Decision], dict[str, dict]]:
    """Read what planning needs from the ledger; returns the decisions and the contacts they concern."""
    rules = playbook.dispatch
    first = today - dt.timedelta(days=rules.survey_delay_days + rules.catch_up_window_days)
    last = today - dt.timedelta(days=rules.survey_delay_days)
    accounts = ledger.accounts_to_survey(first, last)
    contacts = ledger.contacts_for_accounts([a["sf_id"] for a in accounts])
    open_cases = ledger.accounts_with_open_cases()
    history = ledger.sends_for_contacts([c["sf_id"] for c in contacts])
    planned_contacts = {h["contact_id"] for h in history if h["status"] == "planned"}
    contacts_by_id = {c["sf_id"]: c for c in contacts}
    if planned_contacts - set(contacts_by_id):
        contacts_by_id |= ledger.get_contacts(planned_contacts - set(contacts_by_id))
    decisions = plan_invites(accounts, contacts_by_id.values(), history, open_cases, today, rules)
    return decisions, contacts_by_id


def apply_plan(ledger, decisions: list[Decision]) -> dict:
    """Write the plan: new rows (planned or skipped with reason), final skips, hold reasons."""
    ledger.plan_sends([d.row() for d in decisions])
    skips = [
        {"send_key": d.send_key, "status": "skipped", "reason": d.reason}
        for d in decisions
        if d.action == "skip"
    ]
    ledger.mark_sent(skips)
    ledger.set_planned_reasons({d.send_key: d.reason for d in decisions if d.action in ("hold", "send")})
    return Counter(d.action for d in decisions)
