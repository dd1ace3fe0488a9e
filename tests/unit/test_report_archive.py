"""The report archive: written atomically (never half a file) and readable by its owner only."""

from __future__ import annotations

import os
import stat
from types import SimpleNamespace

import pytest

from closed_loop.pipeline import report as report_pipeline


def _report(html: str, csv: bytes):
    return SimpleNamespace(quarter=SimpleNamespace(label="2026-Q3"), html=html, csv=csv)


def test_archive_files_are_owner_only(tmp_path):
    folder = tmp_path / "reports"
    path = report_pipeline.archive(_report("<html>Acme</html>", b"account\nAcme\n"), folder)
    assert path.read_text() == "<html>Acme</html>"
    assert (folder / "quarterly_report_2026-Q3.csv").read_bytes() == b"account\nAcme\n"
    for file in folder.iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == ["quarterly_report_2026-Q3.csv", path.name]


def test_a_crash_while_archiving_keeps_the_previous_report_whole(tmp_path, monkeypatch):
    folder = tmp_path / "reports"
    report_pipeline.archive(_report("<html>old</html>", b"old\n"), folder)

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        report_pipeline.archive(_report("<html>new</html>" * 1000, b"new\n"), folder)
    assert (folder / "quarterly_report_2026-Q3.html").read_text() == "<html>old</html>"
    assert sorted(p.name for p in folder.iterdir()) == [
        "quarterly_report_2026-Q3.csv",
        "quarterly_report_2026-Q3.html",
    ]
