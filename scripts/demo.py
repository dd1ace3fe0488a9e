"""`make demo`: the whole closed loop, end to end, on embedded defaults.

Starts the sandbox (Salesforce + SurveyMonkey over HTTPS, seeded), a local SMTP sink writing
demo-output/outbox/*.eml and a SQLite ledger; migrates a SQLite AIRFLOW_HOME (.airflow-demo); then walks
a simulated quarter fortnight by fortnight, moving the sandbox clock and running the four DAGs through
the real Airflow CLI (`airflow dags test <dag> <date>`) for each logical date; reruns the last dates to show
that a rerun creates nothing; prints a summary, writes demo-output/summary.json and quarterly_report.html.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from devtools.stack import LocalStack  # noqa: E402

OUT = REPO / "demo-output"
HOME = REPO / ".airflow-demo"
RETURNED = re.compile(r"closed-loop result: (\{.*?\})\s")


def ticks(start: date, end: date, step_days: int) -> list[date]:
    days, day = [], start
    while day <= end:
        days.append(day)
        day += timedelta(days=step_days)
    return days


def run(cli, dag_id: str, day: date, conf: dict | None = None) -> dict:
    started = time.monotonic()
    result = cli.dags_test(dag_id, day.isoformat(), conf)
    seconds = time.monotonic() - started
    returned = {}
    for match in RETURNED.finditer(result.output):
        try:
            returned.update(
                {
                    k: v
                    for k, v in json.loads(match.group(1)).items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            )
        except ValueError:
            continue
    skipped = "state=skipped" in result.output or "AirflowSkipException" in result.output
    state = "success" if result.ok else "FAILED"
    figures = " ".join(f"{k}={v}" for k, v in sorted(returned.items()) if v)[:90]
    print(
        f"  {day}  {dag_id:<17} {state:<8} {seconds:5.1f}s  {'(skipped: not its day) ' if skipped else ''}"
        f"{figures}",
        flush=True,
    )
    if not result.ok:
        (OUT / "logs").mkdir(exist_ok=True)
        log = OUT / "logs" / f"{dag_id}-{day}.log"
        log.write_text(result.output)
        print(f"    log: {log.relative_to(REPO)}")
    return {"dag_id": dag_id, "date": day.isoformat(), "ok": result.ok, "seconds": round(seconds, 1)}


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


def summarise(stack, rerun_effects: dict, runs: list[dict], started: float) -> dict:
    ledger = stack.ledger
    sends = ledger.read_frame("survey_sends")
    responses = ledger.read_frame("responses")
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
        "tasks_created": int(len(created_steps)),
        "tasks_by_owner": dict(Counter(created_steps["owner_username"])) if len(created_steps) else {},
        "escalations": int((events["kind"] == "escalation").sum()) if len(events) else 0,
        "sla_events_by_kind": dict(Counter(events["kind"])) if len(events) else {},
        "quarantined_records": int(len(quarantine)),
        "emails_sent": len(stack.emails()),
        "dag_runs": len(runs),
        "dag_runs_failed": sum(1 for r in runs if not r["ok"]),
        "rerun_side_effects": sum(abs(v) for v in rerun_effects.values()),
        "rerun_side_effects_detail": rerun_effects,
        "wall_time_seconds": round(time.monotonic() - started, 1),
    }


def print_summary(summary: dict) -> None:
    rows = [
        ("surveys sent", summary["surveys_sent"]),
        ("reminders sent", summary["reminders_sent"]),
        ("recovery pulses sent", summary["recovery_pulses_sent"]),
        ("responses ingested", summary["responses_ingested"]),
        ("negative responses", summary["negative_responses"]),
        *[(f"  by trigger: {k}", v) for k, v in sorted(summary["negatives_by_trigger"].items())],
        ("cases created", summary["cases_created"]),
        *[(f"  LP role: {k}", v) for k, v in sorted(summary["cases_by_lp_role"].items())],
        ("tasks created", summary["tasks_created"]),
        *[(f"  owner: {k}", v) for k, v in sorted(summary["tasks_by_owner"].items())],
        ("escalations", summary["escalations"]),
        ("quarantined records", summary["quarantined_records"]),
        ("emails sent (demo-output/outbox)", summary["emails_sent"]),
        ("DAG runs (failed)", f"{summary['dag_runs']} ({summary['dag_runs_failed']})"),
        ("rerun side effects", summary["rerun_side_effects"]),
        ("wall time", f"{summary['wall_time_seconds']} s"),
    ]
    width = max(len(r[0]) for r in rows)
    print("\n" + "=" * (width + 12))
    for label, value in rows:
        print(f"{label:<{width}}  {value:>8}")
    print("=" * (width + 12))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 6, 30))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 9, 22))
    parser.add_argument("--step-days", type=int, default=14)
    parser.add_argument("--accounts", type=int, default=150)
    parser.add_argument("--report-date", type=date.fromisoformat, default=date(2026, 10, 1))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    started = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.rmtree(HOME, ignore_errors=True)
    OUT.mkdir(parents=True)
    print(
        f"closed-loop demo: {args.start} -> {args.report_date}, every {args.step_days} days, seed {args.seed}"
    )
    clock = f"{args.start.isoformat()}T06:00:00Z"
    with LocalStack(
        OUT / "state", seed=args.seed, outbox=OUT / "outbox", start_clock=clock, accounts=args.accounts
    ) as stack:
        cli = stack.airflow(HOME, CLOSED_LOOP_REPORT_DIR=str(OUT / "reports"))
        (OUT / "connections.env").write_text("".join(f"export {k}='{v}'\n" for k, v in cli.extra_env.items()))
        print(
            f"sandbox {stack.sandbox.sf_instance_url}  smtp 127.0.0.1:{stack.smtp.port}  "
            f"AIRFLOW_HOME={HOME.relative_to(REPO)}\n"
        )
        print("preflight: the sandbox org and surveys against the playbook (one log line per check)")
        runs = [run(cli, "closed_loop_preflight", args.start)]
        print()
        days = ticks(args.start, args.end, args.step_days)
        for day in days:
            stack.sandbox.admin("POST", "clock", {"now": f"{day.isoformat()}T12:00:00Z"})
            for dag_id in ("survey_dispatch", "response_intake", "sla_sweep"):
                runs.append(run(cli, dag_id, day))
        stack.sandbox.admin("POST", "clock", {"now": f"{args.report_date.isoformat()}T12:00:00Z"})
        final = ("survey_dispatch", "response_intake", "sla_sweep", "quarterly_report")
        for dag_id in final:
            runs.append(run(cli, dag_id, args.report_date))

        print("\nrerun of the same logical dates (must create nothing):")
        before = snapshot(stack)
        for dag_id in final:
            runs.append(run(cli, dag_id, args.report_date))
        runs.append(run(cli, "sla_sweep", days[-1]))
        after = snapshot(stack)
        rerun_effects = {k: after[k] - before[k] for k in before}

        reports = sorted((OUT / "reports").glob("quarterly_report_*.html"))
        if reports:
            shutil.copy(reports[-1], OUT / "quarterly_report.html")
        summary = summarise(stack, rerun_effects, runs, started)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print_summary(summary)
    print("\nwritten: demo-output/summary.json, demo-output/quarterly_report.html, demo-output/outbox/*.eml")
    print("Airflow UI on the same state: make airflow   (login shown when it starts)")
    ok = summary["dag_runs_failed"] == 0 and summary["rerun_side_effects"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
