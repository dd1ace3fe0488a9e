"""House rules every closed-loop DAG shares: owner, retries, the dry_run param (DAG files import these)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param

OWNER = "customer-ops"


def default_args(retry_delay: timedelta, exponential_backoff: bool = False) -> dict:
    """Task defaults: the owning team and two retries after ``retry_delay``."""
    args = {"owner": OWNER, "retries": 2, "retry_delay": retry_delay}
    if exponential_backoff:
        args["retry_exponential_backoff"] = True
    return args


def dry_run_param(description: str = "Log the plan, write nothing") -> Param:
    """The ``dry_run`` param: compute and log the full plan, write nothing external."""
    return Param(False, type="boolean", description=description)
