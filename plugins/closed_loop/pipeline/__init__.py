"""Orchestration as plain functions: hooks + ledger + domain, no Airflow import (operators call these).

Contributors: read docs/contributing.md first (the architecture rules for
pipelines, operators and DAGs are in its last section).
"""
