"""Operators of the survey_dispatch DAG: each builds its hooks in ``execute`` and calls one pipeline step."""

from __future__ import annotations

from typing import Any

from closed_loop.operators.base import ClosedLoopBaseOperator


class _DispatchOperator(ClosedLoopBaseOperator):
    """Shared: connection ids, the ledger, API-usage bookkeeping."""

    template_fields: tuple[str, ...] = (*ClosedLoopBaseOperator.template_fields, "salesforce_conn_id")

    def __init__(self, *, salesforce_conn_id: str = "salesforce_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.salesforce_conn_id = salesforce_conn_id

    def _record_usage(self, ledger, context: Any, **calls: int) -> None:
        key = f"{context['run_id']}:{self.task_id}"
        for system, count in calls.items():
            ledger.record_api_usage(key, system, count)


class SalesforceGoLiveSyncOperator(_DispatchOperator):
    """Sync Accounts with a changed or recent go-live and their flagged Contacts into the ledger
    (one incremental paged SOQL per object; watermarks advance with the data).

    :param salesforce_conn_id: Salesforce connection (type ``salesforce``).
    :param overlap_minutes: how far before the watermark each incremental query starts.
    """

    def __init__(self, *, overlap_minutes: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.overlap_minutes = overlap_minutes

    def execute(self, context: Any) -> dict:
        from closed_loop.hooks import ClosedLoopSalesforceHook
        from closed_loop.pipeline.dispatch import sync_go_lives

        sf = self.track(ClosedLoopSalesforceHook(salesforce_conn_id=self.salesforce_conn_id))
        ledger = self.open_ledger()
        try:
            result = sync_go_lives(
                sf, ledger, self.load_playbook(), self.logical_day(context),
                dry_run=self.is_dry_run, overlap_minutes=self.overlap_minutes,
            )  # fmt: skip
            if not self.is_dry_run:
                self._record_usage(ledger, context, salesforce=sf.calls_made)
        finally:
            ledger.dispose()
        return {**result, "api_calls": sf.calls_made}


class SurveyMonkeySendInvitesOperator(_DispatchOperator):
    """Send today's due post-implementation surveys as one SurveyMonkey batch (collector + message per
    logical date), exactly once: intents first, reconciliation on retry, budget guard before the batch.

    :param surveymonkey_conn_id: SurveyMonkey connection (type ``surveymonkey``).
    """

    template_fields: tuple[str, ...] = (*_DispatchOperator.template_fields, "surveymonkey_conn_id")

    def __init__(self, *, surveymonkey_conn_id: str = "surveymonkey_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.surveymonkey_conn_id = surveymonkey_conn_id

    def execute(self, context: Any) -> dict:
        from closed_loop.hooks import SurveyMonkeyHook
        from closed_loop.pipeline.dispatch import send_invites

        sm = self.track(SurveyMonkeyHook(surveymonkey_conn_id=self.surveymonkey_conn_id))
        ledger = self.open_ledger()
        try:
            result = send_invites(
                sm, ledger, self.load_playbook(), self.logical_day(context),
                run_id=context["run_id"], dry_run=self.is_dry_run,
            )  # fmt: skip
            if not self.is_dry_run:
                self._record_usage(ledger, context, surveymonkey=sm.calls_made)
        finally:
            ledger.dispose()
        if result["carried_over"]:
            self.log.warning(
                "%d invites carried over to the next run (SurveyMonkey budget)", result["carried_over"]
            )
        return result


class SurveyMonkeySendRemindersOperator(SurveyMonkeySendInvitesOperator):
    """Remind each batch's non-responders once (SurveyMonkey reminder message per batch collector) and,
    when the playbook asks for it, upsert a Salesforce Task for the account's LP to remind the biller."""

    def execute(self, context: Any) -> dict:
        from closed_loop.domain.calendar import BusinessCalendar
        from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
        from closed_loop.pipeline.dispatch import send_reminders

        playbook = self.load_playbook()
        sm = SurveyMonkeyHook(surveymonkey_conn_id=self.surveymonkey_conn_id)
        sf = (
            ClosedLoopSalesforceHook(salesforce_conn_id=self.salesforce_conn_id)
            if playbook.dispatch.lp_reminder_task
            else None
        )
        self.track(sm, sf)
        ledger = self.open_ledger()
        try:
            result = send_reminders(
                sm, sf, ledger, playbook, self.logical_day(context), run_id=context["run_id"],
                dry_run=self.is_dry_run, calendar=BusinessCalendar.from_playbook(playbook),
            )  # fmt: skip
            if not self.is_dry_run:
                calls = {"surveymonkey": sm.calls_made} | ({"salesforce": sf.calls_made} if sf else {})
                self._record_usage(ledger, context, **calls)
        finally:
            ledger.dispose()
        return result
