"""Runs executed by a real scheduler (as `make demo` drives them) are recorded the way a deployment records
them: the task log opens in the Airflow UI (headless Chromium) and shows the run's summary, and the run's
start and end times are the real ones (seconds apart, not the logical date's distance from today)."""

from __future__ import annotations

import re
import subprocess
from datetime import date, datetime
from pathlib import Path

import pytest

from devtools.deployment import LocalDeployment

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
DAY = date(2026, 7, 1)
SUMMARY = re.compile(r"closed-loop result|ingest_responses:|responses? (recorded|fetched)", re.I)

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.chromium,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


def browse(url: str, tmp_path: Path, name: str, *extra: str) -> str:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / ('profile-' + name)}", "--window-size=1400,1000",
        "--virtual-time-budget=30000", *extra, url,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False).stdout  # hang guard


@pytest.fixture
def deployment(stack, tmp_path):
    env = {**stack.conn_env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True"}
    with LocalDeployment(tmp_path / "home", extra_env=env).start(dag_ids=("response_intake",)) as airflow:
        yield airflow


def test_a_scheduled_runs_task_log_opens_in_the_ui(stack, deployment, tmp_path):
    stack.sandbox.admin("POST", "clock", {"now": f"{DAY.isoformat()}T12:00:00Z"})
    run = deployment.run_dag("response_intake", DAY)
    assert run.ok, deployment.tail()
    assert run.results["ingest_responses"]["fetched"] == 0  # the run's returned counts, read back

    record = deployment.api("GET", f"/api/v2/dags/response_intake/dagRuns/{run.run_id}")
    assert record["logical_date"].startswith(DAY.isoformat())
    when = {k: datetime.fromisoformat(record[k].replace("Z", "+00:00")) for k in ("start_date", "end_date")}
    start, end = when["start_date"], when["end_date"]
    assert 0 < (end - start).total_seconds() <= run.seconds + 5  # what the UI shows as the duration

    log = deployment.home / "logs" / "dag_id=response_intake" / f"run_id={run.run_id}"
    assert list(log.glob("task_id=ingest_responses/attempt=*.log")), "no task log file on disk"

    url = f"http://127.0.0.1:{deployment.port}/dags/response_intake/runs/{run.run_id}/tasks/ingest_responses"
    dom = browse(url, tmp_path, "dom", "--dump-dom")
    assert "Log file not found" not in dom
    assert SUMMARY.search(dom), dom[-3000:]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = SCREENSHOTS / "airflow_task_log.png"
    png.unlink(missing_ok=True)
    browse(url, tmp_path, "shot", f"--screenshot={png}")
    assert png.exists() and png.stat().st_size > 20_000
