"""The one-paragraph "what changed" summary, written from the numbers."""

from __future__ import annotations

from closed_loop.reporting.metrics import TOO_FEW, QuarterlyMetrics


def pct(share: float | None) -> str:
    """0.183 -> "18%"; None -> "n/a"."""
    return "n/a" if share is None else f"{share * 100:.0f}%"


def pts(points: float) -> str:
    """Percentage points without a useless ".0": 4.0 -> "4", 9.7 -> "9.7"."""
    points = abs(points)
    return f"{points:.0f}" if points == round(points) else f"{points:.1f}"


def num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    text = f"{value:.0f}" if value == round(value) else f"{value:.1f}"
    return f"{text} {unit}".rstrip()


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else words or word + 's'}"


def money(value: float) -> str:
    """4250.0 -> "$4,250"."""
    return f"${value:,.0f}"


def hours(value: float | None) -> str:
    """A duration in hours, in days past two days: 3.5 -> "3.5 h", 60 -> "2.5 days"."""
    if value is None:
        return "n/a"
    return num(value, "h") if value < 48 else num(value / 24, "days")


def negative_rate_phrase(m: QuarterlyMetrics) -> str:
    """ "18% (down 4 pts)" / "18% (unchanged)" / "18% (too few to compare)" / "18%" / "n/a" — used by the
    summary and the subject."""
    rate = m.current["negative_rate"]
    if rate is None:
        return "n/a"
    if m.negative_rate_direction is None:
        return pct(rate)
    if m.negative_rate_direction == TOO_FEW:
        return f"{pct(rate)} (too few to compare)"
    if m.negative_rate_direction == "flat":
        return f"{pct(rate)} (unchanged)"
    return f"{pct(rate)} ({m.negative_rate_direction} {pts(m.negative_rate_change_pts or 0)} pts)"


def _volume(m: QuarterlyMetrics) -> list[str]:
    c, prev, q = m.current, m.previous, m.quarter.label
    out = [
        f"In {q} we sent {plural(c['surveys_sent'], 'survey')} and received "
        f"{plural(c['responses'], 'response')}"
        + (
            f"; {c['responded_invites']} of this quarter's invites have been answered "
            f"(response rate {pct(c['response_rate'])})."
            if c["response_rate"] is not None
            else "."
        )
    ]
    if m.responses_to_earlier_invites:
        out.append(
            f"{plural(m.responses_to_earlier_invites, 'response')} answered invites sent in an "
            "earlier quarter."
        )
    if c["negative_rate"] is None:
        out.append("With no responses there is no negative rate for the quarter.")
    elif m.negative_rate_direction == TOO_FEW:
        out.append(
            f"{plural(c['negatives'], 'response was', 'responses were')} negative "
            f"({pct(c['negative_rate'])}); {m.quarter.previous().label} had only "
            f"{plural(prev['responses'], 'response')}, too few to compare (the playbook's minimum is "
            f"{m.min_responses_to_compare})."
        )
    elif m.negative_rate_direction is None:
        out.append(
            f"{plural(c['negatives'], 'response was', 'responses were')} negative "
            f"({pct(c['negative_rate'])}); "
            "there is no previous-quarter rate to compare with."
        )
    else:
        change = (
            "unchanged from"
            if m.negative_rate_direction == "flat"
            else f"{m.negative_rate_direction} {pts(m.negative_rate_change_pts or 0)} points from"
        )
        out.append(
            f"The negative rate was {pct(c['negative_rate'])} ({c['negatives']} of {c['responses']}), "
            f"{change} {pct(prev['negative_rate'])} in {m.quarter.previous().label}."
        )
    return out


def _causes(m: QuarterlyMetrics) -> list[str]:
    out = []
    if not m.by_topic.empty:
        top = m.by_topic.iloc[0]
        out.append(
            f"The most frequent topic in negative feedback was {top['name']} "
            f"({pct(top['share'])} of topic mentions)."
        )
    if not m.by_question.empty:
        top = m.by_question.iloc[0]
        out.append(
            "The question drawing most negative answers was "
            f"\u201c{top['label']}\u201d ({plural(int(top['negatives']), 'response')})."
        )
    signals = [f"{r.responses} {r.label.lower()}" for r in m.signals.itertuples() if r.responses]
    if signals:
        out.append("Alongside: " + ", ".join(signals) + ".")
    if not m.root_causes.empty:
        top = m.root_causes.iloc[0]
        out.append(
            f"The most common documented root cause was \u201c{top['root_cause']}\u201d "
            f"({plural(int(top['cases']), 'closed case')})."
        )
    return out


def _timeliness(m: QuarterlyMetrics) -> list[str]:
    c, out = m.current, []
    if c["steps_due"]:
        sentence = (
            f"{pct(c['sla_on_time_share'])} of the {c['steps_due']} SOP steps due were completed on time"
        )
        if m.time_to_acknowledge.count:
            median = num(m.time_to_acknowledge.median)
            sentence += (
                f"; feedback was acknowledged in a median of {median} business days after the response"
            )
        out.append(sentence + ".")
    if m.intake_delay_hours.count:
        out.append(
            f"Cases were opened a median of {hours(m.intake_delay_hours.median)} after the response arrived."
        )
    if c["escalations"]:
        out.append(
            f"{plural(c['cases_escalated'], 'case was', 'cases were')} escalated "
            f"({plural(c['escalations'], 'escalation')})."
        )
    if m.open_cases:
        mrr = f", representing {money(m.open_cases_mrr)} MRR" if m.open_cases_mrr else ""
        out.append(
            f"{plural(m.open_cases, 'case was', 'cases were')} still open at the quarter end{mrr} "
            f"(the oldest opened {plural(int(m.open_case_age_days.max or 0), 'day')} before it ended)."
        )
    elif c["cases_opened"] or c["cases_closed"]:
        out.append("No cases were left open at the quarter end.")
    return out


def _recovery(m: QuarterlyMetrics) -> list[str]:
    r = m.recovery
    if not r.pulse_responses:
        return []
    out = [f"{plural(r.pulse_responses, 'customer')} answered the follow-up pulse."]
    if r.pairs:
        out = [
            f"Of {plural(r.pairs, 'customer')} who answered the follow-up pulse, {r.improved} "
            f"gave a higher recommend score than in their negative response "
            f"(average {num(r.mean_before)} before, {num(r.mean_after)} after)."
        ]
    if r.escalated:
        who = plural(r.escalated, "customer")
        out.append(f"Still dissatisfied after the pulse and escalated to management: {who}.")
    return out


def what_changed(m: QuarterlyMetrics) -> str:
    """One plain paragraph; for an empty quarter, a short honest statement."""
    if m.is_empty:
        text = (
            f"Nothing to report for {m.quarter.label}: no surveys were sent and no responses, cases or "
            "SLA activity were recorded in the ledger for this quarter, and no cases were open at its end."
        )
        if m.previous["negative_rate"] is not None:
            prev = m.quarter.previous().label
            text += f" For reference, {prev} had a negative rate of {pct(m.previous['negative_rate'])}."
        return text
    return " ".join(_volume(m) + _causes(m) + _timeliness(m) + _recovery(m))
