"""No test fails because the machine is slow: time limits are hang guards (>= 10 minutes), never speed limits.

A fresh-clone ``make test`` on a loaded machine tripped the bench smoke test's 180 s subprocess timeout
(issue 19 item 12). This reads every test module and names each time limit that is too tight.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
FLOOR_SECONDS = 600
# calls whose ``timeout`` bounds a whole job (a subprocess, a DAG run, a worker), not one local request
GUARDED = {"run", "check_output", "communicate", "wait", "wait_for_run", "wait_for_dag", "timeout"}


def _limits(tree: ast.AST):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if name not in GUARDED:
            continue
        values = [k.value for k in node.keywords if k.arg == "timeout"]
        if name == "timeout" and node.args:  # pytest.mark.timeout(N)
            values.append(node.args[0])
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, int | float):
                yield node.lineno, name, value.value


def _module_constants(tree: ast.Module) -> dict[str, float]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, int | float):
                    out[target.id] = node.value.value
    return out


def test_every_time_limit_in_the_tests_is_a_generous_hang_guard():
    tight = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _module_constants(tree)
        for line, name, seconds in _limits(tree):
            if seconds < FLOOR_SECONDS:
                tight.append(f"{path.relative_to(TESTS)}:{line} {name}(timeout={seconds})")
        for const, seconds in constants.items():
            if "TIMEOUT" in const or "GUARD" in const:
                if seconds < FLOOR_SECONDS:
                    tight.append(f"{path.relative_to(TESTS)} {const} = {seconds}")
    assert not tight, "time limits a loaded machine can trip: " + "; ".join(tight)


def test_the_scan_sees_a_tight_limit():
    tree = ast.parse("import subprocess\nsubprocess.run(['x'], timeout=180)\n")
    assert list(_limits(tree)) == [(2, "run", 180)]
