"""Issue 15 "The ledger is an API": pipelines and operators ask the Ledger questions by name; they import no
SQLAlchemy and open no sessions. The allow-list names the modules still being converted: it only shrinks
(a module that is clean must leave it, and no new module may join it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins" / "closed_loop"
SCANNED = ("pipeline", "operators")
STILL_BEING_CONVERTED: set[str] = set()  # shrink me (empty: every pipeline asks the Ledger)
IMPORT = re.compile(r"^\s*(from|import)\s+sqlalchemy\b", re.MULTILINE)
SESSION = re.compile(r"\.session\(")


def _offenders(root: Path = PLUGINS) -> dict[str, list[str]]:
    out = {}
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            found = [
                f"imports sqlalchemy (line {text[: m.start()].count(chr(10)) + 1})"
                for m in IMPORT.finditer(text)
            ]
            found += [
                f"opens a session (line {text[: m.start()].count(chr(10)) + 1})"
                for m in SESSION.finditer(text)
            ]
            if found:
                out[path.relative_to(root).as_posix()] = found
    return out


def test_no_new_module_queries_the_ledger_database_directly():
    new = {name: why for name, why in _offenders().items() if name not in STILL_BEING_CONVERTED}
    assert not new, f"ask the Ledger (a method named for what it answers) instead: {new}"


@pytest.mark.parametrize("name", sorted(STILL_BEING_CONVERTED))
def test_the_allow_list_only_names_modules_that_still_need_it(name):
    assert (PLUGINS / name).exists(), f"{name} is gone: remove it from STILL_BEING_CONVERTED"
    assert name in _offenders(), (
        f"{name} no longer queries the database: remove it from STILL_BEING_CONVERTED"
    )


def test_the_scan_sees_both_kinds_of_direct_access(tmp_path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "operators").mkdir()
    (tmp_path / "pipeline" / "bad.py").write_text("from sqlalchemy import select\n", encoding="utf-8")
    (tmp_path / "operators" / "worse.py").write_text(
        "with ledger.session() as s:\n    pass\n", encoding="utf-8"
    )
    (tmp_path / "pipeline" / "fine.py").write_text("ledger.sends_due(today)\n", encoding="utf-8")
    assert set(_offenders(tmp_path)) == {"pipeline/bad.py", "operators/worse.py"}
