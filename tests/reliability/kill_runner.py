"""Run one pipeline step in a fresh process and kill it (``os._exit(137)``, no cleanup, no commit) at an
injection point. Usage: ``python kill_runner.py <pipeline> <target> <before|after> [match]``; the stack's
AIRFLOW_CONN_* variables come from the environment."""

from __future__ import annotations

import os
import sys
import types

from reliability_helpers import PIPELINES, World, inject

from closed_loop.ledger import Ledger


class _Patch:
    def setattr(self, obj, name, value):
        setattr(obj, name, value)


def main(pipeline: str, target: str, when: str, match: str | None = None) -> None:
    ledger = Ledger.from_conn_id("closed_loop_db")
    world = World(types.SimpleNamespace(ledger=ledger))
    inject(_Patch(), world, target, when, match, action=lambda: os._exit(137))
    PIPELINES[pipeline][1](world, run_id="killed")
    sys.exit(3)  # the injection point was never reached


if __name__ == "__main__":
    main(*sys.argv[1:])
