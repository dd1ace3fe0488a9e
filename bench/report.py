"""docs/performance.md from the results dict, and the SurveyMonkey daily-budget projection."""

from __future__ import annotations

import math

SM_DAY_LIMIT, SM_RESERVE, SM_MINUTE_LIMIT = 500, 10, 120
QUARTER_DAYS = 91


def budget_projection(results: dict) -> dict:
    """SurveyMonkey calls per day at each scale from the measured runs: steady state (daily runs on a
    quarter's volume spread over 91 days) and a backlog run (a whole quarter at once)."""
    out = {}
    for name, scale in results.get("scales", {}).items():
        steps = scale["steps"]
        responses = scale["world"]["responses"]
        fixed_intake = steps["intake"]["vs_min"]["sm"]["fixed_min"]
        per_day = math.ceil(responses / QUARTER_DAYS)
        daily = {
            "intake": fixed_intake + max(1, math.ceil(per_day / 100)),
            "invites": steps["invites"]["vs_min"]["sm"]["measured"],
            "reminders": steps["reminders"]["vs_min"]["sm"]["measured"],
        }
        backlog = steps["intake"]["vs_min"]["sm"]["measured"]
        out[name] = {
            "responses_per_day": per_day,
            "sm_calls_per_day": sum(daily.values()),
            "sm_calls_per_day_by_step": daily,
            "backlog_quarter_intake_calls": backlog,
            "backlog_fits_one_day": backlog <= SM_DAY_LIMIT - SM_RESERVE,
            "backlog_minutes_at_120_per_minute": round(backlog / SM_MINUTE_LIMIT, 1),
        }
    # daily responses that would exhaust the budget with one intake run a day (invites/reminders as at 100x)
    if out:
        last = list(out.values())[-1]["sm_calls_per_day_by_step"]
        room = SM_DAY_LIMIT - SM_RESERVE - last["invites"] - last["reminders"] - 2
        out["steady_state_exhausted_at_responses_per_day"] = room * 100
        out["steady_state_exhausted_at_scale_x"] = round(room * 100 / (500 / QUARTER_DAYS))
    return out


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.2f}" if x < 100 else f"{x:,.0f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _table(head: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _calls_table(results: dict) -> str:
    rows = []
    for name, scale in results["scales"].items():
        for step, r in scale["steps"].items():
            for system, v in r.get("vs_min", {}).items():
                rows.append(
                    [
                        name,
                        step,
                        {"sf": "Salesforce", "sm": "SurveyMonkey"}[system],
                        v["measured"],
                        v["fixed_min"],
                        v["variable_min"],
                        v["ratio"],
                        v["ratio_variable"],
                    ]
                )
    return _table(
        [
            "scale",
            "step",
            "system",
            "calls",
            "fixed lookups (min)",
            "volume calls (min)",
            "ratio (all)",
            "ratio (volume only)",
        ],
        rows,
    )


def _work(step: str, out: dict) -> str:
    keys = {
        "sync": ("accounts", "contacts"),
        "invites": ("sent", "rejected", "carried_over"),
        "reminders": ("batches", "reminded", "lp_tasks"),
        "intake": ("fetched", "negatives", "cases_planned"),
        "open_cases": ("cases_created", "tasks_created", "alerts_sent"),
        "sweep_read_back": tuple(k for k, v in out.items() if isinstance(v, int))[:4],
    }.get(step, ())
    return ", ".join(f"{k} {out.get(k)}" for k in keys) if "error" not in out else f"ERROR {out['error']}"


def _time_table(results: dict) -> str:
    rows = []
    for name, scale in results["scales"].items():
        base = scale["steps"]["baseline"]["peak_rss_mb"]
        for step, r in scale["steps"].items():
            rows.append(
                [
                    name,
                    step,
                    _work(step, r["out"]),
                    r["seconds"],
                    r["peak_rss_mb"],
                    round(r["peak_rss_mb"] - base, 1),
                ]
            )
    return _table(["scale", "step", "work done", "wall s", "peak RSS MB", "RSS above baseline MB"], rows)


def _naive_table(results: dict) -> str:
    rows = []
    for name, scale in results["scales"].items():
        for label, key in (
            ("SurveyMonkey: read responses", "sm_responses"),
            ("Salesforce: write Tasks", "sf_tasks"),
        ):
            out = scale["naive"][key]["out"]
            if "error" in out:
                rows.append([name, label, "ERROR", out["error"], "", "", "", "", ""])
                continue
            b, n = out["bulk"], out["naive"]
            full = scale["naive"]["full_volume"]["responses" if key == "sm_responses" else "tasks"]
            rows.append(
                [
                    name,
                    label,
                    n["records"],
                    b["calls"],
                    n["calls"],
                    round(n["calls"] / max(1, b["calls"]), 1),
                    round(b["seconds"], 2),
                    round(n["seconds"], 2),
                    round(n["seconds"] / max(b["seconds"], 1e-9), 1),
                ]
                + ([f"sampled {n['records']} of {full}"] if n["records"] < full else ["full volume"])
            )
    return _table(
        [
            "scale",
            "work",
            "records",
            "bulk calls",
            "naive calls",
            "call ratio",
            "bulk s",
            "naive s",
            "time ratio",
            "volume",
        ],
        rows,
    )


def markdown(results: dict) -> str:
    env = results["environment"]
    parts = [
        "# Performance benchmark",
        "",
        f"Generated by `make bench` (`.venv/bin/python bench/run.py`) on {env['when']}: Python "
        f"{env['python']}, "
        f"Airflow {env['airflow']}, pandas {env['pandas']}, {env['cpus']} CPUs; total runtime "
        f"{results['runtime_seconds']} s. Raw figures: `bench/results.json`."
        + (" **Quick (smoke) mode: reduced volume.**" if results.get("quick") else ""),
        "",
        "## Method",
        "",
        "- Scales: *today* 60 accounts / 500 responses a quarter; *10x* 600 / 5,000; *100x* 10,000 / 50,000 "
        "(10% negative by construction). The org (accounts, contacts, go-lives) is the sandbox seed at that "
        "size; the quarter's responses are written into the sandbox state before it starts "
        "(`bench/world.py`: "
        "one email collector + sent invite per past batch, one completed response per recipient, matching "
        "sends in the ledger), because the simulated respondents of a seeded org cannot produce 50,000 "
        "responses. Today's invites and reminders are real pipeline runs on the seeded go-lives.",
        "- Each step is the pipeline function (`plugins/closed_loop/pipeline/*`) run once in a fresh "
        "subprocess (`bench/steps.py`) on the whole quarter's backlog (the worst case for one DAG run); "
        "calls are the sandbox's own counters, reset before each step. `baseline` is the same subprocess "
        "doing nothing (imports, hooks, ledger): memory is reported as peak RSS and RSS above it.",
        "- Theoretical minimum: ceil(n/2000) query pages, ceil(n/200) collection writes, ceil(n/100) "
        "response "
        "pages, per invite batch one collector + one message + ceil(n/500) recipients/bulk + one send, per "
        "reminder batch ceil(n/1000) recipient pages + one message + one send. Fixed lookups (survey title "
        "lookup, survey details, one User query) are listed separately; `ratio (volume only)` excludes them.",
        "- API limits are switched off while measuring (`sm_minute_limit`/`sm_day_limit`/`sf_daily_limit` "
        "1e9); the budget section switches them back on.",
        "",
        "## API calls per pipeline run vs the theoretical minimum",
        "",
        _calls_table(results),
        "",
        "## Wall time and peak memory per step (fresh process each)",
        "",
        _time_table(results),
        "",
        "## Naive baseline in the same run",
        "",
        "Same records, same process: SurveyMonkey responses read 100 per call (what intake does) vs one per "
        "call (`per_page=1` paging; the sandbox, like the v3 API's bulk listing, has no cheaper "
        "single-response read); Salesforce Tasks written with sObject Collections upserts (200 per call) vs "
        "one simple-salesforce `sf.Task.create()` each. The naive side runs on at most 300 records per "
        "scale (`naive_cap`, same records on both sides) to keep `make bench` under 10 minutes; calls "
        "scale exactly linearly, time nearly so.",
        "",
        _naive_table(results),
        "",
    ]
    if "scoring" in results:
        s = results["scoring"]
        parts += [
            "## Scoring throughput",
            "",
            _table(
                ["implementation", "responses", "seconds", "responses/s", "negatives"],
                [
                    [k, s["responses"], s[k]["seconds"], s[k]["per_second"], s[k]["negatives"]]
                    for k in ("vectorised", "naive")
                ],
            ),
            "",
            f"`score_responses` (pandas, vectorised) is {s['speedup']}x the per-answer loop "
            "`score_responses_naive` on the same synthetic responses (same negatives count).",
            "",
        ]
    if "dag_parse" in results:
        d = results["dag_parse"]
        parts += [
            "## DAG file parse time (DagBag load of one file, fresh process, median)",
            "",
            _table(
                ["file", "median ms", "vs empty DAG", "dags", "import errors"],
                [
                    [k, round(v["median_s"] * 1000, 1), v["vs_empty"], v["dags"], v["import_errors"]]
                    for k, v in d.items()
                ],
            ),
            "",
        ]
    parts += _budget_section(results)
    parts += ["## Findings", "", *results.get("findings", ["(see the tables)"]), ""]
    return "\n".join(parts)


def _budget_section(results: dict) -> list[str]:
    proj = results.get("sm_budget_projection") or {}
    rows = [
        [
            k,
            v["responses_per_day"],
            v["sm_calls_per_day"],
            v["backlog_quarter_intake_calls"],
            "yes" if v["backlog_fits_one_day"] else "NO",
            v["backlog_minutes_at_120_per_minute"],
        ]
        for k, v in proj.items()
        if isinstance(v, dict)
    ]
    out = [
        "## SurveyMonkey daily budget (500 calls/day, private app)",
        "",
        _table(
            [
                "scale",
                "responses/day",
                "SM calls/day (daily runs)",
                "quarter backlog: intake calls",
                "backlog fits one day",
                "backlog minutes at 120/min",
            ],
            rows,
        ),
        "",
    ]
    if "steady_state_exhausted_at_scale_x" in proj:
        out += [
            f"With daily runs the budget would only run out near "
            f"{proj['steady_state_exhausted_at_scale_x']:,}x "
            f"today's volume (~{proj['steady_state_exhausted_at_responses_per_day']:,} responses/day). A "
            "quarter's backlog in one run (first run, long outage, backfill) exceeds it at 100x.",
            "",
        ]
    demo = results.get("sm_budget")
    if demo:
        out += [
            f"Demonstration (sandbox `sm_day_limit={demo['sm_day_limit']}`, hook `daily_reserve="
            f"{demo['daily_reserve']}`):",
            "",
        ]
        for run in demo["runs"]:
            out.append(f"- {run['label']}: {run['sm_calls']['total']} SM calls -> `{_brief(run['out'])}`")
        out += [
            "",
            f"Invites sent in total: {demo['invites_sent_total']}, duplicates: {demo['duplicate_invites']}.",
            "",
        ]
    return out


def _brief(out: dict) -> str:
    keep = (
        "error",
        "message",
        "sent",
        "carried_over",
        "reconciled",
        "due",
        "fetched",
        "recorded",
        "accounts",
    )
    return ", ".join(f"{k}={out[k]}" for k in keep if k in out)


def findings(results: dict) -> list[str]:
    """Short findings computed from the figures (so they stay true on every run)."""
    out = []
    scales = results.get("scales", {})
    over = []
    for name, scale in scales.items():
        for step, r in scale["steps"].items():
            for system, v in r.get("vs_min", {}).items():
                if v["ratio_variable"] is not None and v["ratio_variable"] > 1.1:
                    over.append(f"{step}/{system} at {name}: {v['measured']} calls vs minimum {v['min']} "
                                f"({v['ratio']}x)")  # fmt: skip
    out.append("- Calls above 1.1x the minimum: " + ("; ".join(over) if over else "none") + ".")
    if "sweep_read_back" in {s for sc in scales.values() for s in sc["steps"]}:
        out.append("- `sweep.read_back` reads Cases and Tasks with `Id IN (...)` chunks of 300 (URL "
                   "length), so it needs ceil(n/300) queries where one filtered SOQL (e.g. open "
                   "survey Cases, paged 2000 at a time) needs ceil(n/2000).")  # fmt: skip
    if len(scales) > 1:
        first, last = list(scales.values())[0], list(scales.values())[-1]
        grow = []
        for step in last["steps"]:
            if step == "baseline" or step not in first["steps"]:
                continue
            a = first["steps"][step]["peak_rss_mb"] - first["steps"]["baseline"]["peak_rss_mb"]
            b = last["steps"][step]["peak_rss_mb"] - last["steps"]["baseline"]["peak_rss_mb"]
            grow.append(f"{step} {a:+.0f} -> {b:+.0f} MB")
        out.append(f"- Memory above the baseline process, {list(scales)[0]} -> {list(scales)[-1]}: "
                   + "; ".join(grow) + ".")  # fmt: skip
        intake = last["steps"].get("intake")
        if intake:
            grown = intake["peak_rss_mb"] - last["steps"]["baseline"]["peak_rss_mb"]
            per_k = grown / max(1, intake["out"].get("fetched", 1)) * 1000
            out.append(
                f"- intake is not flat: it holds the whole batch (`intake._fetch` keeps every raw "
                f"response in a "
                f"dict, then `score_responses` builds one frame and `ledger.record_responses` writes "
                f"it in one "
                f"transaction): about {per_k:.0f} MB per 1,000 responses ({grown:,.0f} MB at "
                f"{intake['out'].get('fetched', 0):,}). Streaming it per page (or per few pages) with the "
                "watermark advanced per chunk would keep it flat; a daily run (~550 responses at "
                "100x) is small."
            )
    naive = [
        (name, key, sc["naive"][key]["out"])
        for name, sc in scales.items()
        for key in ("sm_responses", "sf_tasks")
        if "error" not in sc["naive"][key]["out"]
    ]
    if naive:
        text = "; ".join(
            f"{name} {'SM reads' if key == 'sm_responses' else 'SF Task writes'} "
            f"{o['naive']['calls'] / max(1, o['bulk']['calls']):.0f}x calls, "
            f"{o['naive']['seconds'] / max(o['bulk']['seconds'], 1e-9):.0f}x time"
            for name, key, o in naive
        )
        out.append(f"- Naive vs bulk on the same records: {text}.")
    demo = results.get("sm_budget")
    if demo:
        failed = [r for r in demo["runs"] if r["out"].get("error")]
        carried = [r for r in demo["runs"] if r["out"].get("carried_over")]
        if failed:
            out.append(
                f"- Budget: with {demo['sm_day_limit']} calls/day, '{failed[0]['label']}' failed with "
                f"{failed[0]['out']['error']} instead of carrying over: in a fresh process (every Airflow "
                "task) `budget_guard` has not seen a rate-limit header yet, so it lets the batch start and "
                "the 429 arrives mid-batch. Nothing is lost or duplicated (the next day's rerun "
                "reconciled the "
                f"intents: {demo['invites_sent_total']} invites, {demo['duplicate_invites']} "
                f"duplicates), but "
                "the task fails and its retries spend more calls."
            )
        elif carried:
            out.append(
                f"- Budget: with {demo['sm_day_limit']} calls/day, '{carried[0]['label']}' ran out mid-batch "
                "and ended cleanly reporting `budget_exhausted` (no task failure, no retries spending "
                "calls); the next day's rerun of the same logical date reconciled the intents: "
                f"{demo['invites_sent_total']} invites sent, {demo['duplicate_invites']} duplicates."
            )
    if "scoring" in results:
        out.append(
            f"- Scoring: {results['scoring']['vectorised']['per_second']:,} responses/s vectorised vs "
            f"{results['scoring']['naive']['per_second']:,} naive ({results['scoring']['speedup']}x)."
        )
    if "dag_parse" in results:
        worst = max((v["vs_empty"], k) for k, v in results["dag_parse"].items())
        base = results["dag_parse"]["(empty DAG)"]["median_s"]
        slow = results["dag_parse"][worst[1]]["median_s"]
        verdict = "met" if worst[0] <= 1.5 else "NOT met"
        out.append(
            f"- DAG parse: slowest file {worst[1]} at {worst[0]}x the empty DAG (target <= 1.5x: {verdict}); "
            f"in absolute terms {slow * 1000:.1f} ms vs {base * 1000:.1f} ms. The project's imports cost "
            "about 0.9 ms (pandas, requests, simple_salesforce and the playbook are imported only inside "
            "execute); the rest is building the DAG's tasks, params and docs, which an empty DAG does not "
            "have. A custom asset URI scheme cost 29 ms more (URI-normaliser lookup) and was removed."
        )
    return out
