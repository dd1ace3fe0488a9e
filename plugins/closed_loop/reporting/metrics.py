"""Quarterly closed-loop metrics (SOP step 8 and KPIs) computed from the ledger frames.

Definitions (a quarter is a UTC calendar quarter):
- surveys sent: main-survey invites (kind "invite", status "sent") whose ``sent_at`` falls in the quarter;
- response rate: share of those invites with at least one main-survey response (joined on ``send_key``);
- responses / negatives / NPS: main-survey responses (not recovery pulses) *created* in the quarter;
- every timeliness figure runs on the SOP's clock: business days from the day the response was received
  (the due dates' anchor) to the step's completion, the acknowledgement or the close; intake delay (hours
  from the response to its Case being opened) is a figure of its own;
- SLA per step: case steps *due* in the quarter; on time = completed on or before the due date;
- closed: a Case closed in Salesforce *and* documented (ledger status "closed"); a Case closed without its
  root cause/actions/outcome stays open, as the sweep keeps it;
- root causes: cases *closed* in the quarter; open cases: opened by and not closed at the quarter end,
  with the MRR of their accounts;
- escalations: escalation events raised in the quarter; cases escalated: distinct cases among them;
  SLA breaches: steps the sweep recorded as overdue (a "breach" event or an overdue escalation), once each;
- negative feedback (Pareto): the triggers of ``negative_trigger_kinds`` (negative answers, low scores,
  ...); follow-up requests and at-risk flags are counted beside it (``separate_trigger_kinds``);
- the change of the negative rate is only computed against a quarter with at least
  ``min_responses_to_compare`` responses ("too few to compare" otherwise);
- repeat-negative accounts: more than one negative response in the last four quarters (this one included);
- recovery: pulse responses in the quarter whose case is known, the pulse score vs. the negative one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from closed_loop.reporting.data import ReportData
from closed_loop.reporting.quarters import Quarter

BusinessDays = Callable[[date, date], int]

SOP_STEPS = (
    "acknowledge",
    "investigate",
    "internal_call",
    "customer_call",
    "corrective_action",
    "follow_up",
    "escalate",
    "document",
)
SENT_STATUSES = frozenset({"sent"})
EXCLUDED_STEP_STATUSES = frozenset({"skipped", "cancelled", "canceled", "not_applicable"})
TREND_QUARTERS = 5
TOP_ROOT_CAUSES = 5
RECOMMEND_HEADING = "How likely are you to recommend us to a colleague?"
SATISFACTION_HEADING = "How satisfied are you with how we handled your feedback?"
SATISFIED_CHOICES = frozenset({"Very satisfied", "Satisfied"})
NEGATIVE_TRIGGER_KINDS = frozenset({"negative_answer", "low_score", "unresolved_issue", "alarming_comment"})
SEPARATE_TRIGGER_KINDS = ("follow_up_request", "at_risk")
SIGNAL_LABELS = {
    "follow_up_request": "Asked to be contacted",
    "at_risk": "Account flagged at risk",
    "unresolved_issue": "Issues not resolved",
    "alarming_comment": "Alarming comment",
    "negative_answer": "Negative answer",
    "low_score": "Low recommend score",
}
TOO_FEW = "too_few"
TREND_COLUMNS = (  # the trend frame's columns, in order
    "surveys_sent",
    "responded_invites",
    "response_rate",
    "responses",
    "negatives",
    "negative_rate",
    "nps",
    "cases_opened",
    "cases_closed",
    "open_cases_at_end",
    "steps_due",
    "steps_on_time",
    "sla_on_time_share",
    "escalations",
    "cases_escalated",
    "sla_breaches",
)


@dataclass(frozen=True)
class ReportSettings:
    """What the report needs to know about the survey and the SOP (the playbook's values; these defaults
    match the shipped playbook): the 0-10 recommend question, the pulse's satisfaction question and its
    satisfied answers, and the order of the SOP steps in the SLA table."""

    recommend_heading: str = RECOMMEND_HEADING
    satisfaction_heading: str = SATISFACTION_HEADING
    satisfied_choices: frozenset = SATISFIED_CHOICES
    step_order: tuple = SOP_STEPS
    timezone: str = "UTC"  # the playbook calendar's: which local day a timestamp falls on
    min_responses_to_compare: int = 10
    negative_trigger_kinds: frozenset = NEGATIVE_TRIGGER_KINDS
    separate_trigger_kinds: tuple = SEPARATE_TRIGGER_KINDS
    topic_names: dict | None = None

    def topic_name(self, key: str) -> str:
        names = self.topic_names or {}
        return names.get(key) or str(key).replace("_", " ").capitalize()


@dataclass(frozen=True)
class Durations:
    """A distribution of durations: how many, median, 90th percentile (linear interpolation), maximum."""

    count: int
    median: float | None
    p90: float | None
    max: float | None

    @classmethod
    def of(cls, values: pd.Series) -> Durations:
        values = pd.to_numeric(values, errors="coerce").dropna().astype(float)
        if values.empty:
            return cls(0, None, None, None)
        return cls(len(values), float(values.median()), float(np.percentile(values, 90)), float(values.max()))


@dataclass(frozen=True)
class Recovery:
    """Recovery pulse results: score after the response vs. the score of the negative response."""

    pulse_responses: int
    pairs: int
    mean_before: float | None
    mean_after: float | None
    improved: int
    improved_share: float | None
    satisfied_share: float | None
    escalated: int = 0  # pulses that say the customer remains dissatisfied: escalated (SOP 6)


@dataclass
class QuarterlyMetrics:
    """Everything the quarterly report shows; ``trend`` has one row per quarter (oldest first)."""

    quarter: Quarter
    trend: pd.DataFrame
    negative_rate_change_pts: float | None
    # "up" | "down" | "flat" | "too_few" (previous quarter below the minimum) | None (nothing to compare)
    negative_rate_direction: str | None
    by_topic: pd.DataFrame  # topic, name, negatives, share, cumulative_share
    by_question: pd.DataFrame  # question, row, label, negatives, share, cumulative_share
    signals: pd.DataFrame  # kind, label, responses: follow-up requests, at-risk flags (not in the Pareto)
    root_causes: pd.DataFrame  # root_cause, cases, share
    sla_by_step: pd.DataFrame  # step, steps_due, completed, on_time, on_time_share, median_bd, p90_bd
    time_to_acknowledge: Durations  # business days from the response received
    time_to_close: Durations  # business days from the response received
    intake_delay_hours: Durations  # hours from the response to its Case being opened
    open_case_age_days: Durations  # calendar days at the quarter end; count = open cases
    open_cases_mrr: float  # summed MRR of the accounts with a case open at the quarter end
    open_cases_without_mrr: int  # ... of which accounts have no MRR
    responses_to_earlier_invites: int  # responses this quarter to invites sent in an earlier quarter
    min_responses_to_compare: int
    repeat_negative_accounts: int
    accounts_with_negatives: int
    recovery: Recovery
    workload: pd.DataFrame  # username, cases_opened, open_cases, steps_due, steps_completed

    def figures(self, label: str) -> dict[str, Any]:
        """The trend row of one quarter as plain Python values (NaN as None)."""
        if label not in self.trend.index:
            return dict.fromkeys(self.trend.columns)
        return {c: _clean(self.trend.at[label, c], None) for c in self.trend.columns}

    @property
    def current(self) -> dict[str, Any]:
        return self.figures(self.quarter.label)

    @property
    def previous(self) -> dict[str, Any]:
        return self.figures(self.quarter.previous().label)

    @property
    def open_cases(self) -> int:
        return self.open_case_age_days.count

    @property
    def is_empty(self) -> bool:
        """Nothing happened in the quarter and nothing was left open at its end."""
        c = self.current
        activity = ("surveys_sent", "responses", "cases_opened", "cases_closed", "steps_due", "escalations")
        return not any(c[k] for k in activity) and not self.open_cases and not self.recovery.pulse_responses

    def to_rows(self) -> list[tuple[str, str, Any]]:
        """``(metric, quarter, value)`` rows of every figure, for the CSV attachment."""
        rows: list[tuple[str, str, Any]] = []
        for name in self.trend.columns:
            rows += [(name, str(label), _clean(value)) for label, value in self.trend[name].items()]
        q = self.quarter.label
        scalars: dict[str, Any] = {
            "negative_rate_change_pts": self.negative_rate_change_pts,
            "repeat_negative_accounts": self.repeat_negative_accounts,
            "accounts_with_negatives": self.accounts_with_negatives,
            "open_cases": self.open_cases,
            "open_cases_mrr": self.open_cases_mrr,
            "open_cases_without_mrr": self.open_cases_without_mrr,
            "responses_to_earlier_invites": self.responses_to_earlier_invites,
        }
        for name, d in (
            ("time_to_acknowledge_bd", self.time_to_acknowledge),
            ("time_to_close_bd", self.time_to_close),
            ("intake_delay_hours", self.intake_delay_hours),
            ("open_case_age_days", self.open_case_age_days),
        ):
            scalars |= {f"{name}_{k}": v for k, v in vars(d).items()}
        scalars |= {f"recovery_{k}": v for k, v in vars(self.recovery).items()}
        rows += [(name, q, _clean(value)) for name, value in scalars.items()]
        breakdowns = (
            (self.by_topic, "topic", ("negatives", "share", "cumulative_share"), "negatives_by_topic"),
            (self.by_question, "label", ("negatives", "share", "cumulative_share"), "negatives_by_question"),
            (self.signals, "kind", ("responses",), "signals"),
            (self.root_causes, "root_cause", ("cases", "share"), "root_cause"),
            (
                self.sla_by_step,
                "step",
                ("steps_due", "on_time", "on_time_share", "median_bd", "p90_bd"),
                "sla",
            ),
            (
                self.workload,
                "username",
                ("cases_opened", "open_cases", "steps_due", "steps_completed"),
                "workload",
            ),
        )
        for frame, key, columns, prefix in breakdowns:
            for _, record in frame.iterrows():
                rows += [(f"{prefix}.{c}:{record[key]}", q, _clean(record[c])) for c in columns]
        return rows


def _clean(value: Any, digits: int | None = 4) -> Any:
    """A plain Python value: None for NA/NaN, floats rounded to ``digits`` (None: unrounded)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    return round(value, digits) if isinstance(value, float) and digits is not None else value


def _naive_utc(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values


def _period(values: pd.Series) -> pd.Series:
    return _naive_utc(values).dt.to_period("Q")


def _to_period(q: Quarter) -> pd.Period:
    return pd.Period(year=q.year, quarter=q.number, freq="Q")


def _in_quarter(values: pd.Series, q: Quarter) -> pd.Series:
    return (_period(values) == _to_period(q)).fillna(False).astype(bool)


def _days(values: pd.Series, tz: str = "UTC") -> pd.Series:
    """Timestamps as naive midnight datetimes of their calendar day in ``tz``; dates as they are."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    return values.dt.normalize()


def _busdays(fn: BusinessDays, start: pd.Series, end: pd.Series, tz: str = "UTC") -> pd.Series:
    """Business days from ``start`` to ``end`` per row (NaN where either is missing)."""
    start, end = _days(start, tz), _days(end, tz)
    ok = (start.notna() & end.notna()).to_numpy()
    out = np.full(len(start), np.nan)
    if ok.any():
        a = start.to_numpy()[ok].astype("datetime64[D]")
        b = end.to_numpy()[ok].astype("datetime64[D]")
        if fn is np.busday_count:
            out[ok] = np.busday_count(a, b)
        else:
            out[ok] = [fn(x.item(), y.item()) for x, y in zip(a, b, strict=True)]
    return pd.Series(out, index=start.index)


def _counts(values: pd.Series, periods: list[pd.Period]) -> pd.Series:
    return _period(values.dropna()).value_counts().reindex(periods, fill_value=0).astype(int)


def _pareto(counts: pd.Series, key: str, value: str) -> pd.DataFrame:
    frame = counts.rename(value).rename_axis(key).reset_index()
    frame = frame.sort_values([value, key], ascending=[False, True], kind="stable").reset_index(drop=True)
    total = frame[value].sum()
    frame["share"] = frame[value] / total if total else np.nan
    frame["cumulative_share"] = frame[value].cumsum() / total if total else np.nan
    return frame


def top_items(frame: pd.DataFrame, key: str, value: str, n: int) -> pd.DataFrame:
    """The first ``n - 1`` rows and one "Other (k more)" row folding the rest when there are more than
    ``n``: what the charts and the tables both show, so they always list the same items."""
    if len(frame) <= n:
        return frame.reset_index(drop=True)
    head, tail = frame.head(n - 1), frame.iloc[n - 1 :]
    other = {c: None for c in frame.columns} | {key: f"Other ({len(tail)} more)", value: tail[value].sum()}
    if "share" in frame:
        other["share"] = tail["share"].sum()
    if "cumulative_share" in frame:
        other["cumulative_share"] = frame["cumulative_share"].iloc[-1]
    return pd.concat([head, pd.DataFrame([other])], ignore_index=True)


def _scores(data: ReportData, heading: str = RECOMMEND_HEADING) -> pd.Series:
    """0-10 recommend score per response id: the ``nps`` column, else the answer to the recommend question."""
    answers = data.answers[data.answers["heading"] == heading]
    from_answers = pd.to_numeric(answers["choice_text"], errors="coerce")
    from_answers = pd.Series(from_answers.to_numpy(), index=answers["response_id"].to_numpy())
    from_answers = from_answers[~from_answers.index.duplicated()]
    scores = pd.Series(
        data.responses["nps"].astype("Float64").to_numpy(), index=data.responses["response_id"]
    )
    scores = scores.astype(float)
    return scores.fillna(from_answers.reindex(scores.index)).astype(float)


def _nps(scores: pd.Series) -> float:
    scores = scores.dropna()
    if scores.empty:
        return np.nan
    return float(((scores >= 9).mean() - (scores <= 6).mean()) * 100)


def normalise_root_cause(text: pd.Series) -> pd.Series:
    """Lower-case, single-spaced, without surrounding punctuation; empty text becomes NA."""
    out = text.astype("object").where(text.notna(), "").astype(str).str.lower()
    out = out.str.replace(r"\s+", " ", regex=True).str.strip(" \t.,;:!-")
    return out.where(out != "", None)


def _breaches(events: pd.DataFrame) -> pd.DataFrame:
    """One row per step the sweep recorded as overdue: its "breach" event, or (ledgers from before breach
    events) the overdue escalation of that one step. A grouped escalation names no single step."""
    breach = events[(events["kind"] == "breach") & events["step_key"].notna()]
    legacy = events[
        (events["kind"] == "escalation")
        & (events["reason"] == "overdue")
        & events["step_key"].notna()
        & ~events["step_key"].isin(set(breach["step_key"]))
    ]
    both = pd.concat([breach, legacy]).sort_values("occurred_on", kind="stable")
    return both.drop_duplicates("step_key")


def _trend(data: ReportData, quarters: list[Quarter], settings: ReportSettings) -> pd.DataFrame:
    periods = [_to_period(q) for q in quarters]
    sends = data.survey_sends
    invites = sends[
        (sends["kind"] == "invite") & sends["status"].isin(SENT_STATUSES) & sends["sent_at"].notna()
    ]
    main = data.responses[~data.responses["is_recovery"].astype(bool)]
    responded = invites["send_key"].isin(set(main["send_key"].dropna()))
    scores = _scores(data, settings.recommend_heading)
    main_period = _period(main["date_created"])
    nps = {p: _nps(scores.reindex(main.loc[main_period == p, "response_id"])) for p in periods}
    steps = _live_steps(data, settings.timezone)
    steps_on_time = steps["on_time"]
    events = data.sla_events
    escalations = events[events["kind"] == "escalation"]
    cases = data.cases
    escalated = {
        p: escalations.loc[_period(escalations["occurred_on"]) == p, "case_key"].nunique() for p in periods
    }
    frame = pd.DataFrame(
        {
            "surveys_sent": _counts(invites["sent_at"], periods),
            "responded_invites": _counts(invites.loc[responded, "sent_at"], periods),
            "responses": _counts(main["date_created"], periods),
            "negatives": _counts(main.loc[main["negative"].astype(bool), "date_created"], periods),
            "nps": pd.Series(nps),
            "cases_opened": _counts(cases["opened_at"], periods),
            "cases_closed": _counts(cases["closed_at"], periods),
            "steps_due": _counts(steps["due_date"], periods),
            "steps_on_time": _counts(steps.loc[steps_on_time, "due_date"], periods),
            "escalations": _counts(escalations["occurred_on"], periods),
            "cases_escalated": pd.Series(escalated).astype(int),
            "sla_breaches": _counts(_breaches(events)["occurred_on"], periods),
            "open_cases_at_end": pd.Series({_to_period(q): _open_at(cases, q).sum() for q in quarters}),
        }
    )
    frame["response_rate"] = frame["responded_invites"] / frame["surveys_sent"].replace(0, np.nan)
    frame["negative_rate"] = frame["negatives"] / frame["responses"].replace(0, np.nan)
    frame["sla_on_time_share"] = frame["steps_on_time"] / frame["steps_due"].replace(0, np.nan)
    frame.index = pd.Index([q.label for q in quarters], name="quarter")
    return frame[list(TREND_COLUMNS)]


def _received_on(data: ReportData, tz: str) -> pd.Series:
    """Per case: the day its response was received (the plan's anchor, else the response's local day)."""
    responses = data.responses
    when = responses["date_modified"].fillna(responses["date_created"])
    day = pd.Series(_days(when, tz).to_numpy(), index=responses["response_id"].to_numpy())
    day = day[~day.index.duplicated()]
    cases = data.cases
    fallback = pd.to_datetime(pd.Series(day.reindex(cases["case_key"]).to_numpy(), index=cases.index))
    return cases["received_on"].fillna(fallback).astype("datetime64[ns]")


def _response_time(data: ReportData) -> pd.Series:
    """Per case: when its response was last modified (completed), else created."""
    responses = data.responses
    when = responses["date_modified"].fillna(responses["date_created"])
    when = pd.Series(when.to_numpy(), index=responses["response_id"].to_numpy())
    when = when[~when.index.duplicated()]
    return pd.to_datetime(
        pd.Series(when.reindex(data.cases["case_key"]).to_numpy(), index=data.cases.index), utc=True
    )


def _is_closed(cases: pd.DataFrame) -> pd.Series:
    """Closed and documented: a closed date and the ledger's status "closed" (no status: legacy frame)."""
    status = cases["status"].astype("object").str.lower()
    return cases["closed_at"].notna() & (status.isna() | (status == "closed"))


def _with_closed_cases(data: ReportData) -> ReportData:
    """The data with ``closed_at`` cleared on cases that are not closed and documented."""
    cases = data.cases.assign(closed_at=data.cases["closed_at"].where(_is_closed(data.cases)))
    return ReportData(**{**data.__dict__, "cases": cases})


def _live_steps(data: ReportData, tz: str = "UTC") -> pd.DataFrame:
    """Case steps that count for SLA, with an ``on_time`` flag and the case's received day."""
    steps = data.case_steps[~data.case_steps["status"].isin(EXCLUDED_STEP_STATUSES)]
    cases = data.cases.assign(received_on=_received_on(data, tz))
    steps = steps.merge(cases[["case_key", "opened_at", "received_on"]], on="case_key", how="left")
    done = _days(steps["completed_at"], tz)
    steps["on_time"] = (done.notna() & (done <= steps["due_date"])).astype(bool)
    return steps


def _open_at(cases: pd.DataFrame, q: Quarter) -> pd.Series:
    end = pd.Timestamp(q.next().start, tz="UTC")
    return (cases["opened_at"] < end) & ~(cases["closed_at"] < end)


def _sla_by_step(
    steps: pd.DataFrame, bd: BusinessDays, order: tuple = SOP_STEPS, tz: str = "UTC"
) -> pd.DataFrame:
    steps = steps.assign(
        completed=steps["completed_at"].notna(),
        elapsed_bd=_busdays(bd, steps["received_on"], steps["completed_at"], tz),
    )
    grouped = steps.groupby("step", sort=False)
    frame = pd.DataFrame(
        {
            "steps_due": grouped.size(),
            "completed": grouped["completed"].sum(),
            "on_time": grouped["on_time"].sum(),
            "median_bd": grouped["elapsed_bd"].median(),
            "p90_bd": grouped["elapsed_bd"].quantile(0.9),
        }
    ).astype({"steps_due": int, "completed": int, "on_time": int})
    frame["on_time_share"] = frame["on_time"] / frame["steps_due"]
    rank = {s: i for i, s in enumerate(order)}
    frame = frame.reset_index()
    frame = frame.sort_values("step", key=lambda s: s.map(lambda x: (rank.get(x, len(rank)), x)))
    cols = ["step", "steps_due", "completed", "on_time", "on_time_share", "median_bd", "p90_bd"]
    return frame[cols].reset_index(drop=True)


def _question_label(triggers: pd.DataFrame) -> pd.Series:
    heading = triggers["heading"].where(triggers["heading"].notna() & (triggers["heading"] != ""), None)
    fallback = triggers["kind"].fillna("other").str.replace("_", " ").str.capitalize()
    row = triggers["row"].where(triggers["row"].notna() & (triggers["row"] != ""), None)
    return row.fillna(heading).fillna(fallback)


def _by_question(data: ReportData, negative_ids: pd.Series, kinds: frozenset) -> pd.DataFrame:
    """Negative feedback per question (matrix row): responses whose answer to it fired a negative trigger."""
    triggers = data.triggers
    triggers = triggers[triggers["response_id"].isin(set(negative_ids)) & triggers["kind"].isin(kinds)].copy()
    triggers["label"] = _question_label(triggers)
    triggers["question"] = triggers["heading"].fillna("")
    triggers["row"] = triggers["row"].fillna("")
    per = triggers.drop_duplicates(["response_id", "label"]).groupby("label")["response_id"].count()
    frame = _pareto(per, "label", "negatives")
    first = triggers.drop_duplicates("label").set_index("label")
    frame.insert(0, "question", frame["label"].map(first["question"]))
    frame.insert(1, "row", frame["label"].map(first["row"]))
    return frame


def _signals(data: ReportData, negative_ids: pd.Series, kinds: tuple) -> pd.DataFrame:
    """Responses per signal that is not negative feedback in itself (a request to be contacted, an account
    at risk), in the playbook's order."""
    triggers = data.triggers[data.triggers["response_id"].isin(set(negative_ids))]
    counts = triggers.drop_duplicates(["response_id", "kind"])["kind"].value_counts()
    return pd.DataFrame(
        {
            "kind": list(kinds),
            "label": [SIGNAL_LABELS.get(k, k.replace("_", " ").capitalize()) for k in kinds],
            "responses": [int(counts.get(k, 0)) for k in kinds],
        }
    )


def _workload(data: ReportData, q: Quarter, steps: pd.DataFrame) -> pd.DataFrame:
    cases = data.cases
    parts = {
        "cases_opened": cases.loc[_in_quarter(cases["opened_at"], q), "lp_username"].value_counts(),
        "open_cases": cases.loc[_open_at(cases, q), "lp_username"].value_counts(),
        "steps_due": steps.loc[_in_quarter(steps["due_date"], q), "owner_username"].value_counts(),
        "steps_completed": steps.loc[_in_quarter(steps["completed_at"], q), "owner_username"].value_counts(),
    }
    frame = pd.DataFrame(parts).fillna(0).astype(int).rename_axis("username").reset_index()
    frame = frame[frame["username"].notna()].sort_values("username", kind="stable")
    columns = ["username", *parts]
    return frame.reindex(columns=columns, fill_value=0).astype({c: int for c in parts}).reset_index(drop=True)


def _recovery(data: ReportData, q: Quarter, settings: ReportSettings) -> Recovery:
    responses = data.responses
    pulses = responses[responses["is_recovery"].astype(bool) & _in_quarter(responses["date_created"], q)]
    scores = _scores(data, settings.recommend_heading)
    after = scores.reindex(pulses["response_id"]).to_numpy()
    before = scores.reindex(pulses["case_key"]).to_numpy()
    paired = ~np.isnan(after) & ~np.isnan(before)
    improved = int((after[paired] > before[paired]).sum())
    answers = data.answers[
        data.answers["response_id"].isin(set(pulses["response_id"]))
        & (data.answers["heading"] == settings.satisfaction_heading)
    ].drop_duplicates("response_id")
    return Recovery(
        pulse_responses=len(pulses),
        pairs=int(paired.sum()),
        mean_before=float(before[paired].mean()) if paired.any() else None,
        mean_after=float(after[paired].mean()) if paired.any() else None,
        improved=improved,
        improved_share=improved / int(paired.sum()) if paired.any() else None,
        satisfied_share=float(answers["choice_text"].isin(settings.satisfied_choices).mean())
        if len(answers)
        else None,
        escalated=int(pulses["negative"].fillna(False).astype(bool).sum()),
    )


def _direction(change: float | None) -> str | None:
    if change is None:
        return None
    return "up" if change > 0 else "down" if change < 0 else "flat"


def _open_mrr(data: ReportData, open_now: pd.DataFrame) -> tuple[float, int]:
    """Summed MRR of the distinct accounts with an open case, and how many of them have no MRR."""
    accounts = data.accounts.drop_duplicates("sf_id").set_index("sf_id")["mrr"]
    mrr = accounts.reindex(open_now["account_id"].dropna().unique())
    return float(mrr.sum(skipna=True)), int(mrr.isna().sum())


def _negative_rate_change(trend: pd.DataFrame, q: Quarter, minimum: int) -> tuple[float | None, str | None]:
    """Points the negative rate moved since the previous quarter and the direction; ``(None, TOO_FEW)``
    when that quarter had fewer than ``minimum`` responses, ``(None, None)`` when a rate is missing."""
    prev = q.previous().label
    now, before = trend.loc[q.label, "negative_rate"], trend.loc[prev, "negative_rate"]
    change = None if pd.isna(now) or pd.isna(before) else round(float(now - before) * 100, 1)
    if change is not None and trend.loc[prev, "responses"] < minimum:
        return None, TOO_FEW
    return change, _direction(change)


def _main_negatives(responses: pd.DataFrame) -> pd.DataFrame:
    """Negative responses to the main survey (recovery pulses excluded), of every quarter."""
    return responses[~responses["is_recovery"].astype(bool) & responses["negative"].astype(bool)]


def _by_topic(negatives: pd.DataFrame, settings: ReportSettings) -> pd.DataFrame:
    """Negative responses per topic (a response counts once for each of its topics), with topic names."""
    topics = negatives["topics"].map(lambda t: list(t) if isinstance(t, list | tuple | np.ndarray) else [])
    by_topic = _pareto(topics.explode().dropna().value_counts(), "topic", "negatives")
    by_topic.insert(1, "name", by_topic["topic"].map(settings.topic_name))
    return by_topic


def _root_causes(closed: pd.DataFrame) -> pd.DataFrame:
    """The most frequent normalised root causes of the closed cases, with their shares."""
    causes = normalise_root_cause(closed["root_cause"]).dropna().value_counts()
    return _pareto(causes, "root_cause", "cases").drop(columns="cumulative_share").head(TOP_ROOT_CAUSES)


def _opened_with_ack(cases: pd.DataFrame, steps: pd.DataFrame, q: Quarter) -> pd.DataFrame:
    """Cases opened in the quarter, with ``acked_at``: when their acknowledge step was completed."""
    acks = steps[(steps["step"] == "acknowledge") & steps["completed_at"].notna()]
    acks = acks.drop_duplicates("case_key")[["case_key", "completed_at"]].rename(
        columns={"completed_at": "acked_at"}
    )
    return cases[_in_quarter(cases["opened_at"], q)].merge(acks, on="case_key", how="left")


def _hours(start: pd.Series, end: pd.Series) -> pd.Series:
    return (end - start).dt.total_seconds() / 3600


def _negatives_per_account(main_negatives: pd.DataFrame, q: Quarter) -> pd.Series:
    """Distinct negative responses per account in the last four quarters (this one included)."""
    period = _period(main_negatives["date_created"])
    window = main_negatives[(period >= _to_period(q.previous(3))) & (period <= _to_period(q))]
    return window.groupby("account_id")["response_id"].nunique()


def _responses_to_earlier_invites(data: ReportData, q: Quarter) -> int:
    """Main-survey responses created in the quarter whose invite was sent before it began."""
    responses = data.responses
    all_main = responses[~responses["is_recovery"].astype(bool)]
    arrived = all_main[_in_quarter(all_main["date_created"], q)]
    sends = data.survey_sends.drop_duplicates("send_key").set_index("send_key")["sent_at"]
    sent_at = sends.reindex(arrived["send_key"]).reset_index(drop=True)
    return int((sent_at < pd.Timestamp(q.start, tz="UTC")).sum())


def compute_metrics(
    data: ReportData,
    quarter: Quarter,
    business_days_between: BusinessDays = np.busday_count,
    settings: ReportSettings | None = None,
) -> QuarterlyMetrics:
    """All report figures for ``quarter`` (trend over it and the previous four quarters).

    ``business_days_between(a, b)`` counts business days from date ``a`` to date ``b`` (pass the playbook
    calendar; the default is ``numpy.busday_count``: Mon-Fri, no holidays, ``a`` counted, ``b`` not).
    """
    bd = business_days_between
    settings = settings or ReportSettings()
    tz = settings.timezone
    data = _with_closed_cases(data)
    trend = _trend(data, quarter.trailing(TREND_QUARTERS), settings)
    change, direction = _negative_rate_change(trend, quarter, settings.min_responses_to_compare)
    main_negatives = _main_negatives(data.responses)
    negatives = main_negatives[_in_quarter(main_negatives["date_created"], quarter)]
    cases = data.cases.assign(received_on=_received_on(data, tz), responded_at=_response_time(data))
    closed = cases[_in_quarter(cases["closed_at"], quarter)]
    steps = _live_steps(data, tz)
    opened = _opened_with_ack(cases, steps, quarter)
    open_now = cases[_open_at(cases, quarter)]
    open_mrr, without_mrr = _open_mrr(data, open_now)
    per_account = _negatives_per_account(main_negatives, quarter)
    return QuarterlyMetrics(
        quarter=quarter,
        trend=trend,
        negative_rate_change_pts=change,
        negative_rate_direction=direction,
        by_topic=_by_topic(negatives, settings),
        by_question=_by_question(data, negatives["response_id"], settings.negative_trigger_kinds),
        signals=_signals(data, negatives["response_id"], settings.separate_trigger_kinds),
        root_causes=_root_causes(closed),
        sla_by_step=_sla_by_step(steps[_in_quarter(steps["due_date"], quarter)], bd, settings.step_order, tz),
        time_to_acknowledge=Durations.of(_busdays(bd, opened["received_on"], opened["acked_at"], tz)),
        time_to_close=Durations.of(_busdays(bd, closed["received_on"], closed["closed_at"], tz)),
        intake_delay_hours=Durations.of(_hours(opened["responded_at"], opened["opened_at"])),
        open_case_age_days=Durations.of((pd.Timestamp(quarter.end) - _days(open_now["opened_at"])).dt.days),
        open_cases_mrr=open_mrr,
        open_cases_without_mrr=without_mrr,
        responses_to_earlier_invites=_responses_to_earlier_invites(data, quarter),
        min_responses_to_compare=settings.min_responses_to_compare,
        repeat_negative_accounts=int((per_account > 1).sum()),
        accounts_with_negatives=len(per_account),
        recovery=_recovery(data, quarter, settings),
        workload=_workload(data, quarter, steps),
    )
