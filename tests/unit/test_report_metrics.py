"""Report metrics vs. an independent plain-Python computation on a synthetic multi-quarter ledger."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from closed_loop.reporting.data import ReportData
from closed_loop.reporting.metrics import compute_metrics
from closed_loop.reporting.quarters import Quarter
from devtools.synthetic import synthetic_report_data

REPORTED = Quarter(2026, 3)
HOLIDAY = date(2026, 8, 3)  # a Monday inside the reported quarter


def qlabel(value) -> str | None:
    """Quarter label of a timestamp/date the long way round (None for missing)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    day = value.date() if isinstance(value, datetime) else value
    return f"{day.year}-Q{(day.month + 2) // 3}"


def day_of(value) -> date | None:
    if value is None or value is pd.NaT:
        return None
    return value.date() if isinstance(value, datetime) else value


def weekdays(a: date, b: date, holidays=()) -> int:
    """Business days in [a, b) by walking the calendar; negative when b < a (numpy's convention)."""
    step, sign = (1, 1) if b >= a else (-1, -1)
    start, stop = (a, b) if b >= a else (b, a)
    n, d = 0, start
    while d < stop:
        n += d.weekday() < 5 and d not in holidays
        d += timedelta(days=1)
    return sign * n if step == 1 else -n


def p90(values):
    values = sorted(values)
    return values[0] if len(values) == 1 else statistics.quantiles(values, n=10, method="inclusive")[8]


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts with Python datetimes/dates and None for missing values."""
    out = []
    for row in frame.astype(object).to_dict("records"):
        clean = {}
        for k, v in row.items():
            if v is pd.NaT or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                v = None
            elif isinstance(v, pd.Timestamp):
                v = v.to_pydatetime() if v.tzinfo else v.date()
            clean[k] = v
        out.append(clean)
    return out


@pytest.fixture(scope="module")
def ledger() -> ReportData:
    return synthetic_report_data(REPORTED.trailing(7), seed=11, invites_per_quarter=90)


@pytest.fixture(scope="module")
def raw(ledger) -> dict[str, list[dict]]:
    return {name: records(getattr(ledger, name)) for name in ledger.__dataclass_fields__}


def expected_trend(raw, label):
    invites = [
        s for s in raw["survey_sends"] if s["kind"] == "invite" and s["status"] == "sent" and s["sent_at"]
    ]
    invites = [s for s in invites if qlabel(s["sent_at"]) == label]
    main = [r for r in raw["responses"] if not r["is_recovery"]]
    answered = {r["send_key"] for r in main}
    in_q = [r for r in main if qlabel(r["date_created"]) == label]
    recommend = {
        a["response_id"]: int(a["choice_text"])
        for a in raw["answers"]
        if a["heading"] == "How likely are you to recommend us to a colleague?"
    }
    scores = [r["nps"] if r["nps"] is not None else recommend.get(r["response_id"]) for r in in_q]
    scores = [s for s in scores if s is not None]
    live = [s for s in raw["case_steps"] if s["status"] != "skipped" and qlabel(s["due_date"]) == label]
    on_time = [s for s in live if s["completed_at"] and s["completed_at"].date() <= s["due_date"]]
    end = Quarter.parse(label).end
    open_at_end = [
        c
        for c in raw["cases"]
        if c["opened_at"].date() <= end and (c["closed_at"] is None or c["closed_at"].date() > end)
    ]
    events = Counter(e["kind"] for e in raw["sla_events"] if qlabel(e["occurred_on"]) == label)
    return {
        "surveys_sent": len(invites),
        "responded_invites": sum(s["send_key"] in answered for s in invites),
        "responses": len(in_q),
        "negatives": sum(bool(r["negative"]) for r in in_q),
        "nps": (100 * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)) / len(scores))
        if scores
        else None,
        "cases_opened": sum(qlabel(c["opened_at"]) == label for c in raw["cases"]),
        "cases_closed": sum(qlabel(c["closed_at"]) == label for c in raw["cases"]),
        "open_cases_at_end": len(open_at_end),
        "steps_due": len(live),
        "steps_on_time": len(on_time),
        "escalations": events["escalation"],
        "sla_breaches": events["breach"],
    }


@pytest.fixture(scope="module")
def metrics(ledger):
    return compute_metrics(ledger, REPORTED)


def test_the_synthetic_ledger_is_rich_enough(raw, metrics):
    """Guards the other tests against a generator that stops producing the cases they check."""
    c = metrics.current
    assert c["negatives"] >= 5 and c["steps_due"] >= 20 and metrics.open_cases >= 1
    assert metrics.recovery.pairs >= 2 and len(metrics.root_causes) >= 2 and len(metrics.workload) >= 2


@pytest.mark.parametrize("back", range(5))
def test_trend_matches_independent_counts(raw, metrics, back):
    label = REPORTED.previous(back).label
    expected = expected_trend(raw, label)
    got = metrics.figures(label)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    assert got["response_rate"] == pytest.approx(expected["responded_invites"] / expected["surveys_sent"])
    assert got["negative_rate"] == pytest.approx(expected["negatives"] / expected["responses"])
    assert got["sla_on_time_share"] == pytest.approx(expected["steps_on_time"] / expected["steps_due"])


def test_negative_rate_change_and_direction(raw, metrics):
    now, before = (expected_trend(raw, q.label) for q in (REPORTED, REPORTED.previous()))
    change = round((now["negatives"] / now["responses"] - before["negatives"] / before["responses"]) * 100, 1)
    assert metrics.negative_rate_change_pts == change
    assert metrics.negative_rate_direction == ("up" if change > 0 else "down" if change < 0 else "flat")


def negatives_in_quarter(raw):
    return [
        r
        for r in raw["responses"]
        if not r["is_recovery"] and r["negative"] and qlabel(r["date_created"]) == REPORTED.label
    ]


def test_pareto_by_topic_and_by_question(raw, metrics):
    negatives = negatives_in_quarter(raw)
    topics = Counter(t for r in negatives for t in r["topics"])
    assert dict(zip(metrics.by_topic["topic"], metrics.by_topic["negatives"], strict=True)) == dict(topics)
    ids = {r["response_id"] for r in negatives}
    pairs = {(t["response_id"], t["row"] or t["heading"]) for t in raw["triggers"] if t["response_id"] in ids}
    per_question = Counter(label for _, label in pairs)
    got = dict(zip(metrics.by_question["label"], metrics.by_question["negatives"], strict=True))
    assert got == dict(per_question)
    for frame in (metrics.by_topic, metrics.by_question):
        counts = list(frame["negatives"])
        assert counts == sorted(counts, reverse=True)
        assert frame["cumulative_share"].iloc[-1] == pytest.approx(1.0)
        assert frame["cumulative_share"].iloc[0] == pytest.approx(counts[0] / sum(counts))


def test_top_root_causes_are_normalised_counts(raw, metrics):
    closed = [c for c in raw["cases"] if qlabel(c["closed_at"]) == REPORTED.label and c["root_cause"]]
    counts = Counter(" ".join(c["root_cause"].split()).lower().strip(" .,;:!-") for c in closed)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert list(zip(metrics.root_causes["root_cause"], metrics.root_causes["cases"], strict=True)) == top
    assert "missed requirements in kickoff" in counts  # the variants in the generator were merged
    assert metrics.root_causes["share"].iloc[0] == pytest.approx(top[0][1] / sum(counts.values()))


def received(raw) -> dict:
    """Case key -> the day its response was received (last modified, else created): the SOP's clock."""
    responses = {r["response_id"]: r for r in raw["responses"]}
    out = {}
    for c in raw["cases"]:
        r = responses[c["case_key"]]
        out[c["case_key"]] = (r["date_modified"] or r["date_created"]).date()
    return out


def expected_sla(raw, business_days):
    opened = received(raw)
    by_step = defaultdict(list)
    for s in raw["case_steps"]:
        if s["status"] != "skipped" and qlabel(s["due_date"]) == REPORTED.label:
            by_step[s["step"]].append(s)
    out = {}
    for step, rows in by_step.items():
        done = [r for r in rows if r["completed_at"]]
        elapsed = [business_days(opened[r["case_key"]], r["completed_at"].date()) for r in done]
        out[step] = {
            "steps_due": len(rows),
            "on_time": sum(r["completed_at"].date() <= r["due_date"] for r in done),
            "median_bd": statistics.median(elapsed) if elapsed else None,
            "p90_bd": p90(elapsed) if elapsed else None,
        }
    return out


def assert_sla(metrics, expected):
    got = metrics.sla_by_step.set_index("step")
    assert set(got.index) == set(expected)
    order = [
        "acknowledge",
        "investigate",
        "internal_call",
        "customer_call",
        "corrective_action",
        "follow_up",
        "escalate",
        "document",
    ]
    assert list(got.index) == [s for s in order if s in expected]
    for step, values in expected.items():
        for key, value in values.items():
            assert got.at[step, key] == pytest.approx(value), (step, key)
        assert got.at[step, "on_time_share"] == pytest.approx(values["on_time"] / values["steps_due"])


def test_sla_per_step_with_default_calendar(raw, metrics):
    assert_sla(metrics, expected_sla(raw, weekdays))


def test_sla_uses_the_calendar_it_is_given(ledger, raw):
    calls = []

    def calendar(a: date, b: date) -> int:
        calls.append((a, b))
        return weekdays(a, b, holidays={HOLIDAY})

    m = compute_metrics(ledger, REPORTED, business_days_between=calendar)
    assert calls and all(isinstance(a, date) and isinstance(b, date) for a, b in calls)
    assert_sla(m, expected_sla(raw, calendar))
    default = compute_metrics(ledger, REPORTED)
    assert not m.sla_by_step[["median_bd", "p90_bd"]].equals(default.sla_by_step[["median_bd", "p90_bd"]])


def test_time_to_acknowledge_and_close(raw, metrics):
    acked = {
        s["case_key"]: s["completed_at"].date()
        for s in raw["case_steps"]
        if s["step"] == "acknowledge" and s["completed_at"] and s["status"] != "skipped"
    }
    start = received(raw)
    ack = [
        weekdays(start[c["case_key"]], acked[c["case_key"]])
        for c in raw["cases"]
        if qlabel(c["opened_at"]) == REPORTED.label and c["case_key"] in acked
    ]
    close = [
        weekdays(start[c["case_key"]], c["closed_at"].date())
        for c in raw["cases"]
        if qlabel(c["closed_at"]) == REPORTED.label
    ]
    for got, values in ((metrics.time_to_acknowledge, ack), (metrics.time_to_close, close)):
        assert got.count == len(values)
        assert got.median == pytest.approx(statistics.median(values))
        assert got.p90 == pytest.approx(p90(values))
        assert got.max == max(values)


def test_open_cases_and_their_age(raw, metrics):
    end = REPORTED.end
    ages = [
        (end - c["opened_at"].date()).days
        for c in raw["cases"]
        if c["opened_at"].date() <= end and (c["closed_at"] is None or c["closed_at"].date() > end)
    ]
    assert metrics.open_cases == len(ages) == metrics.current["open_cases_at_end"]
    assert metrics.open_case_age_days.median == pytest.approx(statistics.median(ages))
    assert metrics.open_case_age_days.max == max(ages)


def test_repeat_negative_accounts(raw, metrics):
    window = {q.label for q in REPORTED.trailing(4)}
    per_account = Counter(
        r["account_id"]
        for r in raw["responses"]
        if not r["is_recovery"] and r["negative"] and qlabel(r["date_created"]) in window
    )
    assert metrics.accounts_with_negatives == len(per_account)
    assert metrics.repeat_negative_accounts == sum(n > 1 for n in per_account.values())


def test_recovery_compares_pulse_score_with_the_negative_one(raw, metrics):
    answers = defaultdict(dict)
    for a in raw["answers"]:
        answers[a["response_id"]][a["heading"]] = a["choice_text"]

    def score(r):
        if r["nps"] is not None:
            return r["nps"]
        text = answers[r["response_id"]].get("How likely are you to recommend us to a colleague?")
        return int(text) if text is not None else None

    by_id = {r["response_id"]: r for r in raw["responses"]}
    pulses = [r for r in raw["responses"] if r["is_recovery"] and qlabel(r["date_created"]) == REPORTED.label]
    pairs = [(score(by_id[p["case_key"]]), score(p)) for p in pulses if p["case_key"] in by_id]
    pairs = [(b, a) for b, a in pairs if b is not None and a is not None]
    satisfied = [
        answers[p["response_id"]].get("How satisfied are you with how we handled your feedback?")
        for p in pulses
    ]
    satisfied = [s for s in satisfied if s is not None]
    r = metrics.recovery
    assert (r.pulse_responses, r.pairs) == (len(pulses), len(pairs))
    assert r.improved == sum(a > b for b, a in pairs)
    assert r.improved_share == pytest.approx(r.improved / len(pairs))
    assert r.mean_before == pytest.approx(statistics.mean(b for b, _ in pairs))
    assert r.mean_after == pytest.approx(statistics.mean(a for _, a in pairs))
    assert r.satisfied_share == pytest.approx(
        sum(s in ("Very satisfied", "Satisfied") for s in satisfied) / len(satisfied)
    )


def test_workload_counts_per_person_sorted_by_name(raw, metrics):
    end = REPORTED.end
    expected = defaultdict(lambda: [0, 0, 0, 0])
    for c in raw["cases"]:
        if qlabel(c["opened_at"]) == REPORTED.label:
            expected[c["lp_username"]][0] += 1
        if c["opened_at"].date() <= end and (c["closed_at"] is None or c["closed_at"].date() > end):
            expected[c["lp_username"]][1] += 1
    for s in raw["case_steps"]:
        if s["status"] == "skipped":
            continue
        if qlabel(s["due_date"]) == REPORTED.label:
            expected[s["owner_username"]][2] += 1
        if qlabel(s["completed_at"]) == REPORTED.label:
            expected[s["owner_username"]][3] += 1
    got = metrics.workload
    assert list(got["username"]) == sorted(expected)
    for row in got.itertuples():
        assert [row.cases_opened, row.open_cases, row.steps_due, row.steps_completed] == expected[
            row.username
        ]


def test_csv_rows_carry_every_trend_figure(metrics):
    rows = {(metric, quarter): value for metric, quarter, value in metrics.to_rows()}
    for q in REPORTED.trailing(5):
        figures = metrics.figures(q.label)
        for name, value in figures.items():
            assert rows[(name, q.label)] == (None if value is None else pytest.approx(value, abs=1e-4))
    assert rows[("negative_rate_change_pts", REPORTED.label)] == metrics.negative_rate_change_pts
    top = metrics.by_question.iloc[0]
    assert rows[(f"negatives_by_question.negatives:{top['label']}", REPORTED.label)] == top["negatives"]
    assert all(isinstance(v, (int, float, str, type(None))) for _, _, v in metrics.to_rows())


def test_empty_ledger_gives_an_empty_but_complete_result():
    m = compute_metrics(ReportData(), REPORTED)
    assert m.is_empty
    assert list(m.trend.index) == [q.label for q in REPORTED.trailing(5)]
    assert m.current["surveys_sent"] == 0 and m.current["negative_rate"] is None
    assert m.negative_rate_direction is None and m.negative_rate_change_pts is None
    for frame in (m.by_topic, m.by_question, m.root_causes, m.sla_by_step, m.workload):
        assert frame.empty and len(frame.columns) >= 3
    assert m.recovery.pairs == 0 and m.recovery.improved_share is None
    assert m.time_to_close.count == 0 and m.time_to_close.median is None
    assert {metric for metric, _, _ in m.to_rows()} >= {"surveys_sent", "negative_rate", "open_cases"}


def test_partial_frames_and_missing_columns_are_filled():
    responses = pd.DataFrame(
        {
            "response_id": ["r1", "r2"],
            "negative": [True, None],
            "date_created": ["2026-08-01T10:00:00Z", "2026-08-02T10:00:00Z"],
        }
    )
    m = compute_metrics(ReportData(responses=responses), REPORTED)
    assert (m.current["responses"], m.current["negatives"], m.current["negative_rate"]) == (2, 1, 0.5)
    assert not m.is_empty and m.by_topic.empty
    with pytest.raises(KeyError, match="unknown ledger tables"):
        ReportData.from_frames({"response": responses})


def test_quarter_boundaries_are_utc_calendar_quarters():
    responses = pd.DataFrame(
        {
            "response_id": ["late", "early"],
            "date_created": [pd.Timestamp("2026-09-30T23:59:59Z"), pd.Timestamp("2026-10-01T00:00:00Z")],
        }
    )
    m = compute_metrics(ReportData(responses=responses), REPORTED)
    assert m.figures("2026-Q3")["responses"] == 1
    assert compute_metrics(ReportData(responses=responses), REPORTED.next()).current["responses"] == 1
