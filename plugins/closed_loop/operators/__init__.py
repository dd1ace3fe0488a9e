"""Thin Airflow operators: each builds its hooks in ``execute`` and calls one pipeline function."""
