"""survey_dispatch step 4: once per batch collector, remind its non-responders; then the optional Task
asking each reminded account's Lead Person to nudge the biller."""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from closed_loop.ledger.types import to_date, to_utc
from closed_loop.pipeline.dispatch_send import day_start
from closed_loop.pipeline.surveys import carry_over_when_budget_exhausted
from closed_loop.survey_messages import render_message

log = logging.getLogger(__name__)

NOT_RESPONDED = "not_responded"
NO_REMINDER = "survey_dispatch.no_reminder_needed."  # + collector id: everybody answered, or withheld


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
    out = {"batches": 0, "reminded": 0, "responded": 0, "reconciled": 0, "adopted": 0, "lp_tasks": 0,
           "carried_over": 0, "withheld": 0, "dry_run": dry_run}  # fmt: skip
    if not dry_run:
        out["reconciled"] = _reconcile_reminders(sm, ledger, playbook, today)
    for collector_id, rows in sorted(_reminder_batches(ledger, rules, today).items()):
        if dry_run:
            out["batches"] += 1
            out["reminded"] += len(rows)
        else:
            _remind_batch(sm, ledger, playbook, today, collector_id, rows, out)
    if sf is not None and rules.lp_reminder_task and not dry_run:
        out["lp_tasks"] = create_lp_reminder_tasks(sf, ledger, playbook, today, calendar)
    out["api_calls"] = {
        "surveymonkey": sm.calls_made - start_sm,
        "salesforce": getattr(sf, "calls_made", 0) - start_sf,
    }
    log.debug("send_reminders %s: %s", today, out)
    return out


def _reminder_batches(ledger, rules, today: dt.date) -> dict[str, list[dict]]:
    """Sends due a reminder today (inside the reminder window), by batch collector, leaving out the
    collectors already reminded, claimed, or marked as needing none."""
    oldest = day_start(today - dt.timedelta(days=rules.reminder_window_days))
    done = ledger.collectors_done_with_reminders(NO_REMINDER)
    batches: dict[str, list[dict]] = defaultdict(list)
    for row in ledger.sends_needing_reminder(today, rules.reminder_delay_days):
        recent = row.get("sent_at") is None or to_utc(row["sent_at"]) >= oldest
        if recent and row["collector_id"] and row["collector_id"] not in done:
            batches[row["collector_id"]].append(row)
    return batches


def _remind_batch(sm, ledger, playbook, today, collector_id: str, rows: list[dict], out: dict) -> None:
    """One batch: its non-responders (one listing), withheld if one opted out since, else claimed, the
    reminder message created, recorded and sent. Adds to ``out``'s counts."""
    from closed_loop.hooks.errors import SurveyMonkeyBudgetExhausted

    try:
        sm.budget_guard(4)  # recipients, messages, reminder, send
    except SurveyMonkeyBudgetExhausted as exc:
        log.warning("send_reminders %s: budget too low (%s); carried over", today, exc)
        out["carried_over"] += len(rows)
        return
    listing = sm.paginate(
        f"/collectors/{collector_id}/recipients", {"include": "survey_response_status"}, per_page=1000
    )
    statuses = {r["id"]: r.get("survey_response_status") for r in listing}
    waiting = [r["send_key"] for r in rows if statuses.get(r["recipient_id"]) == NOT_RESPONDED]
    out["responded"] += len(rows) - len(waiting)
    if not waiting:  # everyone answered: remember, so this batch is not listed again
        ledger.set_watermark(NO_REMINDER + collector_id, today.isoformat())
        return
    opted = _opted_out_since(ledger, [r for r in rows if r["send_key"] in set(waiting)])
    if opted:
        out["withheld"] += len(waiting)
        _withhold_reminder(ledger, collector_id, waiting, opted, today)
        return
    existing = _existing_reminder(sm, collector_id)  # a restored ledger forgets a reminder it sent
    claimed = ledger.claim_reminders(waiting, reminder_key(collector_id))
    if not claimed:
        return
    if existing and existing.get("status") != "not_sent":
        sent_on = to_date(existing.get("date_created")) or today
        ledger.mark_reminders_sent(claimed, existing["id"], sent_at=day_start(sent_on))
        out["adopted"] += len(claimed)
        log.warning("send_reminders %s: batch %s reminded already (a restored ledger?): adopted, not resent",
                    today, collector_id)  # fmt: skip
        return
    message_id = existing["id"] if existing else _create_reminder(sm, playbook, collector_id)
    ledger.record_reminder_message(claimed, message_id)
    sm.send_message(collector_id, message_id)
    ledger.mark_reminders_sent(claimed, message_id, sent_at=day_start(today))
    out["batches"] += 1
    out["reminded"] += len(claimed)


def _existing_reminder(sm, collector_id: str) -> dict | None:
    """The collector's reminder message (a sent one first), or None: one listing of its messages."""
    found = [m for m in sm.paginate(f"/collectors/{collector_id}/messages") if m.get("type") == "reminder"]
    return next((m for m in found if m.get("status") != "not_sent"), None) or next(iter(found), None)


def _create_reminder(sm, playbook, collector_id: str) -> str:
    return sm.create_message(collector_id, "reminder", *_reminder_text(playbook),
                             recipient_status="has_not_responded")["id"]  # fmt: skip


def _opted_out_since(ledger, rows: list[dict]) -> list[str]:
    """Send keys among ``rows`` whose contact has opted out of email in Salesforce since the invite."""
    opted = ledger.opted_out_contacts({r["contact_id"] for r in rows})
    return sorted(r["send_key"] for r in rows if r["contact_id"] in opted)


def _withhold_reminder(ledger, collector_id: str, waiting: list[str], opted: list[str], today) -> None:
    """A SurveyMonkey reminder reaches every non-responder of its collector and cannot leave one out, so
    a batch with a contact who opted out since the invite gets none: recorded, and ops are told."""
    ledger.set_watermark(NO_REMINDER + collector_id, today.isoformat())
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
            chosen = _existing_reminder(sm, collector_id)
            if chosen:
                message_id, status = chosen["id"], chosen.get("status")
            else:
                message_id, status = _create_reminder(sm, playbook, collector_id), "not_sent"
            ledger.record_reminder_message(keys, message_id)
        if status == "not_sent":
            sm.send_message(collector_id, message_id)
        done += ledger.mark_reminders_sent(keys, message_id, sent_at=day_start(today))
    return done


_LP_TASK_TEXT = (
    "The post-implementation survey reminder went out and the biller has not answered yet. "
    "Please ask them to complete it (SOP: survey follow-up)."
)


def _lp_task_text(playbook) -> str:
    link = playbook.surveys.main.link
    return _LP_TASK_TEXT + (f"\n\nThe survey (link to share with the biller): {link}" if link else "")


def create_lp_reminder_tasks(sf, ledger, playbook, today: dt.date, calendar=None) -> int:
    """Create one Task per reminded send asking the account's LP to remind the biller (SOP), through the
    one Salesforce writer: keyed ``survey-reminder:<send_key>``, so a replay (a crash before the ledger
    recorded it, a restored ledger) finds the Task and leaves the LP's Status/Priority/Owner alone.
    Owners resolved with one SOQL on User (``lookup_users``)."""
    from closed_loop.domain.records import task_record
    from closed_loop.pipeline.salesforce_writes import create_records_once, lookup_users

    sends = ledger.reminded_without_lp_task()
    if not sends:
        return 0
    accounts = ledger.get_accounts({r["account_id"] for r in sends})
    roles = {playbook.username(role) for role in playbook.people.roles}
    users = lookup_users(sf, roles | {a["tsm_username"] for a in accounts.values()})
    due = calendar.add_business_days(today, 2) if calendar else today + dt.timedelta(days=2)
    records, keys = [], []
    for send in sends:
        account = accounts.get(send["account_id"])
        owner_id = account and _lp_owner_id(account, users, playbook)
        if not owner_id:
            continue
        records.append(task_record(
            playbook, key=f"survey-reminder:{send['send_key']}",
            subject=f"Remind {account['name']} to complete the post-implementation survey",
            description=_lp_task_text(playbook), due=due, owner_id=owner_id,
            what_id=account["sf_id"], who_id=send["contact_id"],
        ))  # fmt: skip
        keys.append(send["send_key"])
    results = create_records_once(sf, "Task", playbook.salesforce.task.external_id, records, playbook)
    mapping = {k: r.id for k, r in zip(keys, results, strict=True) if r.ok}
    if len(records) > len(mapping):
        log.warning("LP reminder tasks: %d failed (will retry next run)", len(records) - len(mapping))
    ledger.set_lp_reminder_tasks(mapping)
    return len(mapping)


def _lp_owner_id(account: dict, users, playbook) -> str | None:
    """The account's Lead Person by the playbook's routing (TSM when active and MRR is over the threshold),
    else the routing's fallback role; None when neither is an active Salesforce user."""
    from closed_loop.domain.routing import AccountFacts, route

    facts = AccountFacts(
        account["sf_id"], account["name"] or "", account["mrr"], account["tsm_username"],
        tsm_active=users.active(account["tsm_username"]) is not None,
    )  # fmt: skip
    lead = route(facts, (), playbook).lp_username
    return users.id(lead) or users.id(playbook.username(playbook.routing.otherwise))
