"""Operators of the sla_sweep DAG: each builds its hooks in ``execute`` and calls one pipeline step.

Every step skips (AirflowSkipException) when the logical date is not a business day of the playbook
calendar (weekends are already outside the cron; this catches public holidays and company closures).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from closed_loop.operators.base import ClosedLoopBaseOperator


class _SweepOperator(ClosedLoopBaseOperator):
    """Shared: connection ids, the business-day gate, API-usage bookkeeping."""

    template_fields: tuple[str, ...] = (
        *ClosedLoopBaseOperator.template_fields,
        "salesforce_conn_id",
        "surveymonkey_conn_id",
        "smtp_conn_id",
    )

    def __init__(
        self,
        *,
        salesforce_conn_id: str = "salesforce_default",
        surveymonkey_conn_id: str = "surveymonkey_default",
        smtp_conn_id: str = "smtp_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.salesforce_conn_id = salesforce_conn_id
        self.surveymonkey_conn_id = surveymonkey_conn_id
        self.smtp_conn_id = smtp_conn_id

    def execute(self, context: Any) -> dict:
        from closed_loop.domain.calendar import BusinessCalendar

        playbook = self.load_playbook()
        calendar = BusinessCalendar.from_playbook(playbook)
        today = self.logical_day(context)
        if not calendar.is_business_day(today):
            raise AirflowSkipException(
                f"{today} is not a business day ({calendar.holiday_name(today) or 'weekend'})"
            )
        ledger = self.open_ledger()
        try:
            result = self.run_step(ledger, playbook, calendar, today, context)
            if not self.is_dry_run and result.get("api_calls"):
                ledger.record_api_usage(
                    f"{context['run_id']}:{self.task_id}", self.system, result["api_calls"]
                )
        finally:
            ledger.dispose()
        return result

    system = "salesforce"

    def run_step(self, ledger, playbook, calendar, today, context) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _attempt(self, context: Any) -> str:
        ti = context.get("ti")
        return f"{context['run_id']}:{self.task_id}:{getattr(ti, 'try_number', 1)}"

    def _salesforce(self):
        from closed_loop.hooks import ClosedLoopSalesforceHook

        return self.track(ClosedLoopSalesforceHook(salesforce_conn_id=self.salesforce_conn_id))

    def _smtp(self):
        from closed_loop.hooks.mail import ClosedLoopSmtpHook

        return ClosedLoopSmtpHook(smtp_conn_id=self.smtp_conn_id)


class SweepReadBackOperator(_SweepOperator):
    """Read the open pipeline Cases and step Tasks changed since the last sweep back from Salesforce
    (queryAll by ``SystemModstamp``, Composite) into the ledger: completions with timestamps, status,
    closure, documentation, dissatisfaction, deletions."""

    def run_step(self, ledger, playbook, calendar, today, context) -> dict:
        from closed_loop.pipeline.sweep import read_back

        return read_back(self._salesforce(), ledger, playbook, calendar, today, dry_run=self.is_dry_run)


class SweepProgressOperator(_SweepOperator):
    """Create activated steps, escalate breaches (once each) and dissatisfied customers (once per episode),
    flag undocumented closes, remind LPs, close documented cases; Tasks created once, emails once."""

    def run_step(self, ledger, playbook, calendar, today, context) -> dict:
        from closed_loop.pipeline.sweep import progress_and_escalate

        return progress_and_escalate(
            self._salesforce(),
            self._smtp(),
            ledger,
            playbook,
            calendar,
            today,
            run_id=self._attempt(context),
            dry_run=self.is_dry_run,
        )


class SweepRecoveryPulseOperator(_SweepOperator):
    """Send the recovery pulse survey to the contact of every newly closed case, once, crash-safe."""

    system = "surveymonkey"

    def run_step(self, ledger, playbook, calendar, today, context) -> dict:
        from closed_loop.hooks import SurveyMonkeyHook
        from closed_loop.pipeline.sweep import send_recovery_pulses

        sm = self.track(SurveyMonkeyHook(surveymonkey_conn_id=self.surveymonkey_conn_id))
        return send_recovery_pulses(
            sm, ledger, playbook, today, run_id=context["run_id"], dry_run=self.is_dry_run
        )


class SweepOpsDigestOperator(_SweepOperator):
    """Email ops the day's breaches, escalations, documentation gaps, quarantines; nothing if empty."""

    def run_step(self, ledger, playbook, calendar, today, context) -> dict:
        from closed_loop.pipeline.sweep import ops_digest

        return ops_digest(
            self._smtp(), ledger, playbook, today, run_id=self._attempt(context), dry_run=self.is_dry_run
        )
