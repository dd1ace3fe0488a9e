"""What every closed-loop operator shares: connections, the playbook, the ledger, the logical day."""

from __future__ import annotations

import functools
import json
import logging
from datetime import date
from typing import Any

from airflow.sdk import BaseOperator

log = logging.getLogger(__name__)


def as_bool(value: Any) -> bool:
    """A templated flag ("True", "false", True, 1) as a bool."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def log_result(context: Any, result: Any = None) -> None:
    """Post-execute hook: the task's one summary (counts, quarantine, ids touched, API budget left; see
    closed_loop.operators.summary), ending with its small JSON result (the demo reads that line)."""
    if not isinstance(result, dict):
        return
    task = context.get("task") if isinstance(context, dict) else None
    lines = task.summary_lines(result) if isinstance(task, ClosedLoopBaseOperator) else []
    lines.append("closed-loop result: " + json.dumps(result, default=str, sort_keys=True))
    log.info("%s", "\n".join(lines))


class _DefaultsOnce(type(BaseOperator)):
    """Airflow wraps the ``__init__`` of every operator class in the hierarchy with ``apply_defaults``, and
    each level merges the DAG's default_args and deep-copies its params again (four times per task for a
    three-level operator, at every DAG file parse). Here the outermost level merges them; the inner levels of
    our classes receive the merged arguments and run their own ``__init__`` as is (Airflow's own
    ``BaseOperator.__init__`` keeps its wrapper)."""

    @classmethod
    def _apply_defaults(cls, func):
        applied = super()._apply_defaults(func)

        @functools.wraps(func)
        def apply_defaults_once(self, *args: Any, **kwargs: Any) -> Any:
            if self.__dict__.get("_closed_loop_defaults_applied"):
                return func(self, *args, **kwargs)
            object.__setattr__(self, "_closed_loop_defaults_applied", True)
            return applied(self, *args, **kwargs)

        return apply_defaults_once


class ClosedLoopBaseOperator(BaseOperator, metaclass=_DefaultsOnce):
    """Base for the project's operators.

    :param ledger_conn_id: Airflow connection of the ledger database.
    :param playbook_path: playbook file (templated); default $CLOSED_LOOP_PLAYBOOK or include/playbook.yaml.
    :param dry_run: compute and log the full plan, write nothing external (templated, default the DAG param).
    """

    template_fields: tuple[str, ...] = ("playbook_path", "dry_run")

    def __init__(
        self,
        *,
        ledger_conn_id: str = "closed_loop_db",
        playbook_path: str | None = None,
        dry_run: bool | str = "{{ params.dry_run }}",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("post_execute", log_result)
        super().__init__(**kwargs)
        self.ledger_conn_id = ledger_conn_id
        self.playbook_path = playbook_path
        self.dry_run = dry_run

    @property
    def is_dry_run(self) -> bool:
        return as_bool(self.dry_run)

    def track(self, *hooks):
        """Hooks whose API budget the task's summary reports; returns the (first) hook."""
        self._tracked = [*getattr(self, "_tracked", []), *(h for h in hooks if h is not None)]
        return hooks[0] if len(hooks) == 1 else hooks

    def touched(self, case_keys) -> None:
        """Cases the task worked on that the ledger alone does not show (e.g. Cases written to Salesforce)."""
        self._cases = list(case_keys or ())

    def summary_lines(self, result: dict) -> list[str]:
        """The task's summary: ledger facts since the ledger was opened, budgets from the tracked hooks."""
        from closed_loop.operators.summary import budget_left, ledger_facts, summary_lines

        facts, since = None, getattr(self, "_since", None)
        if since is not None:
            try:
                from closed_loop.ledger import Ledger

                ledger = Ledger.from_conn_id(self.ledger_conn_id)
                try:
                    facts = ledger_facts(ledger, since, {"case_keys": getattr(self, "_cases", [])})
                finally:
                    ledger.dispose()
            except Exception as exc:  # noqa: BLE001 - the summary never fails the task
                log.warning("task summary: ledger not readable (%s)", type(exc).__name__)
        return summary_lines(self.task_id, result, facts, budget_left(getattr(self, "_tracked", [])))

    def load_playbook(self):
        from closed_loop.playbook import load_playbook
        from closed_loop.survey_messages import validate_messages

        playbook = load_playbook(self.playbook_path or None)
        validate_messages(playbook)  # SurveyMonkey's required merge tags, before any run does work
        return playbook

    def open_ledger(self):
        from closed_loop.ledger import Ledger
        from closed_loop.ledger.types import utcnow

        self._since = utcnow()  # the summary reports what the task wrote from here on
        return Ledger.from_conn_id(self.ledger_conn_id)

    @staticmethod
    def logical_day(context: Any) -> date:
        """The run's logical date as a calendar date: every date decision uses it, never the wall clock.

        Airflow 3 runs triggered without a logical date (UI, API) fall back to the run's ``run_after``."""
        for key in ("logical_date", "data_interval_end"):
            if context.get(key) is not None:
                return context[key].date()
        run_after = getattr(context.get("dag_run"), "run_after", None)
        if run_after is None:
            raise ValueError("the run has neither a logical date nor run_after")
        return run_after.date()
