"""PreflightOperator: run every preflight check through the connections; fail the task on any failure."""

from __future__ import annotations

import logging
from typing import Any

from closed_loop.operators.base import ClosedLoopBaseOperator

log = logging.getLogger(__name__)


class PreflightOperator(ClosedLoopBaseOperator):
    """Check that the org and the surveys match the playbook (read-only; one log line per check).

    :param salesforce_conn_id: Salesforce connection.
    :param surveymonkey_conn_id: SurveyMonkey connection.
    """

    template_fields = (*ClosedLoopBaseOperator.template_fields, "salesforce_conn_id", "surveymonkey_conn_id")

    def __init__(
        self,
        *,
        salesforce_conn_id: str = "salesforce_default",
        surveymonkey_conn_id: str = "surveymonkey_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.salesforce_conn_id = salesforce_conn_id
        self.surveymonkey_conn_id = surveymonkey_conn_id

    def execute(self, context: Any) -> dict:
        from airflow.exceptions import AirflowException

        from closed_loop.hooks import ClosedLoopSalesforceHook, SurveyMonkeyHook
        from closed_loop.playbook import load_playbook
        from closed_loop.preflight.run import report, run_preflight
        from closed_loop.survey_messages import check_messages

        playbook = load_playbook(self.playbook_path or None)  # templates are checked below, not raised
        results = run_preflight(
            ClosedLoopSalesforceHook(self.salesforce_conn_id),
            SurveyMonkeyHook(self.surveymonkey_conn_id),
            playbook,
            check_messages(playbook),
        )
        for line in report(results).splitlines():
            log.info("%s", line)
        failed = [c.name for c in results if not c.ok]
        if failed:
            raise AirflowException(f"preflight: {len(failed)} check(s) failed: {', '.join(failed)}")
        return {"checks": len(results), "failed": 0}
