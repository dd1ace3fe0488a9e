"""Response intake: SurveyMonkey responses -> scored in the ledger -> planned Cases -> Salesforce.

Two steps, each read -> plan -> apply:

- ``ingest_responses`` (ingest.py), chunk by chunk (memory flat with the backlog): ``read_chunks``
  (read.py, fetching through fetch.py) pulls new and changed responses since the ledger watermark and
  joins them to account/contact through the sends; ``plan_intake`` (plan.py, pure) scores them and plans
  a Case (+ SOP step Tasks) for every new negative one; ``apply_intake`` records the responses with the
  watermark they reach, then the planned cases.
- ``open_cases`` (open_cases.py): creates the planned Cases and Tasks in Salesforce once (keyed by
  external id, so a replay never resets the LP's work) and marks them in the ledger; alerts.py sends
  the data-quality owner one Task per quarantined intake problem.

common.py holds what they share (quarantine sources, ledger keys, the stored plan's JSON form).
"""

from closed_loop.pipeline.intake.common import (
    CASE_UPDATE_PREFIX,
    QUARANTINE_SOURCES,
    RECOVERY_PREFIX,
    SF_SOURCE,
    SOURCE,
    Problem,
    context_from_json,
    partial_watermark_name,
    plan_to_json,
    recovery_send_key,
    watermark_name,
)
from closed_loop.pipeline.intake.fetch import changed_chunks, fetch_changed
from closed_loop.pipeline.intake.ingest import apply_intake, ingest_responses
from closed_loop.pipeline.intake.open_cases import (
    OpenPlan,
    OpenSummary,
    Owners,
    apply_open,
    cases_to_open,
    open_cases,
    plan_open,
    read_owners,
    step_task_rows,
    update_completed_partials,
)
from closed_loop.pipeline.intake.plan import IngestSummary, IntakePlan, plan_intake
from closed_loop.pipeline.intake.read import IntakeInputs, read_chunks

__all__ = [
    "CASE_UPDATE_PREFIX",
    "QUARANTINE_SOURCES",
    "RECOVERY_PREFIX",
    "SF_SOURCE",
    "SOURCE",
    "IngestSummary",
    "IntakeInputs",
    "IntakePlan",
    "OpenPlan",
    "OpenSummary",
    "Owners",
    "Problem",
    "apply_intake",
    "apply_open",
    "cases_to_open",
    "changed_chunks",
    "context_from_json",
    "fetch_changed",
    "ingest_responses",
    "open_cases",
    "partial_watermark_name",
    "plan_intake",
    "plan_open",
    "plan_to_json",
    "read_chunks",
    "read_owners",
    "recovery_send_key",
    "step_task_rows",
    "update_completed_partials",
    "watermark_name",
]
