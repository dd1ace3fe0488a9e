"""Render the quarterly report: HTML email (inline CID charts), plain text, CSV, standalone archive HTML."""

from __future__ import annotations

import base64
import csv
import io
import uuid
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

import jinja2

from closed_loop.reporting.charts import pareto_frames, render_charts
from closed_loop.reporting.metrics import Durations, QuarterlyMetrics, Recovery
from closed_loop.reporting.summary import hours, money, negative_rate_phrase, num, pct, what_changed
from closed_loop.templating import environment

HTML_TEMPLATE, TEXT_TEMPLATE = "quarterly_report.html", "quarterly_report.txt"
CID_DOMAIN = "closedloop.report"

KEY_FIGURES = (  # trend column, label, formatter
    ("surveys_sent", "Surveys sent", str),
    ("response_rate", "Response rate", pct),
    ("responses", "Responses", str),
    ("negative_rate", "Negative rate", pct),
    ("nps", "NPS (main survey)", num),
    ("cases_opened", "Cases opened", str),
    ("cases_closed", "Cases closed", str),
    ("open_cases_at_end", "Cases open at quarter end", str),
    ("sla_on_time_share", "SOP steps on time", pct),
    ("sla_breaches", "SOP steps overdue", str),
    ("cases_escalated", "Cases escalated", str),
    ("escalations", "Escalations raised", str),
)


def subject(m: QuarterlyMetrics) -> str:
    """E.g. "Closed-loop quarterly report 2026-Q3: negative rate 18% (down 4 pts)"."""
    head = f"Closed-loop quarterly report {m.quarter.label}"
    if m.is_empty:
        return f"{head}: no activity recorded"
    if m.current["negative_rate"] is None:
        return f"{head}: no survey responses"
    return f"{head}: negative rate {negative_rate_phrase(m)}"


def _fmt(value: Any, formatter) -> str:
    return "\u2014" if value is None else formatter(value)


def report_context(m: QuarterlyMetrics, summary: str | None = None) -> dict[str, Any]:
    """Everything the templates print, already formatted as text."""
    return {
        **_heading(m, summary),
        "key_figures": _key_figures(m),
        "negative_rate_phrase": negative_rate_phrase(m),
        "trend": _trend_rows(m),
        **_breakdowns(m),
        "sla": _sla_rows(m),
        **_timeliness(m),
        **_volumes(m),
        "recovery": _recovery(m.recovery),
        "workload": m.workload.to_dict("records"),
    }


def _heading(m: QuarterlyMetrics, summary: str | None) -> dict[str, Any]:
    """Quarter, period, subject and headline, the summary paragraph, and whether the quarter was empty."""
    return {
        "quarter": m.quarter.label,
        "previous_quarter": m.quarter.previous().label,
        "period": f"{m.quarter.start:%d %b %Y} \u2013 {m.quarter.end:%d %b %Y}",
        "subject": subject(m),
        "headline": subject(m).split(": ", 1)[-1],
        "summary": summary if summary is not None else what_changed(m),
        "empty": m.is_empty,
    }


def _key_figures(m: QuarterlyMetrics) -> list[dict[str, str]]:
    """Each key figure of this quarter and the previous one, formatted."""
    cur, prev = m.current, m.previous
    return [
        {"label": label, "now": _fmt(cur[k], f), "before": _fmt(prev[k], f)} for k, label, f in KEY_FIGURES
    ]


def _trend_rows(m: QuarterlyMetrics) -> list[dict[str, str]]:
    """One row per trend quarter: the key figures, formatted."""
    return [
        {
            "quarter": label,
            **{k: _fmt(v, f) for (k, _, f), v in zip(KEY_FIGURES, _pick(m.figures(label)), strict=True)},
        }
        for label in m.trend.index
    ]


def _breakdowns(m: QuarterlyMetrics) -> dict[str, list[dict[str, Any]]]:
    """The Pareto tables (questions, topics) as the charts fold them, the signals and the root causes."""
    frames = pareto_frames(m)
    return {
        "questions": [
            {
                "label": r.label,
                "question": r.question,
                "negatives": r.negatives,
                "share": pct(r.share),
                "cumulative": pct(r.cumulative_share),
            }
            for r in frames["questions"].itertuples()
        ],
        "signals": [{"label": r.label, "responses": r.responses} for r in m.signals.itertuples()],
        "topics": [
            {
                "topic": r.name,
                "negatives": r.negatives,
                "share": pct(r.share),
                "cumulative": pct(r.cumulative_share),
            }
            for r in frames["topics"].itertuples()
        ],
        "root_causes": [
            {"cause": r.root_cause[:1].upper() + r.root_cause[1:], "cases": r.cases, "share": pct(r.share)}
            for r in m.root_causes.itertuples()
        ],
    }


def _sla_rows(m: QuarterlyMetrics) -> list[dict[str, Any]]:
    """Per SOP step due in the quarter: how many, on time, and the business days taken."""
    return [
        {
            "step": r.step.replace("_", " ").capitalize(),
            "due": r.steps_due,
            "on_time": r.on_time,
            "share": pct(r.on_time_share),
            "median": num(_nan(r.median_bd)),
            "p90": num(_nan(r.p90_bd)),
        }
        for r in m.sla_by_step.itertuples()
    ]


def _days(d: Durations) -> dict[str, Any]:
    return {"n": d.count, "median": num(d.median), "p90": num(d.p90), "max": num(d.max)}


def _timeliness(m: QuarterlyMetrics) -> dict[str, dict[str, Any]]:
    """Time to acknowledge and to close, open cases' age (days) and the intake delay (hours)."""
    delay = m.intake_delay_hours
    return {
        "ack": _days(m.time_to_acknowledge),
        "close": _days(m.time_to_close),
        "open_age": _days(m.open_case_age_days),
        "intake_delay": {"n": delay.count, "median": hours(delay.median), "p90": hours(delay.p90)},
    }


def _volumes(m: QuarterlyMetrics) -> dict[str, Any]:
    """Open cases' MRR, this quarter's invite and response counts, and the repeat-negative accounts."""
    cur = m.current
    return {
        "open_mrr": money(m.open_cases_mrr) if m.open_cases_mrr or not m.open_cases_without_mrr else "no",
        "open_without_mrr": m.open_cases_without_mrr,
        "responded_invites": cur["responded_invites"],
        "surveys_sent": cur["surveys_sent"],
        "responses": cur["responses"],
        "earlier_invites": m.responses_to_earlier_invites,
        "min_responses": m.min_responses_to_compare,
        "repeat_accounts": m.repeat_negative_accounts,
        "accounts_with_negatives": m.accounts_with_negatives,
    }


def _recovery(r: Recovery) -> dict[str, Any]:
    """Recovery pulses: how many, paired with the negative score, improved, satisfied, escalated."""
    return {
        "pulses": r.pulse_responses,
        "pairs": r.pairs,
        "improved": r.improved,
        "improved_share": pct(r.improved_share),
        "before": num(r.mean_before),
        "after": num(r.mean_after),
        "satisfied": pct(r.satisfied_share),
        "escalated": r.escalated,
    }


def _pick(figures: dict[str, Any]) -> list[Any]:
    return [figures[k] for k, _, _ in KEY_FIGURES]


def _nan(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def _environment(templates_dir: Path | None) -> jinja2.Environment:
    """The project's template environment (HTML autoescaped, strict); default dir: $CLOSED_LOOP_TEMPLATES."""
    return environment(str(templates_dir) if templates_dir else None)


def render_html(context: dict[str, Any], image_src: dict[str, str], templates_dir: Path | None = None) -> str:
    """The HTML body; ``image_src`` maps chart name -> ``cid:...`` or ``data:...`` URI."""
    return _environment(templates_dir).get_template(HTML_TEMPLATE).render(**context, images=image_src)


def render_text(context: dict[str, Any], templates_dir: Path | None = None) -> str:
    return _environment(templates_dir).get_template(TEXT_TEMPLATE).render(**context)


def render_csv(m: QuarterlyMetrics) -> bytes:
    """The figures as ``metric,quarter,value`` CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "quarter", "value"])
    writer.writerows(("" if v is None else v for v in row) for row in m.to_rows())
    return buffer.getvalue().encode("utf-8")


def csv_filename(m: QuarterlyMetrics) -> str:
    return f"closed-loop-quarterly-{m.quarter.label}.csv"


def build_message(
    m: QuarterlyMetrics,
    *,
    sender: str,
    recipients: Iterable[str],
    charts: dict[str, bytes] | None = None,
    summary: str | None = None,
    templates_dir: Path | None = None,
) -> EmailMessage:
    """multipart/mixed[ alternative[ text, related[ html, PNG charts by Content-ID ] ], CSV attachment ]."""
    charts = render_charts(m) if charts is None else charts
    cids = {name: f"<{name}.{uuid.uuid4().hex[:16]}@{CID_DOMAIN}>" for name in charts}  # short: no folding
    context = report_context(m, summary)
    msg = EmailMessage()
    msg["Subject"] = context["subject"]
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = formatdate(usegmt=True)
    msg.set_content(render_text(context, templates_dir))
    msg.add_alternative(
        render_html(context, {n: f"cid:{c[1:-1]}" for n, c in cids.items()}, templates_dir), subtype="html"
    )
    html_part = msg.get_payload()[1]
    for name, png in charts.items():
        html_part.add_related(
            png, "image", "png", cid=cids[name], filename=f"{name}.png", disposition="inline"
        )
    msg.add_attachment(render_csv(m), maintype="text", subtype="csv", filename=csv_filename(m))
    return msg


def render_standalone_html(
    m: QuarterlyMetrics,
    charts: dict[str, bytes] | None = None,
    summary: str | None = None,
    templates_dir: Path | None = None,
) -> str:
    """The same HTML with the charts embedded as ``data:`` URIs: one file that opens in any browser."""
    charts = render_charts(m) if charts is None else charts
    sources = {
        n: "data:image/png;base64," + base64.b64encode(png).decode("ascii") for n, png in charts.items()
    }
    return render_html(report_context(m, summary), sources, templates_dir)
