"""Issue 15 "The ledger is an API": everything outside ``ledger/`` (pipelines, operators, reporting,
preflight, webhooks, the DAG files) asks the Ledger questions by name; nothing there imports SQLAlchemy
or opens a session."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins" / "closed_loop"
IMPORT = re.compile(r"^\s*(from|import)\s+sqlalchemy\b", re.MULTILINE)
SESSION = re.compile(r"\.session\(")


def _scanned(root: Path) -> list[Path]:
    """Every module of the package outside ``ledger/``, and the DAG files next to it."""
    files = [p for p in root.rglob("*.py") if "ledger" not in p.relative_to(root).parts[:1]]
    dags = root.parents[1] / "dags"
    return sorted(files + (sorted(dags.glob("*.py")) if dags.is_dir() else []))


def _offenders(root: Path = PLUGINS) -> dict[str, list[str]]:
    out = {}
    for path in _scanned(root):
        text = path.read_text(encoding="utf-8")
        found = [
            f"imports sqlalchemy (line {text[: m.start()].count(chr(10)) + 1})" for m in IMPORT.finditer(text)
        ]
        found += [
            f"opens a session (line {text[: m.start()].count(chr(10)) + 1})" for m in SESSION.finditer(text)
        ]
        if found:
            out[path.relative_to(root.parents[1]).as_posix()] = found
    return out


def test_no_module_outside_the_ledger_queries_its_database_directly():
    scanned = _scanned(PLUGINS)
    assert any("pipeline" in p.parts for p in scanned) and any(p.parent.name == "dags" for p in scanned)
    offenders = _offenders()
    assert not offenders, f"ask the Ledger (a method named for what it answers) instead: {offenders}"


def test_the_scan_sees_both_kinds_of_direct_access_and_spares_the_ledger(tmp_path):
    pkg = tmp_path / "plugins" / "closed_loop"
    for folder in ("pipeline", "operators", "ledger"):
        (pkg / folder).mkdir(parents=True)
    (tmp_path / "dags").mkdir()
    (pkg / "pipeline" / "bad.py").write_text("from sqlalchemy import select\n", encoding="utf-8")
    (pkg / "operators" / "worse.py").write_text("with ledger.session() as s:\n    pass\n", encoding="utf-8")
    (tmp_path / "dags" / "wired.py").write_text("import sqlalchemy\n", encoding="utf-8")
    (pkg / "ledger" / "sends.py").write_text("from sqlalchemy import select\n", encoding="utf-8")
    (pkg / "pipeline" / "fine.py").write_text("ledger.sends_due(today)\n", encoding="utf-8")
    assert set(_offenders(pkg)) == {
        "plugins/closed_loop/pipeline/bad.py",
        "plugins/closed_loop/operators/worse.py",
        "dags/wired.py",
    }
