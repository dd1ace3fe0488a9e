"""Preflight: prove before go-live that a real org and its surveys match the playbook.

``python -m closed_loop.preflight`` (console) and the ``closed_loop_preflight`` DAG print one line per check
(PASS/FAIL, what was found, how to fix) through the configured Airflow connections.
"""
