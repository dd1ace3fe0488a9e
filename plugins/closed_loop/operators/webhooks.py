"""Operator of the surveymonkey_webhooks DAG: create or repair the intake webhook subscription."""

from __future__ import annotations

from typing import Any

from closed_loop.operators.base import ClosedLoopBaseOperator


class EnsureWebhookOperator(ClosedLoopBaseOperator):
    """Create or repair the ``response_completed`` webhook for the main and pulse surveys.

    :param subscription_url: the receiver's public URL (templated); empty = the ``host`` of
        ``webhook_conn_id`` (the same connection the receiver reads its secret from).
    :param surveymonkey_conn_id: SurveyMonkey API connection.
    :param webhook_conn_id: the receiver's connection (host = public subscription URL).
    """

    template_fields: tuple[str, ...] = (
        *ClosedLoopBaseOperator.template_fields,
        "subscription_url",
        "surveymonkey_conn_id",
    )

    def __init__(
        self,
        *,
        subscription_url: str = "",
        surveymonkey_conn_id: str = "surveymonkey_default",
        webhook_conn_id: str = "surveymonkey_webhook",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.subscription_url = subscription_url
        self.surveymonkey_conn_id = surveymonkey_conn_id
        self.webhook_conn_id = webhook_conn_id

    def _url(self) -> str:
        if self.subscription_url:
            return self.subscription_url
        from airflow.sdk.bases.hook import BaseHook

        url = BaseHook.get_connection(self.webhook_conn_id).host or ""
        if not url:
            raise ValueError(
                f"no subscription_url: pass the param or set the host of connection {self.webhook_conn_id!r}"
            )
        return url

    def execute(self, context: Any) -> dict:
        from closed_loop.hooks import SurveyMonkeyHook
        from closed_loop.pipeline.webhooks import ensure_webhook

        sm = SurveyMonkeyHook(surveymonkey_conn_id=self.surveymonkey_conn_id)
        ledger = self.open_ledger()
        try:
            report = ensure_webhook(sm, ledger, self.load_playbook(), self._url(), dry_run=self.is_dry_run)
        finally:
            ledger.dispose()
        self.log.info("Webhook subscription %s (SurveyMonkey calls: %d)", report["action"], sm.calls_made)
        return {**report, "api_calls": sm.calls_made}
