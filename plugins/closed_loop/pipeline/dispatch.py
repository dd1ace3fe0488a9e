"""survey_dispatch: sync go-lives from Salesforce, send the post-implementation survey once, remind once.

Three steps, each a plain function on already-built hooks, the Ledger, the Playbook and ``today`` (the run's
logical date; never the wall clock):

- ``sync_go_lives``: one incremental paged SOQL per object (Account, flagged Contact), upserted with its
  watermark in the same transaction.
- ``send_invites``: plan (``plan_invites``, pure), then one SurveyMonkey email collector per batch (logical
  date) and one invite message: claim intents (send_key -> message id) before adding recipients, add them in
  bulk, send, record. A rerun or retry reconciles intents against the message before doing anything else.
- ``send_reminders``: once per batch collector, to its non-responders, claimed before the message is made;
  optionally a Salesforce Task asking the account's Lead Person to remind the biller.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from closed_loop.ledger.types import to_date, to_utc
from closed_loop.pipeline.surveys import carry_over_when_budget_exhausted, require_survey_id
from closed_loop.survey_messages import render_message

log = logging.getLogger(__name__)

UTC = dt.UTC
ACCOUNT_WATERMARK = "survey_dispatch.accounts.system_modstamp"
CONTACT_WATERMARK = "survey_dispatch.contacts.system_modstamp"
BULK_CHUNK = 500  # contacts per recipients/bulk call
SF_PAGE = 2000  # records per SOQL page
NOT_RESPONDED = "not_responded"
_NO_REMINDER = "survey_dispatch.no_reminder_needed."
_SENT_LIKE = {"sent", "bounced", "opted_out"}
_REJECTS = {"invalids": "invalid", "bounced": "bounced", "opted_out": "opted_out", "existing": "existing"}


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), UTC)


# -- 1. sync -------------------------------------------------------------------------------------------


def account_soql(playbook, incremental: bool) -> str:
    """The Account query template: changed since the watermark, or go-live inside the horizon."""
    f = playbook.salesforce.account
    rel = f.tsm_relationship
    fields = (
        f"Id, Name, {f.go_live_date}, {f.mrr}, {f.tsm_lookup}, {rel}.Username, {rel}.IsActive, "
        f"{f.at_risk}, SystemModstamp"
    )
    horizon = f"({f.go_live_date} >= {{first}} AND {f.go_live_date} <= {{last}})"
    where = f"SystemModstamp > {{since}} OR {horizon}" if incremental else horizon
    return f"SELECT {fields} FROM Account WHERE {where} ORDER BY SystemModstamp"


def contact_soql(playbook, incremental: bool) -> str:
    """Flagged contacts of accounts inside the horizon, plus every contact changed since the watermark
    (so one unflagged or opted out since is updated too and stops receiving)."""
    c, a = playbook.salesforce.contact, playbook.salesforce.account
    fields = f"Id, AccountId, FirstName, LastName, Email, {c.ipm_checkbox}, {c.opted_out}, SystemModstamp"
    horizon = (
        f"({c.ipm_checkbox} = true AND Account.{a.go_live_date} >= {{first}} "
        f"AND Account.{a.go_live_date} <= {{last}})"
    )
    where = f"SystemModstamp > {{since}} OR {horizon}" if incremental else horizon
    return f"SELECT {fields} FROM Contact WHERE {where} ORDER BY SystemModstamp"


def sync_horizon(playbook, today: dt.date) -> tuple[dt.date, dt.date]:
    """Go-live dates whose survey is due today or still inside the catch-up window."""
    rules = playbook.dispatch
    return today - dt.timedelta(days=rules.survey_delay_days + rules.catch_up_window_days), today


def sync_go_lives(
    sf, ledger, playbook, today: dt.date, *, dry_run: bool = False, overlap_minutes: int = 10
) -> dict:
    """Upsert changed/in-horizon Accounts and flagged Contacts into the ledger; advance both watermarks
    with the data they cover. Returns counts (no PII)."""
    from simple_salesforce import format_soql

    first, last = sync_horizon(playbook, today)
    out = {}
    objects = (
        (
            "accounts",
            ledger.upsert_accounts,
            account_soql,
            ACCOUNT_WATERMARK,
            lambda r: _account_row(r, playbook),
        ),
        (
            "contacts",
            ledger.upsert_contacts,
            contact_soql,
            CONTACT_WATERMARK,
            lambda r: _contact_row(r, playbook),
        ),
    )
    statements, marks = [], []
    for _, _, soql, watermark, _ in objects:
        since = to_utc(ledger.get_watermark(watermark))
        params = {"first": first, "last": last}
        if since is not None:
            params["since"] = since - dt.timedelta(minutes=overlap_minutes)
        statements.append(format_soql(soql(playbook, since is not None), **params))
        marks.append(since)
    # both queries in one Composite call (up to 5 query operations per call, next pages too)
    for (name, store, _, watermark, to_row), since, records in zip(
        objects, marks, sf.query_many(statements), strict=True
    ):
        rows = [to_row(r) for r in records]
        stamps = [row["system_modstamp"] for row in rows if row["system_modstamp"]]
        newest = max([*stamps, since] if since else stamps, default=None)
        if not dry_run and rows:
            store(rows, watermark=(watermark, newest))  # rows and their watermark in one transaction
        out[name] = len(rows)
    log.debug("sync_go_lives %s: %s (dry_run=%s)", today, out, dry_run)
    return out


def _account_row(record: Mapping, playbook) -> dict:
    from closed_loop.domain.routing import parse_mrr

    f = playbook.salesforce.account
    tsm = record.get(f.tsm_relationship) or {}
    mrr, _ = parse_mrr(record.get(f.mrr))
    return {
        "sf_id": record["Id"],
        "name": record.get("Name"),
        "go_live_date": _safe_date(record.get(f.go_live_date)),
        "mrr": mrr,
        "tsm_user_id": record.get(f.tsm_lookup),
        "tsm_username": tsm.get("Username"),
        "at_risk": bool(record.get(f.at_risk)),
        "system_modstamp": to_utc(record.get("SystemModstamp")),
    }


def _contact_row(record: Mapping, playbook) -> dict:
    c = playbook.salesforce.contact
    return {
        "sf_id": record["Id"],
        "account_id": record.get("AccountId"),
        "email": (record.get("Email") or "").strip() or None,
        "first_name": record.get("FirstName"),
        "last_name": record.get("LastName"),
        "is_impl_pm": bool(record.get(c.ipm_checkbox)),
        "opted_out": bool(record.get(c.opted_out)),
        "system_modstamp": to_utc(record.get("SystemModstamp")),
    }


def _safe_date(value) -> dt.date | None:
    try:
        return to_date(value)
    except (TypeError, ValueError):
        return None


# -- 2. planning (pure) --------------------------------------------------------------------------------


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


# -- 3. invites ----------------------------------------------------------------------------------------


def batch_name(today: dt.date) -> str:
    return f"closed-loop invites {today.isoformat()}"


def _registry_name(today: dt.date) -> str:
    return f"survey_dispatch.batch.{today.isoformat()}"


def _registry(ledger, today: dt.date) -> dict:
    return json.loads(ledger.get_watermark(_registry_name(today)) or "{}")


def _save_registry(ledger, today: dt.date, registry: dict) -> None:
    ledger.set_watermark(_registry_name(today), json.dumps(registry, sort_keys=True))


@carry_over_when_budget_exhausted
def send_invites(sm, ledger, playbook, today: dt.date, *, run_id: str, dry_run: bool = False) -> dict:
    """Plan today's invites and send them as one batch; reconcile earlier unfinished intents first.

    Returns counts: planned/held/skipped decisions, sent, rejected, reconciled, carried_over, api_calls.
    """
    start_calls = sm.calls_made
    reconciled = 0 if dry_run else _reconcile_intents(sm, ledger, today)
    decisions, contacts = plan_from_ledger(ledger, playbook, today)
    actions = Counter(d.action for d in decisions)
    out = {"due": actions["send"], "held": actions["hold"], "skipped": actions["skip"], "sent": 0,
           "rejected": 0, "reconciled": reconciled, "carried_over": 0, "dry_run": dry_run}  # fmt: skip
    if dry_run:
        log.info(
            "send_invites %s dry run: would send %s",
            today,
            [d.send_key for d in decisions if d.action == "send"],
        )
        return out | {"api_calls": 0}
    apply_plan(ledger, decisions)
    due_keys = {d.send_key for d in decisions if d.action == "send"}
    still_planned = [r for r in ledger.sends_due(today, kind="invite") if r["send_key"] in due_keys]
    if still_planned:
        from closed_loop.hooks.errors import SurveyMonkeyBudgetExhausted

        # first call: the rate headers are known after it
        survey_id = require_survey_id(sm, ledger, playbook.surveys.main)
        needed = 3 + math.ceil(len(still_planned) / BULK_CHUNK)  # collector, message, bulk adds, send
        try:
            sm.budget_guard(needed)
        except SurveyMonkeyBudgetExhausted as exc:
            log.warning(
                "send_invites %s: budget too low (%s); %d invites carried over",
                today,
                exc,
                len(still_planned),
            )
            out["carried_over"] = len(still_planned)
        else:
            sent, rejected = _send_batch(
                sm, ledger, survey_id, playbook, today, run_id, still_planned, contacts
            )
            out["sent"] += sent
            out["rejected"] += rejected
    out["api_calls"] = sm.calls_made - start_calls
    log.debug("send_invites %s: %s", today, out)
    return out


def _send_batch(sm, ledger, survey_id, playbook, today, run_id, rows, contacts) -> tuple[int, int]:
    registry = _registry(ledger, today)
    collector_id = registry.get("collector_id")
    if not collector_id:
        if registry.get("collector_pending"):  # a crash after the create call: find it by name
            collector_id = sm.get_or_create_email_collector(survey_id, batch_name(today))["id"]
        else:
            _save_registry(ledger, today, registry | {"collector_pending": True})
            collector = sm.request(
                "POST", f"/surveys/{survey_id}/collectors",
                json={"type": "email", "name": batch_name(today)}, idempotent=False,
            )  # fmt: skip
            collector_id = collector["id"]
        registry = {"survey_id": survey_id, "collector_id": collector_id}
        _save_registry(ledger, today, registry)
    message = sm.create_message(collector_id, "invite", *_invite_text(playbook))
    claimed = set(ledger.mark_send_intent(
        [r["send_key"] for r in rows], run_id, message_id=message["id"], collector_id=collector_id,
        survey_id=survey_id,
    ))  # fmt: skip
    intents = [r | {"message_id": message["id"]} for r in rows if r["send_key"] in claimed]
    return complete_message(sm, ledger, collector_id, message["id"], intents, contacts, today, fresh=True)


def _invite_text(playbook) -> tuple[str, str]:
    return render_message("invite", playbook)


def complete_message(
    sm, ledger, collector_id, message_id, intents, contacts, today, *, fresh
) -> tuple[int, int]:
    """Bring one invite message (survey invite or recovery pulse) to "sent" with exactly its intents as
    recipients, and record it. Shared by survey_dispatch and the sweep's recovery pulses.

    ``fresh``: the message was created in this run (not sent, no recipients: skip the GETs).
    A message already sent cannot gain recipients: intents missing from it return to planned.
    """
    by_email: dict[str, dict] = {}
    duplicates, later = [], []
    for row in intents:
        email = (contacts.get(row["contact_id"], {}).get("email") or "").strip().lower()
        if not email:
            duplicates.append(row["send_key"])
        elif email in by_email:  # the same person on another account: its own send, in the next batch
            later.append(row["send_key"])
        else:
            by_email[email] = row
    if later:
        _defer_same_person(ledger, later)
    present: dict[str, str] = {}
    if not fresh:
        status = sm.request("GET", f"/collectors/{collector_id}/messages/{message_id}").get("status")
        present = {
            (r.get("email") or "").lower(): r["id"]
            for r in sm.list_message_recipients(collector_id, message_id, include="")
        }
        if status != "not_sent":
            found = {e: r for e, r in by_email.items() if e in present}
            ledger.release_intents([r["send_key"] for e, r in by_email.items() if e not in present])
            _mark_outcomes(ledger, found, present, duplicates, collector_id, message_id, today)
            return len(found), len(duplicates)
    missing = [e for e in by_email if e not in present]
    rejected = {}
    if missing:
        people = [_recipient(contacts[by_email[e]["contact_id"]], by_email[e]) for e in missing]
        result = sm.add_recipients_bulk(collector_id, message_id, people, chunk=BULK_CHUNK)
        present |= {(r.get("email") or "").lower(): r["id"] for r in result["succeeded"]}
        for field, status in _REJECTS.items():
            for item in result.get(field) or []:
                email = (item.get("email") if isinstance(item, dict) else str(item)).lower()
                rejected[email] = status
        ledger.record_recipients(
            {by_email[e]["send_key"]: rid for e, rid in present.items() if e in by_email}
        )
    ledger.mark_sent(
        {"send_key": by_email[e]["send_key"], "status": s, "reason": f"SurveyMonkey: {s}",
         "collector_id": collector_id, "message_id": message_id}
        for e, s in rejected.items() if e in by_email
    )  # fmt: skip
    accepted = {e: r for e, r in by_email.items() if e in present}
    if accepted:
        sm.send_message(collector_id, message_id)
    _mark_outcomes(ledger, accepted, present, duplicates, collector_id, message_id, today)
    return len(accepted), len(rejected) + len(duplicates)


def _recipient(contact: Mapping, row: Mapping) -> dict:
    return {
        "email": contact["email"],
        "first_name": contact.get("first_name") or "",
        "last_name": contact.get("last_name") or "",
    }  # no custom_fields: they overwrite the customer's address book; responses join by recipient id


def _mark_outcomes(ledger, accepted, present, duplicates, collector_id, message_id, today) -> None:
    ledger.mark_sent(
        [
            {"send_key": row["send_key"], "status": "sent", "recipient_id": present[email],
             "collector_id": collector_id, "message_id": message_id, "sent_at": _day_start(today)}
            for email, row in accepted.items()
        ]
        + [{"send_key": key, "status": "skipped", "reason": "missing email address"}
           for key in duplicates]
    )  # fmt: skip


SAME_PERSON = (
    "the same email address is in this batch for another account: a collector holds an address once, "
    "so this account's survey goes out in the next batch (one survey per account, SOP)"
)


def _defer_same_person(ledger, keys: list[str]) -> None:
    """Return same-person intents to planned with the reason: tomorrow's batch (a new collector) sends
    them, so each account's flagged contact is surveyed as its own send, never skipped silently."""
    ledger.release_intents(keys)
    ledger.set_planned_reasons(dict.fromkeys(keys, SAME_PERSON))
    log.info(
        "send batch: %d send(s) to an address already in the batch deferred to the next batch", len(keys)
    )


def _reconcile_intents(sm, ledger, today) -> int:
    """Finish (or release) intents left by a crashed or failed run; returns how many were recorded sent."""
    pending = [r for r in ledger.pending_intents() if r["kind"] == "invite"]  # pulses: the sweep's
    if not pending:
        return 0
    contacts = ledger.get_contacts({p["contact_id"] for p in pending})
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in pending:
        groups[(row["collector_id"], row["message_id"])].append(row)
    done = 0
    for (collector_id, message_id), rows in groups.items():
        if not (collector_id and message_id):
            ledger.release_intents([r["send_key"] for r in rows])
            continue
        sent, _ = complete_message(sm, ledger, collector_id, message_id, rows, contacts, today, fresh=False)
        done += sent
    log.info("send_invites %s: reconciled %d pending intents, %d sent", today, len(pending), done)
    return done


# -- 4. reminders --------------------------------------------------------------------------------------


def reminder_key(collector_id: str) -> str:
    return f"reminder:{collector_id}"


@carry_over_when_budget_exhausted
def send_reminders(
    sm, sf, ledger, playbook, today: dt.date, *, run_id: str, dry_run: bool = False, calendar=None
) -> dict:
    """Once per batch collector, remind its non-responders (SurveyMonkey ``has_not_responded``), claimed in
    the ledger first; then the optional LP reminder Tasks in Salesforce (``sf`` may be None to skip)."""
    rules = playbook.dispatch
    start_sm, start_sf = sm.calls_made, getattr(sf, "calls_made", 0)
    out = {"batches": 0, "reminded": 0, "responded": 0, "reconciled": 0, "lp_tasks": 0, "carried_over": 0,
           "withheld": 0, "dry_run": dry_run}  # fmt: skip
    if not dry_run:
        out["reconciled"] = _reconcile_reminders(sm, ledger, playbook, today)
    oldest = _day_start(today - dt.timedelta(days=rules.reminder_window_days))
    candidates = [
        row for row in ledger.sends_needing_reminder(today, rules.reminder_delay_days)
        if row.get("sent_at") is None or to_utc(row["sent_at"]) >= oldest
    ]  # fmt: skip
    reminded = ledger.collectors_done_with_reminders(_NO_REMINDER)
    batches: dict[str, list[dict]] = defaultdict(list)
    for row in candidates:
        if row["collector_id"] and row["collector_id"] not in reminded:
            batches[row["collector_id"]].append(row)
    from closed_loop.hooks.errors import SurveyMonkeyBudgetExhausted

    for collector_id, rows in sorted(batches.items()):
        if dry_run:
            out["batches"] += 1
            out["reminded"] += len(rows)
            continue
        try:
            sm.budget_guard(3)
        except SurveyMonkeyBudgetExhausted as exc:
            log.warning("send_reminders %s: budget too low (%s); carried over", today, exc)
            out["carried_over"] += len(rows)
            continue
        listing = sm.paginate(
            f"/collectors/{collector_id}/recipients", {"include": "survey_response_status"}, per_page=1000
        )
        statuses = {r["id"]: r.get("survey_response_status") for r in listing}
        waiting = [r["send_key"] for r in rows if statuses.get(r["recipient_id"]) == NOT_RESPONDED]
        out["responded"] += len(rows) - len(waiting)
        if not waiting:  # everyone answered: remember, so this batch is not listed again
            ledger.set_watermark(_NO_REMINDER + collector_id, today.isoformat())
            continue
        opted = _opted_out_since(ledger, [r for r in rows if r["send_key"] in set(waiting)])
        if opted:
            out["withheld"] += len(waiting)
            _withhold_reminder(ledger, collector_id, waiting, opted, today)
            continue
        claimed = ledger.claim_reminders(waiting, reminder_key(collector_id))
        if not claimed:
            continue
        message = sm.create_message(collector_id, "reminder", *_reminder_text(playbook),
                                    recipient_status="has_not_responded")  # fmt: skip
        ledger.record_reminder_message(claimed, message["id"])
        sm.send_message(collector_id, message["id"])
        ledger.mark_reminders_sent(claimed, message["id"], sent_at=_day_start(today))
        out["batches"] += 1
        out["reminded"] += len(claimed)
    if sf is not None and rules.lp_reminder_task and not dry_run:
        out["lp_tasks"] = create_lp_reminder_tasks(sf, ledger, playbook, today, calendar)
    out["api_calls"] = {
        "surveymonkey": sm.calls_made - start_sm,
        "salesforce": getattr(sf, "calls_made", 0) - start_sf,
    }
    log.debug("send_reminders %s: %s", today, out)
    return out


def _opted_out_since(ledger, rows: list[dict]) -> list[str]:
    """Send keys among ``rows`` whose contact has opted out of email in Salesforce since the invite."""
    opted = ledger.opted_out_contacts({r["contact_id"] for r in rows})
    return sorted(r["send_key"] for r in rows if r["contact_id"] in opted)


def _withhold_reminder(ledger, collector_id: str, waiting: list[str], opted: list[str], today) -> None:
    """A SurveyMonkey reminder reaches every non-responder of its collector and cannot leave one out, so
    a batch with a contact who opted out since the invite gets none: recorded, and ops are told."""
    ledger.set_watermark(_NO_REMINDER + collector_id, today.isoformat())
    ledger.quarantine(
        f"survey_dispatch:reminder_withheld:{collector_id}", "survey_dispatch", collector_id,
        f"reminder withheld: {len(opted)} contact(s) of this batch opted out of email in Salesforce after "
        f"the invite, and a SurveyMonkey reminder goes to every non-responder of its collector; "
        f"{len(waiting) - len(opted)} other non-responder(s) were not reminded by email",
        {"collector_id": collector_id, "opted_out": opted, "not_reminded": sorted(set(waiting) - set(opted))},
    )  # fmt: skip
    log.warning(
        "send_reminders %s: reminder of batch %s withheld (opt-out since the invite)", today, collector_id
    )


def _reminder_text(playbook) -> tuple[str, str]:
    return render_message("reminder", playbook)


def _reconcile_reminders(sm, ledger, playbook, today) -> int:
    """Finish reminders claimed by a failed run: send the recorded message unless it went out already."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in ledger.pending_reminders():
        groups[row["collector_id"]].append(row)
    done = 0
    for collector_id, rows in groups.items():
        keys = [r["send_key"] for r in rows]
        message_id = next((r["reminder_message_id"] for r in rows if r["reminder_message_id"]), None)
        status = None
        if message_id:
            status = sm.request("GET", f"/collectors/{collector_id}/messages/{message_id}").get("status")
        else:  # crash between claim and recording the message: look for it on the collector
            existing = [
                m for m in sm.paginate(f"/collectors/{collector_id}/messages") if m.get("type") == "reminder"
            ]
            chosen = next((m for m in existing if m.get("status") != "not_sent"), None) or next(
                iter(existing), None
            )
            if chosen:
                message_id, status = chosen["id"], chosen.get("status")
            else:
                message_id = sm.create_message(collector_id, "reminder", *_reminder_text(playbook),
                                               recipient_status="has_not_responded")["id"]  # fmt: skip
                status = "not_sent"
            ledger.record_reminder_message(keys, message_id)
        if status == "not_sent":
            sm.send_message(collector_id, message_id)
        done += ledger.mark_reminders_sent(keys, message_id, sent_at=_day_start(today))
    return done


_LP_TASK_TEXT = (
    "The post-implementation survey reminder went out and the biller has not answered yet. "
    "Please ask them to complete it (SOP: survey follow-up)."
)


def _lp_task_text(playbook) -> str:
    link = playbook.surveys.main.link
    return _LP_TASK_TEXT + (f"\n\nThe survey (link to share with the biller): {link}" if link else "")


def create_lp_reminder_tasks(sf, ledger, playbook, today: dt.date, calendar=None) -> int:
    """Upsert one Task per reminded send asking the account's LP to remind the biller (SOP). Idempotent by
    the Task external id ``survey-reminder:<send_key>``; owners resolved with one SOQL on User."""
    from closed_loop.domain.routing import AccountFacts, route

    sends = ledger.reminded_without_lp_task()
    accounts = ledger.get_accounts({r["account_id"] for r in sends})
    if not sends:
        return 0
    wanted = {a["tsm_username"] for a in accounts.values() if a["tsm_username"]} | {
        playbook.username(role) for role in playbook.people.roles
    }
    users = {
        u["Username"].lower(): u
        for u in sf.query(
            "SELECT Id, Username, IsActive FROM User WHERE Username IN {names}", names=sorted(wanted)
        )
    }
    task_fields = playbook.salesforce.task
    due = calendar.add_business_days(today, 2) if calendar else today + dt.timedelta(days=2)
    records, keys = [], []
    for send in sends:
        account = accounts.get(send["account_id"])
        if not account:
            continue
        tsm = users.get((account["tsm_username"] or "").lower())
        facts = AccountFacts(
            account["sf_id"], account["name"] or "", account["mrr"], account["tsm_username"],
            tsm_active=bool(tsm and tsm.get("IsActive")),
        )  # fmt: skip
        owner = users.get(route(facts, (), playbook).lp_username.lower())
        if owner is None or not owner.get("IsActive"):
            owner = users.get(playbook.username(playbook.routing.otherwise).lower())
        if owner is None:
            continue
        records.append({
            task_fields.external_id: f"survey-reminder:{send['send_key']}",
            "Subject": f"Remind {account['name']} to complete the post-implementation survey"[:255],
            "Description": _lp_task_text(playbook),
            "WhatId": account["sf_id"], "WhoId": send["contact_id"], "OwnerId": owner["Id"],
            "Status": task_fields.open_status, "Priority": "Normal", "ActivityDate": due.isoformat(),
        })  # fmt: skip
        keys.append(send["send_key"])
    results = sf.upsert_records("Task", task_fields.external_id, records) if records else []
    mapping = {k: r["id"] for k, r in zip(keys, results, strict=True) if r["success"]}
    failed = len(records) - len(mapping)
    if failed:
        log.warning("LP reminder tasks: %d failed (will retry next run)", failed)
    ledger.set_lp_reminder_tasks(mapping)
    return len(mapping)
