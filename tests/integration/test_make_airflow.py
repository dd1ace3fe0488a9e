"""`make airflow` (scripts/airflow_ui.py): listens on 127.0.0.1 only, says how to log in, and one SIGTERM
stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.distributed import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.airflow


def children(pid: int) -> set[int]:
    """Every process descended from ``pid`` (from /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def listening(port: int) -> set[str]:
    """Local addresses (hex, /proc/net/tcp*) listening on ``port``."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:
                out.add(address)
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


def test_ui_binds_localhost_prints_the_login_and_stops_on_one_sigterm(airflow_home, tmp_path):
    port = free_port()
    env = {**os.environ, "CLOSED_LOOP_AIRFLOW_HOME": str(airflow_home.home), "AIRFLOW_UI_PORT": str(port)}
    out = tmp_path / "ui.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, str(REPO / "scripts" / "airflow_ui.py")], env=env, stdout=sink, stderr=sink
        )
    try:
        for _ in range(600):  # a hang guard, not a timing assertion
            if "login:" in out.read_text() or proc.poll() is not None:
                break
            time.sleep(0.5)
        text = out.read_text()
        login = re.search(r"login:\s+(\S+) / (\S+)", text)
        assert login, text
        password = (airflow_home.home / "ui-passwords.json").read_text()
        assert login.group(2) in password and login.group(1) == "admin"
        assert f"http://127.0.0.1:{port}" in text
        assert listening(port) == {"0100007F"}, listening(port)  # 127.0.0.1, not 0.0.0.0
        started = children(proc.pid)
        assert started, "the UI started no process"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    time.sleep(1)
    assert not [p for p in started if alive(p)], "processes left running after SIGTERM"
    assert not listening(port)
