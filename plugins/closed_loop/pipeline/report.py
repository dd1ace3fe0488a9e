"""Quarterly report: ledger -> metrics -> charts -> email to leadership (once) + archive file."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from closed_loop.reporting import (
    Quarter,
    ReportData,
    build_message,
    compute_metrics,
    quarter_to_report,
    render_charts,
    render_csv,
    render_standalone_html,
    what_changed,
)
from closed_loop.reporting.data import from_ledger_frames
from closed_loop.reporting.metrics import ReportSettings

log = logging.getLogger(__name__)


@dataclass
class QuarterlyReport:
    quarter: Quarter
    metrics: object
    charts: dict[str, bytes]
    summary: str
    html: str
    csv: bytes

    @property
    def is_empty(self) -> bool:
        return bool(self.metrics.is_empty)


def report_quarter(logical_day: date, requested: str | None = None) -> Quarter:
    """The quarter asked for (``"2026-Q3"``), else the quarter that ended before the logical date."""
    return Quarter.parse(requested) if requested else quarter_to_report(logical_day)


def is_first_business_day_of_quarter(day: date, calendar) -> bool:
    """True on the quarter's first business day per the playbook calendar (the report's run day)."""
    start = Quarter.containing(day).start
    return day == calendar.add_business_days(start, 0)


def load_report_data(ledger) -> ReportData:
    """Every ledger table the report reads (all history: the report compares five quarters)."""
    return from_ledger_frames(ledger.frames())


def report_settings(playbook) -> ReportSettings:
    """The survey questions and SOP step order the report uses, from the playbook."""
    return ReportSettings(
        recommend_heading=playbook.triggers.low_score.question,
        satisfaction_heading=playbook.recovery.satisfaction_question,
        satisfied_choices=frozenset(playbook.recovery.satisfied_answers),
        step_order=tuple(step.key for step in playbook.steps),
        timezone=playbook.calendar.timezone,
        min_responses_to_compare=playbook.report.min_responses_to_compare,
        negative_trigger_kinds=frozenset(playbook.report.negative_trigger_kinds),
        separate_trigger_kinds=tuple(playbook.report.separate_trigger_kinds),
        topic_names=dict(playbook.report.topic_names),
    )


def build_report(ledger, playbook, calendar, quarter: Quarter) -> QuarterlyReport:
    data = load_report_data(ledger)
    metrics = compute_metrics(data, quarter, calendar.business_days_between, report_settings(playbook))
    charts = render_charts(metrics)
    summary = what_changed(metrics)
    html = render_standalone_html(metrics, charts, summary)
    return QuarterlyReport(quarter, metrics, charts, summary, html, render_csv(metrics))


def archive(report: QuarterlyReport, folder: Path) -> Path:
    """Write the standalone HTML and the CSV; the same quarter overwrites the same files (idempotent).

    Each file is written to a temporary file in the folder and renamed into place (a crash never leaves
    half a report), readable by the owner only (0600, folder 0700): the report names customers."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    html_path = folder / f"quarterly_report_{report.quarter.label}.html"
    _write_private(html_path, report.html.encode("utf-8"))
    _write_private(folder / f"quarterly_report_{report.quarter.label}.csv", report.csv)
    return html_path


def _write_private(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_quarterly_report(
    ledger,
    playbook,
    calendar,
    logical_day: date,
    *,
    mailer,
    sender: str,
    archive_dir: Path,
    requested_quarter: str | None = None,
    run_id: str = "",
    dry_run: bool = False,
) -> dict:
    """Build the quarter's report, archive it, email it to leadership once per quarter.

    ``mailer`` has ``send_message(EmailMessage)`` (ClosedLoopSmtpHook); unused in a dry run."""
    from closed_loop.pipeline.outbox import send_once

    quarter = report_quarter(logical_day, requested_quarter)
    report = build_report(ledger, playbook, calendar, quarter)
    recipients = list(playbook.people.leadership_emails)
    result = {"quarter": quarter.label, "empty": report.is_empty, "recipients": len(recipients)}
    if dry_run:
        log.info(
            "dry run: report %s built (%d charts), would email %d recipients",
            quarter.label,
            len(report.charts),
            len(recipients),
        )
        return {**result, "email": "planned", "archived": None}
    path = archive(report, archive_dir)
    message = build_message(
        report.metrics, sender=sender, recipients=recipients, charts=report.charts, summary=report.summary
    )
    outcome = send_once(
        ledger,
        mailer,
        f"report:{quarter.label}",
        message,
        kind="quarterly_report",
        run_id=run_id,
        dry_run=False,
    )
    log.info("report %s archived, email %s", quarter.label, outcome)
    if outcome == "failed":
        raise RuntimeError(f"the SMTP server did not accept the {quarter.label} report; the retry resends it")
    return {**result, "email": outcome, "archived": str(path)}
