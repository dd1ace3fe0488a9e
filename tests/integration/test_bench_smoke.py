"""The benchmark harness at its smallest scale (``bench/run.py --quick``), so it cannot rot unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A guard against a hung subprocess, never a speed limit: a loaded machine may be 10x slower than idle.
HANG_GUARD_SECONDS = 1800
STEPS = {"baseline", "sync", "invites", "reminders", "intake", "open_cases", "sweep_read_back",
         "sweep_read_back_next", "escalations", "recovery_pulses"}  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    doc = out.with_name("performance.md")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--out", str(out), "--doc", str(doc)],
        capture_output=True, text=True, cwd=REPO, timeout=HANG_GUARD_SECONDS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| scale | step |" in doc.read_text()
    return json.loads(out.read_text())


def test_results_have_every_section(results):
    assert {
        "environment",
        "scales",
        "scoring",
        "dag_parse",
        "sm_budget_projection",
        "runtime_seconds",
        "targets",
    } <= set(results)
    keys = {"scoring.ratio_to_json_parse", "dag_parse.ratio_to_empty_operator_dag",
            "intake.peak_rss_above_baseline_mb", "steps.ratio_to_documented_min.max"}  # fmt: skip
    assert keys <= set(results["targets"])
    (scale,) = results["scales"].values()
    assert set(scale["steps"]) == STEPS
    assert {"sm_responses", "sf_tasks", "full_volume"} <= set(scale["naive"])
    scoring = results["scoring"]
    assert scoring["vectorised_sample"]["negatives"] == scoring["naive"]["negatives"]  # same responses
    assert scoring["vectorised"]["negatives"] >= scoring["naive"]["negatives"]
    assert "(empty DAG)" in results["dag_parse"]


def test_measured_calls_are_never_below_the_theoretical_minimum(results):
    (scale,) = results["scales"].values()
    for step, result in scale["steps"].items():
        assert "error" not in result["out"], (step, result["out"])
        for system, figures in result.get("vs_min", {}).items():
            assert figures["measured"] >= figures["min"], (step, system, figures)
    assert scale["steps"]["intake"]["out"]["fetched"] >= scale["world"]["responses"]
    assert scale["steps"]["intake"]["vs_min"]["sm"]["variable_min"] >= 2  # 150 responses: >= 2 pages
    for step in ("escalations", "sweep_read_back_next"):  # the simulated LPs left work to escalate and read
        assert scale["steps"][step]["vs_min"]["sf"]["measured"] >= 1, step
    assert scale["steps"]["escalations"]["out"]["breaches"] > 0


def test_every_step_reports_wall_and_cpu_time(results):
    (scale,) = results["scales"].values()
    for step, result in scale["steps"].items():
        assert result["step_cpu_seconds"] >= 0 and result["sandbox_cpu_seconds"] >= 0, step
        assert result["cpu_seconds"] >= result["step_cpu_seconds"] - 0.05, step  # the process covers the step


def test_naive_baseline_makes_one_call_per_record(results):
    (scale,) = results["scales"].values()
    for key in ("sm_responses", "sf_tasks"):
        out = scale["naive"][key]["out"]
        assert out["naive"]["records"] > 0
        assert out["naive"]["calls"] >= out["naive"]["records"] > out["bulk"]["calls"]
        full = scale["naive"]["full_volume"]["responses" if key == "sm_responses" else "tasks"]
        assert scale["naive"][key]["extrapolated"]["naive_calls"] >= full  # one call per record, extrapolated
