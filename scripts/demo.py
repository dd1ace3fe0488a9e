"""`make demo`: the whole closed loop, end to end, on embedded defaults.

Starts the sandbox (Salesforce + SurveyMonkey over HTTPS, seeded), a local SMTP sink writing
demo-output/outbox/*.eml and a SQLite ledger; seeds two earlier quarters of survey history (ledger rows,
so the report has a trend); starts Airflow as a deployment runs it (api-server, scheduler, dag-processor on a
SQLite AIRFLOW_HOME, .airflow-demo); then walks a simulated quarter fortnight by fortnight, moving the sandbox
clock and triggering the DAGs by logical date (intake also on the days between with new responses, before
that day's sweep); reruns the last dates to show that a rerun creates nothing; prints a summary, writes
demo-output/summary.json, quarterly_report.html and salesforce.md (the Cases and Tasks created).
Afterwards `make airflow` shows every run with its task logs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from devtools.deployment import LocalDeployment  # noqa: E402
from devtools.stack import LocalStack  # noqa: E402

OUT = REPO / "demo-output"
HOME = REPO / ".airflow-demo"
DAGS = ("survey_dispatch", "response_intake", "sla_sweep", "quarterly_report")
HISTORY_BEFORE = date(2026, 6, 1)  # seeded history ends here (older than any reminder window)


def ticks(start: date, end: date, step_days: int) -> list[date]:
    days, day = [], start
    while day <= end:
        days.append(day)
        day += timedelta(days=step_days)
    return days


def schedule(days: list[date], report_date: date) -> list[tuple[date, str, bool]]:
    """(logical date, DAG, only if new responses) in run order: each tick's dispatch, intake and sweep,
    intake on the days between, then the report day."""
    plan = []
    for i, day in enumerate(days):
        plan += [(day, "survey_dispatch", False), (day, "response_intake", False), (day, "sla_sweep", False)]
        later = days[i + 1] if i + 1 < len(days) else report_date
        # intake on every day between ticks that has new responses, so no Task is created already overdue
        plan += [(day + timedelta(d), "response_intake", True) for d in range(1, (later - day).days)]
    return plan + [(report_date, dag, False) for dag in DAGS]


def figures(dag_id: str, results: dict) -> str:
    """What the run did, in words (whole phrases, never cut)."""
    get = lambda task, key: (results.get(task) or {}).get(key) or 0  # noqa: E731
    if dag_id == "survey_dispatch":
        parts = [(get("send_invites", "sent"), "survey sent", "surveys sent"),
                 (get("send_reminders", "reminded"), "reminder", "reminders")]  # fmt: skip
    elif dag_id == "response_intake":
        parts = [(get("ingest_responses", "recorded"), "response", "responses"),
                 (get("ingest_responses", "negatives"), "negative", "negatives"),
                 (get("open_cases", "cases_created"), "case opened", "cases opened"),
                 (get("open_cases", "tasks_created"), "task", "tasks")]  # fmt: skip
    elif dag_id == "sla_sweep":
        p = "progress_and_escalate"
        parts = [(get("read_back", "steps_completed"), "step completed", "steps completed"),
                 (get(p, "breaches"), "overdue step found", "overdue steps found"),
                 (get(p, "dissatisfied_start"), "still dissatisfied", "still dissatisfied"),
                 (get(p, "close"), "case closed", "cases closed"),
                 (get("send_recovery_pulses", "sent"), "pulse sent", "pulses sent")]  # fmt: skip
    elif dag_id != "quarterly_report":
        counts = [(k, v) for r in results.values() for k, v in sorted(r.items()) if type(v) is int and v]
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts[:6]) or "done"
    else:
        report = results.get("build_and_send_report") or {}
        return f"report {report.get('quarter', '')} {report.get('email', 'skipped (not its day)')}".strip()
    said = [f"{n} {one if n == 1 else many}" for n, one, many in parts if n]
    return ", ".join(said) or "nothing to do"


def new_responses(stack, since: str) -> int:
    """Responses the sandbox's respondents completed or changed after ``since`` (sandbox time)."""
    raw = stack.sandbox.admin("GET", "responses")
    raw = raw.get("responses", raw) if isinstance(raw, dict) else raw
    return sum(1 for r in raw if (r.get("date_modified") or r.get("date_created") or "") > since)


def run(airflow, dag_id: str, day: date, n: int, total: int) -> dict:
    result = airflow.run_dag(dag_id, day)
    state = "ok" if result.ok else "FAILED"
    print(f"  run {n:>2} of {total}: {dag_id:<17} {day}  {state:<6} {result.seconds:5.1f} s  "
          f"{figures(dag_id, result.results)}", flush=True)  # fmt: skip
    if not result.ok:
        print(f"    task logs: {HOME.relative_to(REPO)}/logs/dag_id={dag_id}/run_id={result.run_id}/")
    return {"dag_id": dag_id, "date": day.isoformat(), "ok": result.ok, "seconds": result.seconds,
            "run_id": result.run_id, "results": result.results}  # fmt: skip


def seed_history(ledger, before: date, seed: int) -> tuple[dict, dict]:
    """Two earlier quarters of invites and responses (synthetic ledger rows, no Salesforce records), so the
    quarterly report shows a trend. Only sent invites older than any reminder window: nothing to act on."""
    from sqlalchemy import insert

    from closed_loop.ledger.models import TABLES
    from closed_loop.reporting.quarters import Quarter
    from devtools.synthetic import synthetic_report_data

    quarters = Quarter.containing(before).trailing(2)
    data = synthetic_report_data(quarters, seed=seed, invites_per_quarter=70)
    cutoff = pd_ts(before)
    sends = data.survey_sends
    sends = sends[(sends["status"] == "sent") & (sends["sent_at"] < cutoff)]
    responses = data.responses
    responses = responses[
        ~responses["is_recovery"].astype(bool)
        & responses["send_key"].isin(set(sends["send_key"]))
        & (responses["date_created"] < cutoff)
    ].assign(case_key=None)
    ids = set(responses["response_id"])
    rows = {
        "survey_sends": sends.drop(columns=["reminder_sent_at"]),
        "responses": responses,
        "answers": data.answers[data.answers["response_id"].isin(ids)],
        "triggers": data.triggers[data.triggers["response_id"].isin(ids)],
    }
    with ledger.session() as s:
        for name, frame in rows.items():
            columns = set(TABLES[name].__table__.columns.keys())
            records = [{k: _plain(v) for k, v in r.items() if k in columns} for r in frame.to_dict("records")]
            if records:
                s.execute(insert(TABLES[name]), records)
    summary = {"quarters": [q.label for q in quarters], "invites": len(sends), "responses": len(responses)}
    return summary, {"sends": set(sends["send_key"]), "responses": ids}


def pd_ts(day: date):
    import pandas as pd

    return pd.Timestamp(day, tz="UTC")


def _plain(value):
    import pandas as pd

    if isinstance(value, list | tuple | dict):
        return value
    if value is None or pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime() if value.tzinfo else value.date()
    return value.item() if hasattr(value, "item") else value


def snapshot(stack) -> dict:
    """Side-effect counters used to prove that a rerun created nothing."""
    state = stack.sandbox.admin("GET", "state")
    sf = state.get("sf", state.get("salesforce", {}))
    records = sf.get("records", sf)
    messages = stack.sandbox.admin("GET", "messages")
    messages = messages.get("messages", messages) if isinstance(messages, dict) else messages
    return {
        "cases": len(_records(records, "Case")),
        "tasks": len(_records(records, "Task")),
        "messages_sent": sum(1 for m in messages if m.get("status") == "sent"),
        "emails": len(stack.emails()),
        "sla_events": len(stack.ledger.read_frame("sla_events")),
        "sends": len(stack.ledger.read_frame("survey_sends")),
    }


def _records(records, sobject: str) -> list:
    value = records.get(sobject, []) if isinstance(records, dict) else []
    return list(value.values()) if isinstance(value, dict) else list(value)


def summarise(
    stack, rerun_effects: dict, runs: list[dict], started: float, sf_tasks: dict, seeded: dict | None = None
) -> dict:
    """The demo's figures; ``seeded`` (send and response keys of the seeded history) is left out."""
    ledger = stack.ledger
    seeded = seeded or {"sends": set(), "responses": set()}
    sends = ledger.read_frame("survey_sends")
    sends = sends[~sends["send_key"].isin(seeded["sends"])]
    responses = ledger.read_frame("responses")
    responses = responses[~responses["response_id"].isin(seeded["responses"])]
    triggers = ledger.read_frame("triggers")
    cases = ledger.read_frame("cases")
    steps = ledger.read_frame("case_steps")
    events = ledger.read_frame("sla_events")
    quarantine = ledger.read_frame("quarantine")
    invites = sends[sends["kind"] == "invite"] if len(sends) else sends
    main = responses[~responses["is_recovery"].fillna(False).astype(bool)] if len(responses) else responses
    negative_ids = (
        set(main[main["negative"].fillna(False).astype(bool)]["response_id"]) if len(main) else set()
    )
    neg_triggers = triggers[triggers["response_id"].isin(negative_ids)] if len(triggers) else triggers
    created_cases = cases[cases["sf_case_id"].notna()] if len(cases) else cases
    created_steps = steps[steps["sf_task_id"].notna()] if len(steps) else steps
    return {
        "surveys_sent": int((invites["status"] == "sent").sum()) if len(invites) else 0,
        "reminders_sent": int(invites["reminder_sent_at"].notna().sum()) if len(invites) else 0,
        "recovery_pulses_sent": int(((sends["kind"] == "recovery") & (sends["status"] == "sent")).sum())
        if len(sends)
        else 0,
        "responses_ingested": int(len(responses)),
        "negative_responses": len(negative_ids),
        "negatives_by_trigger": dict(Counter(neg_triggers.drop_duplicates(["response_id", "kind"])["kind"]))
        if len(neg_triggers)
        else {},
        "cases_created": int(len(created_cases)),
        "cases_by_lp_role": dict(Counter(created_cases["lp_role"])) if len(created_cases) else {},
        "tasks_created": sum(sf_tasks.values()),
        "tasks_by_kind": sf_tasks,
        "case_step_tasks": int(len(created_steps)),
        "tasks_by_owner": dict(Counter(created_steps["owner_username"])) if len(created_steps) else {},
        "escalations": int((events["kind"] == "escalation").sum()) if len(events) else 0,
        "cases_escalated": int(events.loc[events["kind"] == "escalation", "case_key"].nunique())
        if len(events)
        else 0,
        "sla_events_by_kind": dict(Counter(events["kind"])) if len(events) else {},
        "quarantined_records": int(len(quarantine)),
        "emails_sent": len(stack.emails()),
        "dag_runs": len(runs),
        "dag_runs_failed": sum(1 for r in runs if not r["ok"]),
        "rerun_side_effects": sum(abs(v) for v in rerun_effects.values()),
        "rerun_side_effects_detail": rerun_effects,
        "wall_time_seconds": round(time.monotonic() - started, 1),
    }


def task_kind(key: str | None, step_keys: set[str]) -> str:
    """What a Task is for, from its Closed_Loop_Key__c."""
    if not key:
        return "other (no closed-loop key)"
    parts = key.split(":")
    if parts[0] == "dq":
        return "data-quality alert (ops)"
    if parts[0] == "survey-reminder":
        return "survey reminder (LP)"
    step = parts[1] if len(parts) > 1 else ""
    if parts[-1] == "late":  # <response>:<step>:late, the Case-history line of a late completion
        return EVENT_TASKS["late"]
    if step in EVENT_TASKS:
        return EVENT_TASKS[step]
    return f"SOP step: {step.replace('_', ' ')}" if step in step_keys else f"other ({step or parts[0]})"


EVENT_TASKS = {  # the second part of a case Task's key -> what an LP calls it
    "escalate": "escalation",
    "inform_escalation": "keep the customer informed (after an escalation)",
    "doc_missing": "document the closed case (reminder)",
    "late": "late completion (Case history line)",
}


def salesforce_records(stack) -> tuple[dict, dict, dict]:
    state = stack.sandbox.admin("GET", "state")
    sf = state.get("sf", state.get("salesforce", {}))
    records = sf.get("records", sf)
    as_map = lambda name: {r["Id"]: r for r in _records(records, name)}  # noqa: E731
    return as_map("Case"), as_map("Task"), {**as_map("User"), **as_map("Account")}


def tasks_by_kind(stack, playbook, ext: str) -> dict[str, int]:
    _, tasks, _ = salesforce_records(stack)
    step_keys = {s.key for s in playbook.steps}
    return dict(sorted(Counter(task_kind(t.get(ext), step_keys) for t in tasks.values()).items()))


def write_listing(stack, path: Path, ext: str) -> int:
    """demo-output/salesforce.md: every Case the demo opened with its Tasks, as an LP would see them."""
    cases, tasks, names = salesforce_records(stack)
    name = lambda rid: (names.get(rid) or {}).get("Name") or (names.get(rid) or {}).get("Username") or "-"  # noqa: E731
    by_case: dict[str, list] = {}
    for t in tasks.values():
        by_case.setdefault(t.get("WhatId"), []).append(t)
    lines = ["# Salesforce after the demo: Cases and their Tasks", "",
             f"{len(cases)} Cases, {len(tasks)} Tasks (sandbox ground truth). Task status: "
             "[x] completed, [ ] open.", ""]  # fmt: skip
    for case in sorted(cases.values(), key=lambda c: c.get("CaseNumber") or ""):
        lines += [
            f"## Case {case.get('CaseNumber')} - {case.get('Subject')}",
            f"{name(case.get('AccountId'))} | {case.get('Status')} | priority {case.get('Priority')} | "
            f"owner {name(case.get('OwnerId'))} | opened {str(case.get('CreatedDate'))[:10]}"
            + (f" | closed {str(case.get('ClosedDate'))[:10]}" if case.get("ClosedDate") else ""),
            "",
        ]
        for t in sorted(
            by_case.get(case["Id"], []), key=lambda t: (t.get("ActivityDate") or "", t.get("Subject"))
        ):
            done = "x" if t.get("Status") == "Completed" else " "
            lines.append(f"- [{done}] due {t.get('ActivityDate')} - {t.get('Subject')} "
                         f"({name(t.get('OwnerId'))}, {t.get('Status')})")  # fmt: skip
        lines.append("")
    other = [t for t in tasks.values() if t.get("WhatId") not in cases]
    if other:
        lines += ["## Tasks not on a follow-up Case (survey reminders, data-quality alerts)", ""]
        for t in sorted(other, key=lambda t: (t.get("ActivityDate") or "", t.get("Subject"))):
            lines.append(f"- due {t.get('ActivityDate')} - {t.get('Subject')} ({name(t.get('OwnerId'))}, "
                         f"{t.get('Status')}) [{t.get(ext)}]")  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(cases)


ROWS = (  # summary key, label, what it counts (printed once under the table)
    (
        "seeded_history_responses",
        "seeded history",
        "responses in earlier quarters, seeded ledger rows (trend)",
    ),
    ("surveys_sent", "surveys sent", "survey invitations SurveyMonkey sent"),
    ("reminders_sent", "reminders sent", "reminders to invitees who had not answered"),
    ("recovery_pulses_sent", "recovery pulses sent", "follow-up pulse surveys after a case closed"),
    ("responses_ingested", "responses ingested", "responses recorded in the ledger (main + pulse)"),
    ("negative_responses", "negative responses", "main-survey responses a trigger fired on"),
    ("cases_created", "cases created", "follow-up Cases opened in Salesforce"),
    ("tasks_created", "tasks created", "every Task in Salesforce, by kind below"),
    ("escalations", "escalations", "escalation events raised"),
    ("cases_escalated", "cases escalated", "distinct cases with an escalation"),
    ("quarantined_records", "quarantined records", "bad records set aside for ops, not dropped"),
    ("emails_sent", "emails sent", "emails in demo-output/outbox (notices, digests, report)"),
    ("dag_runs", "DAG runs", "runs the scheduler executed (failed ones in brackets)"),
    ("rerun_side_effects", "rerun side effects", "new records after rerunning the last dates (must be 0)"),
    ("wall_time_seconds", "wall time", "seconds from start to this table"),
)


def _details(value) -> dict:
    return value if isinstance(value, dict) else json.loads(value or "{}")


def hostile_org(stack) -> dict:
    """What happened to each awkward record of the hostile org (sandbox --hostile, issue 14)."""
    from sandbox.hostile import INACTIVE_TSM

    state = stack.sandbox.admin("GET", "state")
    used, sf = state.get("hostile") or {}, state["sf"]
    ledger = stack.ledger
    cases = ledger.read_frame("cases").to_dict("records")
    by_key = {c["case_key"]: c for c in cases}
    triggers = ledger.read_frame("triggers").to_dict("records")
    responses = ledger.read_frame("responses").to_dict("records")
    events = ledger.read_frame("sla_events").to_dict("records")
    quarantine = {q["q_key"] for q in ledger.read_frame("quarantine").to_dict("records")}
    tsm_id = next(u["Id"] for u in sf["User"].values() if u["Username"] == INACTIVE_TSM)
    accounts = {a["Id"] for a in sf["Account"].values() if a.get("Transition_Success_Manager__c") == tsm_id}
    on_accounts = [c for c in cases if c["account_id"] in accounts and c.get("sf_case_id")]
    comment = used.get("comment")
    pulses = [r for r in responses if r["is_recovery"] and r["negative"]]
    pulse_events = [e for e in events if _details(e["details"]).get("source") == "recovery_pulse"]
    main_id = next(
        s["id"] for s in state["sm"]["surveys"].values() if s["title"] == "Post-Implementation Feedback"
    )
    partial = [r for r in state["sm"]["responses"].values()
               if r["survey_id"] == main_id and r["response_status"] == "partial"]  # fmt: skip
    completed = [r for r in state["sim"]["log"] if r.get("action") == "completed_partial"]
    return {
        "inactive_tsm": {
            "username": INACTIVE_TSM,
            "cases_on_their_accounts": len(on_accounts),
            "lead_person": dict(Counter(c["lp_username"] for c in on_accounts)),
            "flagged_tsm_missing": sum(f"intake:tsm_missing:{a}" in quarantine for a in accounts),
        },
        "multi_line_comment": {
            "response_id": comment,
            "triggers": sorted({t["kind"] for t in triggers if t["response_id"] == comment}),
            "case_opened": bool(comment and (by_key.get(comment) or {}).get("sf_case_id")),
        },
        "negative_recovery_pulses": {
            "count": len(pulses),
            "escalated_to": dict(Counter(_details(e["details"]).get("owner_role") for e in pulse_events)),
            "cases_reopened": sum(
                bool((by_key.get(e["case_key"]) or {}).get("dissatisfied")) for e in pulse_events
            ),
        },
        "partial_responses": {
            "left_partial": len(partial),
            "cases_opened_as_abandoned": sum(
                bool((by_key.get(r["id"]) or {}).get("sf_case_id")) for r in partial
            ),
            "completed_later": len(completed),
            "completed_later_case_updated": sum(
                ledger.get_watermark(f"intake:case_update:{r['id']}") == "done" for r in completed
            ),
        },
    }


def print_summary(summary: dict) -> None:
    rows = []
    for key, label, _ in ROWS:
        value = summary.get(key, 0)
        if key == "dag_runs":
            value = f"{summary['dag_runs']} ({summary['dag_runs_failed']})"
        rows.append((label, value))
        if key == "negative_responses":
            rows += [(f"  by trigger: {k}", v) for k, v in sorted(summary["negatives_by_trigger"].items())]
        if key == "cases_created":
            rows += [(f"  LP role: {k}", v) for k, v in sorted(summary["cases_by_lp_role"].items())]
        if key == "tasks_created":
            rows += [(f"  {k}", v) for k, v in summary["tasks_by_kind"].items()]
    width = max(len(r[0]) for r in rows)
    print("\n" + "=" * (width + 12))
    for label, value in rows:
        print(f"{label:<{width}}  {value!s:>8}")
    print("=" * (width + 12))
    for name, figures in summary.get("hostile_org", {}).items():
        print(f"hostile org, {name.replace('_', ' ')}: {json.dumps(figures)}")
    print("what the keys count:")
    for _, label, meaning in ROWS:
        print(f"  {label}: {meaning}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 6, 30))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 9, 22))
    parser.add_argument("--step-days", type=int, default=14)
    parser.add_argument("--accounts", type=int, default=150)
    parser.add_argument("--report-date", type=date.fromisoformat, default=date(2026, 10, 1))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from closed_loop.playbook import load_playbook

    playbook = load_playbook()
    ext = playbook.salesforce.task.external_id
    started = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.rmtree(HOME, ignore_errors=True)
    OUT.mkdir(parents=True)
    print(
        f"closed-loop demo: {args.start} -> {args.report_date}, every {args.step_days} days, seed {args.seed}"
    )
    clock = f"{args.start.isoformat()}T06:00:00Z"
    with LocalStack(
        OUT / "state",
        seed=args.seed,
        outbox=OUT / "outbox",
        start_clock=clock,
        accounts=args.accounts,
        hostile=True,  # the awkward records of issue 14 (sandbox/hostile.py)
    ) as stack:
        history, seeded = seed_history(stack.ledger, min(HISTORY_BEFORE, args.start), args.seed)
        print(f"seeded history: {history['responses']} responses to {history['invites']} invites in "
              f"{' and '.join(history['quarters'])} (ledger rows, for the report's trend)")  # fmt: skip
        extra = {**stack.conn_env, "CLOSED_LOOP_REPORT_DIR": str(OUT / "reports")}
        (OUT / "connections.env").write_text(
            "".join(f"export {k}='{v}'\n" for k, v in stack.conn_env.items())
        )
        print(f"setting up Airflow ({HOME.relative_to(REPO)}: database migration, api-server, scheduler, "
              "dag-processor; about a minute) ...", flush=True)  # fmt: skip
        t0 = time.monotonic()
        with LocalDeployment(HOME, extra_env=extra).start(
            dag_ids=(*DAGS, "closed_loop_preflight")
        ) as airflow:
            print(f"Airflow ready in {time.monotonic() - t0:.0f} s: sandbox {stack.sandbox.sf_instance_url}, "
                  f"smtp 127.0.0.1:{stack.smtp.port}\n", flush=True)  # fmt: skip
            print("preflight: the sandbox org and surveys against the playbook (one log line per check)")
            runs = [run(airflow, "closed_loop_preflight", args.start, 1, 1)]
            print()
            days = ticks(args.start, args.end, args.step_days)
            plan = schedule(days, args.report_date)
            total, last_intake, skipped = len(plan), "", 0
            print(f"{total} planned runs; an intake between visits runs only on a day with new responses")
            for n, (day, dag_id, only_if_new) in enumerate(plan, 1):
                now = f"{day.isoformat()}T12:00:00Z"
                if stack.sandbox.admin("GET", "clock")["now"] < now:
                    stack.sandbox.admin("POST", "clock", {"now": now})
                if only_if_new and not new_responses(stack, last_intake):
                    skipped += 1  # a day without new responses needs no intake run
                    continue
                if dag_id == "response_intake":
                    last_intake = stack.sandbox.admin("GET", "clock")["now"]
                runs.append(run(airflow, dag_id, day, n, total))

            print(f"  ({skipped} days between visits had no new responses: no intake run needed)")
            print("\nrerun of the same logical dates (must create nothing):")
            before = snapshot(stack)
            again = [(args.report_date, d) for d in DAGS] + [(days[-1], "sla_sweep")]
            for i, (day, dag_id) in enumerate(again, 1):
                runs.append(run(airflow, dag_id, day, i, len(again)))
            after = snapshot(stack)
        rerun_effects = {k: after[k] - before[k] for k in before}

        reports = sorted((OUT / "reports").glob("quarterly_report_*.html"))
        if reports:
            shutil.copy(reports[-1], OUT / "quarterly_report.html")
        summary = summarise(stack, rerun_effects, runs, started, tasks_by_kind(stack, playbook, ext), seeded)
        summary["hostile_org"] = hostile_org(stack)
        summary["seeded_history_responses"] = history["responses"]
        summary["seeded_history"] = history
        write_listing(stack, OUT / "salesforce.md", ext)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print_summary(summary)
    print(
        "\nwritten: demo-output/summary.json, quarterly_report.html, salesforce.md (Cases and Tasks), "
        "outbox/*.eml"
    )
    print("Airflow UI on the same runs and task logs: make airflow")
    ok = summary["dag_runs_failed"] == 0 and summary["rerun_side_effects"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
