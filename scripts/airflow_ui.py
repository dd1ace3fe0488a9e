"""`make airflow`: the Airflow UI on the demo's AIRFLOW_HOME (.airflow-demo): every run and its task logs.

Starts only the api-server (nothing is scheduled: the sandbox the runs talked to is gone), bound to
127.0.0.1, prints the address and the login, and stops it on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "plugins"), str(REPO)]

from devtools.deployment import LocalDeployment, ui_login  # noqa: E402

HOME = Path(os.environ.get("CLOSED_LOOP_AIRFLOW_HOME") or REPO / ".airflow-demo")


def _stop(signum, _frame):
    raise SystemExit(128 + signum)


def main() -> int:
    if not (HOME / "airflow.db").exists():
        print("no demo state yet: run 'make demo' first")
        return 1
    port = int(os.environ.get("AIRFLOW_UI_PORT", "8080"))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ui = LocalDeployment(HOME, port=port, processes=("api-server",))
    user, password, _ = ui_login(HOME)
    print(f"starting the Airflow UI on the demo's runs ({HOME}) ...", flush=True)
    try:
        ui.start()
        print(
            f"\n  Airflow UI: http://127.0.0.1:{port}   (listening on 127.0.0.1 only)\n"
            f"  login:      {user} / {password}\n"
            "  Dags -> a DAG -> Runs -> a run -> a task -> Logs shows what that run did.\n"
            "  Ctrl-C (or SIGTERM) stops it.\n",
            flush=True,
        )
        while all(p.poll() is None for p in ui._procs.values()):
            time.sleep(1)
        print("the api-server exited:\n" + ui.tail())
        return 1
    finally:
        ui.stop()
        print("Airflow UI stopped.")


if __name__ == "__main__":
    sys.exit(main())
