"""Pure-Python domain core: scoring, routing, business days and SOP step plans (no Airflow import).

Import the submodules directly (``closed_loop.domain.scoring`` pulls in pandas; the others do not).
"""
