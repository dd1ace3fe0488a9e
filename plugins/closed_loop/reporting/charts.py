"""Report charts as PNG bytes (matplotlib, Agg canvas, imported lazily); empty data draws a clear notice."""

from __future__ import annotations

import io
import textwrap

import pandas as pd

from closed_loop.reporting.metrics import QuarterlyMetrics, top_items

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


MAX_ITEMS = 8  # bars per Pareto chart (and rows in its table): the rest folds into "Other"
LABEL_CHARS = 34  # a label line; lines break between words only


def wrap_label(text: str, width: int = LABEL_CHARS, lines: int = 3) -> str:
    """Up to ``lines`` lines of at most ``width`` characters, broken between words, never inside one
    (a word longer than a line stays whole); a longer text ends with an ellipsis after a whole word."""
    words = textwrap.wrap(str(text), width, break_long_words=False, break_on_hyphens=False)
    if len(words) <= lines:
        return "\n".join(words)
    kept = words[:lines]
    kept[-1] = textwrap.shorten(kept[-1] + " " + words[lines], width, placeholder=" \u2026")
    if not kept[-1].endswith("\u2026"):
        kept[-1] += " \u2026"
    return "\n".join(kept)


def pareto_chart(frame: pd.DataFrame, label: str, value: str, title: str, unit: str = "responses") -> bytes:
    """Horizontal bars, largest first, each with its count and the cumulative share; labels on the left
    (room for whole words). ``frame`` is already cut to what the table shows (``top_items``)."""
    if frame.empty or frame[value].sum() == 0:
        return no_data_chart(title)
    from matplotlib.figure import Figure

    labels = [wrap_label(t) for t in frame[label]]
    rows = max(1, len(frame))
    fig = Figure(figsize=(WIDTH_IN, 0.62 * rows + 0.9), dpi=DPI, facecolor="white")
    ax = fig.add_axes((0.42, 0.7 / (0.62 * rows + 0.9), 0.5, 1 - 1.05 / (0.62 * rows + 0.9)))
    y = list(range(rows))
    ax.barh(y, frame[value], color=ACCENT, height=0.6)
    ax.set_yticks(y, labels, fontsize=8.5, color=INK)
    ax.invert_yaxis()
    top = float(frame[value].max())
    for yi, count, cumulative in zip(y, frame[value], frame["cumulative_share"], strict=True):
        note = f"{int(count)}" + (f"  ({cumulative * 100:.0f}% cum.)" if pd.notna(cumulative) else "")
        ax.annotate(note, (count, yi), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8,
                    color=INK)  # fmt: skip
    ax.set_xlim(0, top * 1.45)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel(unit.capitalize(), fontsize=8, color=MUTED)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="x", colors=MUTED, labelsize=8)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="x", color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    fig.text(0.02, 1 - 0.3 / (0.62 * rows + 0.9), title, fontsize=10, color=INK, fontweight="bold")
    _canvas(fig)
    return _png(fig)


def _canvas(fig) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)


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


def pareto_frames(m: QuarterlyMetrics) -> dict[str, pd.DataFrame]:
    """The rows the Pareto charts draw and their tables list (the same ones)."""
    return {
        "questions": top_items(m.by_question, "label", "negatives", MAX_ITEMS),
        "topics": top_items(m.by_topic, "name", "negatives", MAX_ITEMS),
    }


def render_charts(m: QuarterlyMetrics) -> dict[str, bytes]:
    """All report charts keyed by the image name the templates use."""
    frames = pareto_frames(m)
    return {
        "trend": trend_chart(m),
        "pareto_questions": pareto_chart(
            frames["questions"], "label", "negatives", "Negative answers by question"
        ),
        "pareto_topics": pareto_chart(frames["topics"], "name", "negatives", "Negative feedback by topic"),
        "sla": sla_chart(m),
    }
