"""A workflow killed midway (SIGKILL) leaves a run record that says so, and running it again finishes the work
without repeating any side effect already done."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
from mcp import Client

from sophia_mcp.app.backends import build_services
from sophia_mcp.servers.knowledge import create_server
from sophia_mcp.settings import load_settings
from tests.fakes import pinecone as pinecone_fake
from tests.fakes.server import serve
from tests.support.processes import SCRIPT, env_for
from tests.support.results import structured

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


def test_a_killed_ingestion_leaves_no_vectors_to_crowd_out_a_search(tmp_path: Path) -> None:
    root, data_dir = tmp_path / "docs", tmp_path / "data"
    root.mkdir()
    (root / "parking.md").write_text(
        "# Parking policy\n\n## Residents\n\nEvery unit has one assigned parking space.\n\n"
        "## Guests\n\nGuests may park in the visitor lot for up to 48 hours with a pass from the office.\n"
    )
    # Passages as close to the question as the policy's own: left in the index, they would take the search's
    # vector candidate places ahead of it.
    (root / "visitors.md").write_text(
        "# Visitor parking\n\n"
        + "\n\n".join(
            f"## Rule {i}\n\nGuests may park in the visitor lot for up to 48 hours, lot {i}." for i in range(60)
        )
    )
    index = pinecone_fake.PineconeState(dimension=256)
    question = {"query": "How long may guests park in the visitor lot?", "limit": 3}
    with serve(pinecone_fake.pinecone_app(index)) as url:
        pinecone = {"backend": "pinecone", "api_key": pinecone_fake.API_KEY, "index_host": url, "namespace": "kb"}
        env = env_for(data_dir, SOPHIA_KNOWLEDGE__ROOTS=str(root), SOPHIA_PINECONE__BACKEND="pinecone",
                      SOPHIA_PINECONE__API_KEY=pinecone_fake.API_KEY, SOPHIA_PINECONE__INDEX_HOST=url,
                      SOPHIA_PINECONE__NAMESPACE="kb")  # fmt: skip

        async def search() -> list[dict[str, object]]:
            settings = load_settings(data_dir=data_dir, pinecone=pinecone, knowledge={"roots": [str(root)]})
            server = create_server(settings)
            try:
                async with Client(server) as client:
                    return structured(await client.call_tool("search_documents", question))["hits"]  # type: ignore[no-any-return]
            finally:
                server.close()

        kept = subprocess.run([SCRIPT, "kb", "ingest", str(root / "parking.md")], env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert kept.returncode == 0, kept.stderr
        before = anyio.run(search)
        kept_vectors = set(index.namespaces["kb"])
        index.stall_upserts_of = "doc-"  # the next document's vectors: stored, then no answer
        proc = subprocess.Popen([SCRIPT, "kb", "ingest", str(root / "visitors.md")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            assert index.stalled.wait(120), "the ingestion never wrote its vectors"
            proc.send_signal(signal.SIGKILL)  # its vectors are in the index, its document is not in the store
            proc.wait(timeout=10)
        finally:
            index.release.set()
        assert set(index.namespaces["kb"]) - kept_vectors, "the kill came before the vectors were written"
        after = anyio.run(search)
    assert before and after == before  # the same hits and ranks: no candidate place taken by a leftover
    assert set(index.namespaces["kb"]) == kept_vectors
    assert one(data_dir / "sophia.db", "SELECT count(*) FROM pending_vectors") == 0
