"""Operators of the response_intake DAG: each builds its hook in ``execute`` and calls one pipeline step."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, AssetAlias

from closed_loop.operators.base import ClosedLoopBaseOperator

# Name-only: a custom URI scheme makes Airflow look up URI normalisers at DAG parse time (~30 ms).
RESPONSES_ASSET = Asset(name="closed_loop_responses")
# Declared as the outlet; the asset event is attached only when a run ingested something, so data-aware
# DAGs downstream are not triggered every 15 minutes by empty runs.
RESPONSES_ALIAS = AssetAlias(name="closed_loop_responses_ingested")


class _IntakeOperator(ClosedLoopBaseOperator):
    def _context_objects(self):
        from closed_loop.domain.calendar import BusinessCalendar

        playbook = self.load_playbook()
        return playbook, BusinessCalendar.from_playbook(playbook)

    @staticmethod
    def logical_time(context: Any):
        """The run's logical time (abandoned-partial cutoffs): logical date, else interval end, else
        run_after; None when the context has none."""
        for key in ("logical_date", "data_interval_end"):
            if context.get(key) is not None:
                return context[key]
        return getattr(context.get("dag_run"), "run_after", None)

    def _record_usage(self, ledger, context: Any, system: str, calls: int) -> None:
        if not self.is_dry_run:
            ledger.record_api_usage(f"{context['run_id']}:{self.task_id}", system, calls)


class IngestResponsesOperator(_IntakeOperator):
    """Pull new/changed SurveyMonkey responses (watermark minus overlap, 100 per page), score them,
    record them in the ledger and plan a Case for every new negative one. Emits the responses asset
    when something was ingested.

    :param surveymonkey_conn_id: SurveyMonkey connection (type ``surveymonkey``).
    """

    template_fields: tuple[str, ...] = (*ClosedLoopBaseOperator.template_fields, "surveymonkey_conn_id")

    def __init__(self, *, surveymonkey_conn_id: str = "surveymonkey_default", **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [RESPONSES_ALIAS])
        super().__init__(**kwargs)
        self.surveymonkey_conn_id = surveymonkey_conn_id

    def execute(self, context: Any) -> dict:
        from closed_loop.hooks import SurveyMonkeyHook
        from closed_loop.pipeline.intake import ingest_responses

        sm = self.track(SurveyMonkeyHook(surveymonkey_conn_id=self.surveymonkey_conn_id))
        playbook, calendar = self._context_objects()
        ledger = self.open_ledger()
        try:
            summary = ingest_responses(
                sm, ledger, playbook, calendar, self.logical_day(context), dry_run=self.is_dry_run,
                now=self.logical_time(context),
            )  # fmt: skip
            self._record_usage(ledger, context, "surveymonkey", sm.calls_made)
        finally:
            ledger.dispose()
        result = summary.as_xcom()
        self.touched(summary.case_keys)
        if summary.recorded and not summary.dry_run:
            extra = {k: result[k] for k in ("recorded", "negatives", "cases_planned", "recovery")}
            context["outlet_events"][RESPONSES_ALIAS].add(RESPONSES_ASSET, extra=extra)
        return result


class OpenCasesOperator(_IntakeOperator):
    """Upsert every planned Case and its SOP step Tasks in Salesforce (owner ids from one SOQL,
    sObject Collections by external id), mark them in the ledger, and send the data-quality owner one
    Task per quarantined intake problem.

    :param salesforce_conn_id: Salesforce connection (type ``salesforce``).
    """

    template_fields: tuple[str, ...] = (*ClosedLoopBaseOperator.template_fields, "salesforce_conn_id")

    def __init__(self, *, salesforce_conn_id: str = "salesforce_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.salesforce_conn_id = salesforce_conn_id

    def execute(self, context: Any) -> dict:
        from closed_loop.hooks import ClosedLoopSalesforceHook
        from closed_loop.pipeline.intake import open_cases

        sf = self.track(ClosedLoopSalesforceHook(salesforce_conn_id=self.salesforce_conn_id))
        playbook, calendar = self._context_objects()
        ledger = self.open_ledger()
        try:
            summary = open_cases(
                sf, ledger, playbook, calendar, self.logical_day(context), dry_run=self.is_dry_run
            )
            self._record_usage(ledger, context, "salesforce", sf.calls_made)
        finally:
            ledger.dispose()
        result = summary.as_xcom()
        self.touched(summary.case_keys)
        return result
