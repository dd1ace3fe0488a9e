"""Quarterly closed-loop trends report (SOP step 8): ledger frames -> metrics -> charts -> email/archive.

No Airflow import here; the ``quarterly_report`` DAG wires these functions.
"""

from closed_loop.reporting.charts import render_charts
from closed_loop.reporting.data import ReportData
from closed_loop.reporting.email import build_message, render_csv, render_standalone_html, subject
from closed_loop.reporting.metrics import QuarterlyMetrics, compute_metrics
from closed_loop.reporting.quarters import Quarter, quarter_to_report
from closed_loop.reporting.summary import what_changed

__all__ = [
    "QuarterlyMetrics",
    "Quarter",
    "ReportData",
    "build_message",
    "compute_metrics",
    "quarter_to_report",
    "render_charts",
    "render_csv",
    "render_standalone_html",
    "subject",
    "what_changed",
]
