"""A workflow killed midway (SIGKILL) leaves a run record that says so, and running it again finishes the work
without repeating any side effect already done."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sophia_mcp.settings import load_settings
from sophia_mcp.wiring import build_services
from tests.processes import SCRIPT, env_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


def one(db: Path, sql: str) -> object:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def test_a_killed_health_monitor_is_recorded_and_a_rerun_finishes_without_doubling(tmp_path: Path) -> None:
    from health_monitor import seed

    data_dir = tmp_path / "data"
    services = build_services(load_settings(data_dir=data_dir))
    try:
        seed(services, 4000, 0.25)  # enough at-risk clients that sending takes a while
    finally:
        services.close()
    db = data_dir / "sophia.db"
    proc = subprocess.Popen([SCRIPT, "run", "health-monitor"], env=env_for(data_dir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    # Kill it once some issues are sent and others are not: the middle of its side effects.
    while time.monotonic() < deadline and proc.poll() is None:
        sent = one(db, "SELECT count(*) FROM tracker_issues") if db.exists() else 0
        if isinstance(sent, int) and sent >= 50:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the monitor finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    at_risk = one(db, "SELECT count(*) FROM client_health WHERE score < 70")
    done_before = one(db, "SELECT count(*) FROM tracker_issues")
    assert isinstance(done_before, int) and isinstance(at_risk, int) and 0 < done_before < at_risk

    rerun = subprocess.run([SCRIPT, "run", "health-monitor"], env=env_for(data_dir), capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(db) as conn:
        runs = conn.execute("SELECT status, error FROM workflow_runs ORDER BY started_at").fetchall()
        issues = conn.execute("SELECT count(*), count(DISTINCT title) FROM tracker_issues").fetchone()
        alerts = conn.execute("SELECT count(*) FROM outbox WHERE kind = 'alert' AND status = 'delivered'").fetchone()[0]
        pending = conn.execute("SELECT count(*) FROM outbox WHERE status != 'delivered'").fetchone()[0]
    assert runs[0][0] == "failed" and "interrupted" in runs[0][1] and runs[-1] == ("succeeded", None)
    assert issues == (at_risk, at_risk) and alerts == at_risk and pending == 0
