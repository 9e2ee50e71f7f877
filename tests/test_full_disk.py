"""A full disk (issue 14): tools and the CLI say "disk full" in one line, and no run is left `running`.

SQLite's own `max_page_count` makes its "database or disk is full" happen in any test run; a small tmpfs (when
this runs as root and may mount one) makes the disk itself full, the way it is in production."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.servers.composite import create_server
from sophia_mcp.settings import Settings
from tests.support.processes import SCRIPT, env_for
from tests.support.results import structured, text_of
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio

TEXT = "\n\n".join(f"## Part {n}\n\n" + " ".join(f"renewal{n}x{w} pricing{w}" for w in range(300)) for n in range(20))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MB file system of its own (tmpfs), or a skip where this may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> None:
    """Take every byte left on `disk`."""
    with (disk / "filler").open("ab") as filler:
        try:
            while True:
                filler.write(b"\xff" * 65536)
                filler.flush()
        except OSError:
            pass


class FillingEmbedder:
    """The real embedder, which fills the disk once it has embedded: the steps after it find the disk full."""

    def __init__(self, inner: Any, disk: Path) -> None:
        self.inner, self.disk = inner, disk
        self.model, self.dimension = inner.model, inner.dimension

    async def embed(self, texts: list[str]) -> Any:
        vectors = await self.inner.embed(texts)
        fill(self.disk)
        return vectors


def runs(db: Path, after: str = "") -> list[tuple[str, str, str | None]]:
    """The store's runs started after `after` (an ISO time), oldest first."""
    with sqlite3.connect(db) as conn:
        query = "SELECT workflow, status, error FROM workflow_runs WHERE started_at > ? ORDER BY started_at"
        return conn.execute(query, (after,)).fetchall()


def now() -> str:
    return iso(utcnow())


async def test_a_full_store_answers_disk_full_in_one_line_and_fails_the_run(settings: Settings) -> None:
    server, started = create_server(settings), now()
    async with Client(server) as client:
        structured(await client.call_tool("knowledge_list_documents", {}))  # the store is open
        with server.services.store.transaction() as conn:
            # This connection may grow the file by a few pages only: SQLite's own "database or disk is full".
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages + 8}")
        result = await client.call_tool("knowledge_ingest_text", {"title": "Renewal playbook", "text": TEXT})
    text = text_of(result)
    assert result.is_error and text.startswith("disk full: ") and "\n" not in text, text[:500]
    [(workflow, status, error)] = runs(settings.store_path, started)
    assert workflow == "ingest_document" and status == "failed"
    assert error is not None and error.startswith("disk full: ")


async def test_a_run_cut_short_by_a_full_disk_is_marked_failed(data_dir: Path, small_disk: Path) -> None:
    shutil.copy(data_dir / "sophia.db", small_disk / "sophia.db")
    server, started = create_server(make_settings(small_disk)), now()
    async with Client(server) as client:
        structured(await client.call_tool("knowledge_list_documents", {}))  # the store is open, its space set aside
        server.services.embedder = FillingEmbedder(server.services.embedder, small_disk)
        # The disk fills while the run is under way: the space set aside records its failure at once.
        first = await client.call_tool("knowledge_ingest_text", {"title": "Renewal playbook", "text": TEXT[:20_000]})
        after_first = runs(small_disk / "sophia.db", started)
        # Once more, with nothing set aside now: its record waits for the store to take writes again.
        second = await client.call_tool("knowledge_ingest_text", {"title": "Pricing notes", "text": TEXT[:20_000]})
        (small_disk / "filler").unlink()
        structured(await client.call_tool("alerts_send_alert", {"text": "Space is back", "channel": "#alerts"}))
    for result in (first, second):
        assert result.is_error and text_of(result).startswith("disk full: "), text_of(result)[:500]
    assert [r[:2] for r in after_first] == [("ingest_document", "failed")]
    ingests = runs(small_disk / "sophia.db", started)
    assert [r[:2] for r in ingests] == [("ingest_document", "failed")] * 2
    assert all(error and error.startswith("disk full: ") for _, _, error in ingests)


def test_kb_ingest_on_a_full_disk_says_so_in_one_line(tmp_path: Path, small_disk: Path) -> None:
    (tmp_path / "docs").mkdir()
    document = tmp_path / "docs" / "playbook.md"
    document.write_text(TEXT)
    # Room for the new store and the space it sets aside, not for the document.
    (small_disk / "filler").write_bytes(b"\xff" * (shutil.disk_usage(small_disk).free - 1_500_000))
    data = small_disk / "data"
    done = subprocess.run(
        [SCRIPT, "kb", "ingest", str(document)],
        env=env_for(data, SOPHIA_KNOWLEDGE__ROOTS=f'["{tmp_path / "docs"}"]', COLUMNS="80"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{document}: disk full: "), done.stdout + done.stderr
    assert [status for _, status, _ in runs(data / "sophia.db")] == ["failed"]
