"""Operator for the quarterly trends report (SOP step 8)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

from closed_loop.operators.base import ClosedLoopBaseOperator


def default_archive_dir() -> str:
    """$CLOSED_LOOP_REPORT_DIR, else <AIRFLOW_HOME>/closed_loop_reports."""
    home = os.environ.get("AIRFLOW_HOME", str(Path.home() / "airflow"))
    return os.environ.get("CLOSED_LOOP_REPORT_DIR") or str(Path(home) / "closed_loop_reports")


class QuarterlyReportOperator(ClosedLoopBaseOperator):
    """Build the quarter's report from the ledger, archive it and email it to leadership once.

    Runs on the quarter's first business day (playbook calendar) for the quarter just ended and skips on
    other days; with ``quarter`` set (e.g. ``"2026-Q3"``) it reports that quarter whatever the day.

    :param quarter: quarter label to report (templated; empty = the quarter before the logical date).
    :param archive_dir: folder for the archived HTML/CSV (templated).
    :param smtp_conn_id: the Airflow SMTP provider's connection.
    """

    template_fields = (*ClosedLoopBaseOperator.template_fields, "quarter", "archive_dir")

    def __init__(
        self,
        *,
        quarter: str | None = "{{ params.quarter }}",
        archive_dir: str | None = None,
        smtp_conn_id: str = "smtp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.quarter = quarter
        self.archive_dir = archive_dir
        self.smtp_conn_id = smtp_conn_id

    def execute(self, context: Any) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from closed_loop.domain.calendar import BusinessCalendar
        from closed_loop.hooks.mail import ClosedLoopSmtpHook
        from closed_loop.pipeline.report import is_first_business_day_of_quarter, run_quarterly_report

        playbook = self.load_playbook()
        calendar = BusinessCalendar.from_playbook(playbook)
        day = self.logical_day(context)
        requested = (self.quarter or "").strip() or None
        if requested in ("None", "none"):
            requested = None
        if not requested and not is_first_business_day_of_quarter(day, calendar):
            raise AirflowSkipException(f"{day} is not the quarter's first business day")
        ledger = self.open_ledger()
        run = partial(
            run_quarterly_report,
            ledger,
            playbook,
            calendar,
            day,
            archive_dir=Path(self.archive_dir or default_archive_dir()),
            requested_quarter=requested,
            run_id=context.get("run_id", ""),
            dry_run=self.is_dry_run,
        )
        try:
            if self.is_dry_run:
                return run(mailer=None, sender="dry-run")
            with ClosedLoopSmtpHook(smtp_conn_id=self.smtp_conn_id) as smtp:
                return run(mailer=smtp, sender=smtp.from_email or playbook.company.support_email)
        finally:
            ledger.dispose()
