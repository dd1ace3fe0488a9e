"""The quarterly_report DAG: trends that leadership will actually read."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag

from closed_loop.dag_defaults import default_args, dry_run_param
from closed_loop.operators.report import QuarterlyReportOperator

# Name-only assets: a custom URI scheme makes Airflow look up URI normalisers at parse time (~30 ms).
REPORT = Asset(name="closed_loop_quarterly_report")


@dag(
    dag_id="quarterly_report",
    schedule="0 8 1-7 1,4,7,10 *",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["closed-loop", "report", "leadership"],
    default_args=default_args(timedelta(minutes=10)),
    params={
        "dry_run": dry_run_param("Build and log the report; send nothing."),
        "quarter": Param("", type="string", description="Report this quarter (e.g. 2026-Q3) instead."),
    },
    doc_md="""
### quarterly_report
SOP step 8 and its KPIs, for leadership: for the quarter just ended and the four before it, the
negative-rate trend, negatives by topic and question (Pareto), top root causes, SLA compliance per SOP
step, time to acknowledge and to close, escalations, open cases and their age, repeat-negative accounts,
recovery after the response (pulse score vs. the negative one) and per-LP workload (counts only).

* **Schedule**: 08:00 UTC on days 1-7 of January, April, July and October; the task runs on the
  quarter's first business day per the playbook calendar and skips the other days.
* **Output**: an HTML email with inline charts, a plain-text alternative and a CSV of the figures, to
  `people.leadership_emails` in the playbook (SMTP connection `smtp_default`), sent once per quarter
  (ledger email key `report:<quarter>`); the standalone HTML and CSV are archived in
  `$CLOSED_LOOP_REPORT_DIR` (asset `closed_loop_quarterly_report`).
* **Params**: `quarter` re-runs any past quarter (e.g. `2026-Q3`); `dry_run` builds and logs, sends nothing.
* An empty quarter produces an honest short report.
""",
)
def quarterly_report():
    QuarterlyReportOperator(task_id="build_and_send_report", outlets=[REPORT])


quarterly_report()
