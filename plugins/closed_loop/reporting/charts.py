"""Report charts as PNG bytes (matplotlib, Agg canvas, imported lazily); empty data draws a clear notice."""

from __future__ import annotations

import io
import textwrap

import pandas as pd

from closed_loop.reporting.metrics import QuarterlyMetrics

WIDTH_IN, HEIGHT_IN, DPI = 6.4, 3.0, 150
INK, MUTED, ACCENT, SECOND, GOOD = "#1f2937", "#6b7280", "#c2410c", "#2563eb", "#15803d"
NO_DATA = "No data this quarter"


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _style(ax, title: str) -> None:
    ax.set_title(title, loc="left", fontsize=10, color=INK, fontweight="bold")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=MUTED, labelsize=8)
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def no_data_chart(title: str, message: str = NO_DATA) -> bytes:
    """A framed notice instead of an empty or broken chart."""
    fig = _figure()
    ax = fig.add_axes((0.02, 0.04, 0.96, 0.84))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor("#d1d5db")
    ax.set_facecolor("#f9fafb")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=14, color=MUTED, transform=ax.transAxes)
    fig.text(0.02, 0.93, title, fontsize=10, color=INK, fontweight="bold")
    return _png(fig)


def _pct_axis(ax, top: float = 100) -> None:
    from matplotlib.ticker import PercentFormatter

    ax.set_ylim(0, top)
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=0))


def trend_chart(m: QuarterlyMetrics) -> bytes:
    """Negative rate (and response rate) per quarter over the trend window."""
    title = "Negative rate by quarter"
    trend = m.trend
    if trend["negative_rate"].isna().all():
        return no_data_chart(title, "No survey responses in these quarters")
    fig = _figure()
    ax = fig.add_subplot()
    x = range(len(trend))
    neg = trend["negative_rate"].astype(float) * 100
    resp = trend["response_rate"].astype(float) * 100
    ax.plot(
        x, resp, color=SECOND, linestyle="--", marker="o", markersize=3, linewidth=1.2, label="Response rate"
    )
    ax.plot(x, neg, color=ACCENT, marker="o", linewidth=2.2, label="Negative rate")
    for xi, value in zip(x, neg, strict=True):
        if pd.notna(value):
            ax.annotate(
                f"{value:.0f}%",
                (xi, value),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
                color=ACCENT,
                fontweight="bold",
            )
    ax.set_xticks(list(x), list(trend.index))
    _pct_axis(ax, max(100.0, float(pd.concat([neg, resp]).max(skipna=True) or 0) + 10))
    _style(ax, title)
    ax.legend(loc="upper right", fontsize=7, frameon=False, ncols=2)
    fig.tight_layout()
    return _png(fig)


def pareto_chart(frame: pd.DataFrame, label: str, value: str, title: str, max_bars: int = 8) -> bytes:
    """Bars sorted by count with the cumulative share as a line (right axis)."""
    if frame.empty or frame[value].sum() == 0:
        return no_data_chart(title)
    frame = frame.head(max_bars)
    fig = _figure()
    ax = fig.add_subplot()
    x = range(len(frame))
    ax.bar(x, frame[value], color=ACCENT, width=0.6)
    width = max(11, 84 // len(frame))
    labels = [textwrap.shorten(str(t), 60, placeholder="…") for t in frame[label]]
    ax.set_xticks(list(x), [textwrap.fill(t, width) for t in labels], fontsize=6.5)
    ax.set_ylabel("Negative responses", fontsize=8, color=MUTED)
    ax.yaxis.get_major_locator().set_params(integer=True)
    _style(ax, title)
    right = ax.twinx()
    right.plot(x, frame["cumulative_share"] * 100, color=INK, marker="o", markersize=3, linewidth=1.4)
    _pct_axis(right, 105)
    right.tick_params(colors=MUTED, labelsize=8)
    right.spines["top"].set_visible(False)
    fig.tight_layout()
    return _png(fig)


def sla_chart(m: QuarterlyMetrics) -> bytes:
    """Share of steps completed on time, per SOP step due in the quarter."""
    title = "SOP steps completed on time"
    sla = m.sla_by_step
    if sla.empty:
        return no_data_chart(title)
    fig = _figure()
    ax = fig.add_subplot()
    x = range(len(sla))
    share = sla["on_time_share"].astype(float) * 100
    ax.bar(x, share, color=GOOD, width=0.6)
    for xi, (value, on_time, due) in enumerate(zip(share, sla["on_time"], sla["steps_due"], strict=True)):
        ax.annotate(
            f"{value:.0f}%\n{on_time}/{due}",
            (xi, value),
            textcoords="offset points",
            xytext=(0, 3),
            ha="center",
            fontsize=7,
            color=INK,
        )
    ax.set_xticks(list(x), [s.replace("_", " ") for s in sla["step"]], fontsize=7, rotation=25, ha="right")
    _pct_axis(ax, 125)
    ax.set_yticks([0, 25, 50, 75, 100])
    _style(ax, title)
    fig.tight_layout()
    return _png(fig)


def render_charts(m: QuarterlyMetrics) -> dict[str, bytes]:
    """All report charts keyed by the image name the templates use."""
    return {
        "trend": trend_chart(m),
        "pareto_questions": pareto_chart(m.by_question, "label", "negatives", "Negative answers by question"),
        "pareto_topics": pareto_chart(m.by_topic, "topic", "negatives", "Negative feedback by topic"),
        "sla": sla_chart(m),
    }
