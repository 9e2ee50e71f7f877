"""The knowledge server through an MCP client session: ingestion from roots, search with citations, documents,
and the refusals (a path outside the roots, traversal, an oversized or corrupt file, an empty query)."""

from __future__ import annotations

import io
import json
import multiprocessing
import sqlite3
import struct
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ListRootsResult, Root, TextResourceContents
from typer.testing import CliRunner

from sophia_mcp.cli.main import app
from sophia_mcp.servers.knowledge import create_server
from sophia_mcp.settings import Settings
from sophia_mcp.store.database import Store
from sophia_mcp.store.migrations import MIGRATIONS
from tests.fakes import openai as openai_fake
from tests.fakes import pinecone as pinecone_fake
from tests.fakes.server import serve
from tests.support.processes import SCRIPT, env_for, http_server
from tests.support.results import structured, text_of
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "parking.md").write_text(
        "# Parking policy\n\n## Residents\n\nEvery unit has one assigned parking space.\n\n"
        "## Guests\n\nGuests may park in the visitor lot for up to 48 hours with a pass from the office.\n"
    )
    return folder


def kb_settings(data_dir: Path, root: Path, **knowledge: Any) -> Settings:
    return make_settings(data_dir, knowledge={"roots": [str(root)], **knowledge})


def counts(data_dir: Path) -> tuple[int, int, int]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return tuple(
            conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("documents", "chunks", "vectors")
        )  # type: ignore[return-value]


async def test_tools_and_a_search_over_the_demo_documents(settings: Settings) -> None:
    async with Client(create_server(settings)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        found = structured(
            await client.call_tool("search_documents", {"query": "Who approves a 20% discount?", "limit": 3})
        )
        competitors = structured(
            await client.call_tool("search_documents", {"query": "price", "types": ["competitor_note"]})
        )
        listed = structured(await client.call_tool("list_documents", {"type": "competitor_note"}))
    assert set(tools) == {"ingest_document", "ingest_text", "search_documents", "get_document", "list_documents",
                          "delete_document"}  # fmt: skip
    assert tools["search_documents"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert tools["delete_document"].annotations.destructive_hint is True  # type: ignore[union-attr]
    best = found["hits"][0]
    assert best["document_id"] == "demo-pricing-policy" and "VP of Sales" in " ".join(best["text"].split())
    assert best["citation"].startswith("Pricing policy") and "chunk" in best["citation"]
    assert competitors["hits"] and {h["type"] for h in competitors["hits"]} == {"competitor_note"}
    assert len(listed["documents"]) == 4 and all(d["type"] == "competitor_note" for d in listed["documents"])


async def test_ingest_reingest_change_and_delete_a_file(data_dir: Path, root: Path) -> None:
    before = counts(data_dir)
    async with Client(create_server(kb_settings(data_dir, root))) as client:
        first = structured(await client.call_tool("ingest_document", {"path": "parking.md", "type": "policy"}))
        again = structured(await client.call_tool("ingest_document", {"path": str(root / "parking.md"),
                                                                      "type": "policy"}))  # fmt: skip
        hits = structured(await client.call_tool("search_documents", {"query": "how long can guests park"}))
        (root / "parking.md").write_text("# Parking policy\n\nGuests may park for 24 hours only.\n")
        changed = structured(await client.call_tool("ingest_document", {"path": "parking.md", "type": "policy"}))
        after_change = counts(data_dir)
        detail = structured(
            await client.call_tool("get_document", {"document_id": first["document"]["id"], "include_chunks": True})
        )
        deleted = structured(await client.call_tool("delete_document", {"document_id": first["document"]["id"]}))
        missing = await client.call_tool("get_document", {"document_id": first["document"]["id"]})
    assert first["status"] == "new" and again["status"] == "unchanged" and changed["status"] == "updated"
    assert first["document"]["id"] == again["document"]["id"] == changed["document"]["id"]
    assert hits["hits"][0]["document_id"] == first["document"]["id"] and "48 hours" in hits["hits"][0]["text"]
    assert after_change == (before[0] + 1, before[1] + 1, before[2] + 1)  # the old version's chunks are gone
    assert "24 hours" in detail["chunks"][0]["text"]
    assert deleted["id"] == first["document"]["id"]
    assert missing.is_error and "No document" in text_of(missing)
    assert counts(data_dir) == before


async def test_ingest_search_change_and_delete_on_either_store_engine(
    tmp_path: Path, root: Path, store_settings: dict[str, Any]
) -> None:
    """The knowledge server through a client, once on SQLite and once on PostgreSQL (its `postgres` half): the same
    answers from the same tools, full text and vectors fused as on SQLite."""
    settings = make_settings(tmp_path / "data", knowledge={"roots": [str(root)]}, **store_settings)
    async with Client(create_server(settings)) as client:
        first = structured(await client.call_tool("ingest_document", {"path": "parking.md", "type": "policy"}))
        again = structured(await client.call_tool("ingest_document", {"path": "parking.md", "type": "policy"}))
        note = structured(
            await client.call_tool("ingest_text", {"title": "Gate code", "text": "The gate code is 4512."})
        )
        hits = structured(await client.call_tool("search_documents", {"query": "how long can guests park"}))
        gate = structured(await client.call_tool("search_documents", {"query": "gate code", "limit": 1}))
        (root / "parking.md").write_text("# Parking policy\n\nGuests may park for 24 hours only.\n")
        changed = structured(await client.call_tool("ingest_document", {"path": "parking.md", "type": "policy"}))
        policies = structured(await client.call_tool("list_documents", {"type": "policy"}))
        deleted = structured(await client.call_tool("delete_document", {"document_id": first["document"]["id"]}))
        missing = await client.call_tool("get_document", {"document_id": first["document"]["id"]})
        after = structured(await client.call_tool("search_documents", {"query": "guests park"}))
    assert (first["status"], again["status"], changed["status"]) == ("new", "unchanged", "updated")
    assert hits["hits"][0]["document_id"] == first["document"]["id"] and "48 hours" in hits["hits"][0]["text"]
    assert gate["hits"][0]["document_id"] == note["document"]["id"]
    assert [d["id"] for d in policies["documents"]] == [first["document"]["id"]]
    assert deleted["id"] == first["document"]["id"]
    assert missing.is_error and "No document" in text_of(missing)
    assert first["document"]["id"] not in {h["document_id"] for h in after["hits"]}


async def test_an_ingestion_failing_after_its_vectors_are_written_takes_them_back(data_dir: Path, root: Path) -> None:
    with sqlite3.connect(data_dir / "sophia.db") as conn:  # the store fills up as the document is saved
        conn.execute("CREATE TRIGGER full BEFORE INSERT ON chunks BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
    before = counts(data_dir)
    async with Client(create_server(kb_settings(data_dir, root))) as client:
        failed = await client.call_tool("ingest_document", {"path": "parking.md"})
    assert failed.is_error and "Traceback" not in text_of(failed)
    assert counts(data_dir) == before
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        assert conn.execute("SELECT count(*) FROM pending_vectors").fetchone()[0] == 0


def test_upgrading_the_store_removes_vectors_left_without_a_document(data_dir: Path) -> None:
    db = data_dir / "sophia.db"
    before = counts(data_dir)
    # The store as it was before it noted vectors being written: the migrations after that one run again (those
    # that cannot run twice undone first).
    before_pending = next(n for n, script in enumerate(MIGRATIONS) if "CREATE TABLE pending_vectors" in script)
    with sqlite3.connect(db) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute("DROP TABLE pending_vectors")
        conn.executescript(  # migration 11: call links, name keys, health alert state
            "DROP INDEX calls_unlinked; ALTER TABLE calls DROP COLUMN link; ALTER TABLE calls DROP COLUMN "
            "unlinked_reason; DROP INDEX clients_name_key; ALTER TABLE clients DROP COLUMN name_key; "
            "DROP TABLE health_alert_state;"
        )
        # The hosts of runs and outbox claims.
        conn.executescript("ALTER TABLE workflow_runs DROP COLUMN host; ALTER TABLE outbox DROP COLUMN claimed_host;")
        conn.execute(f"PRAGMA user_version = {before_pending}")
        conn.execute(
            "INSERT INTO vectors (id, vector, metadata, updated_at) "
            "SELECT 'doc-gone#0123456789.' || rowid, vector, metadata, updated_at FROM vectors"
        )
    assert counts(data_dir)[2] == 2 * before[2] > 0
    store = Store(db)
    try:
        assert store.schema_version == version
    finally:
        store.close()
    assert counts(data_dir) == before


def _docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Move-out checklist", level=1)
    document.add_paragraph("Residents return all keys and fobs on the last day.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def docx_with(body: str) -> bytes:
    """A DOCX whose document.xml holds `body` (paragraph XML) as its whole body, or `body` alone when it does not
    start with a paragraph (a malformed part)."""
    base = zipfile.ZipFile(io.BytesIO(_docx_bytes()))
    xml = base.read("word/document.xml").decode()
    head, tail = xml.split("<w:body>")[0], xml.split("</w:body>")[1]
    document = f"{head}<w:body>{body}</w:body>{tail}" if body.startswith("<w:p>") else body
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for member in base.infolist():
            out.writestr(member.filename, document if member.filename == "word/document.xml" else base.read(member))
    return buffer.getvalue()


def declaring(data: bytes, member: str, size: int) -> bytes:
    """The zip with `member`'s uncompressed size declared as `size` (in its local and central headers)."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    raw = bytearray(data)
    struct.pack_into("<I", raw, info.header_offset + 22, size)
    central = raw.find(b"PK\x01\x02" + raw[info.header_offset + 4 : info.header_offset + 6])
    while raw[central + 46 : central + 46 + len(member)] != member.encode():
        central = raw.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", raw, central + 24, size)
    return bytes(raw)


BOMB = "<w:p><w:r><w:t>" + "a" * 50_000_000 + "</w:t></w:r></w:p>"  # 50 MB of XML, 50 KB zipped


@pytest.mark.parametrize(
    ("docx", "expected"),
    [
        (lambda: docx_with(BOMB), "unpacks to more than 20 MB"),
        (lambda: declaring(docx_with(BOMB), "word/document.xml", 1000), "cannot be read (BadZipFile)"),
        (lambda: docx_with("<w:document><w:body><w:p>unclosed"), "cannot be read"),
    ],
    ids=["a zip bomb", "a bomb that lies about its size", "malformed XML"],
)
async def test_a_hostile_docx_is_refused_with_what_is_wrong(
    data_dir: Path, root: Path, docx: Callable[[], bytes], expected: str
) -> None:
    (root / "hostile.docx").write_bytes(docx())
    before = counts(data_dir)
    async with Client(create_server(kb_settings(data_dir, root))) as client:
        result = await client.call_tool("ingest_document", {"path": "hostile.docx"})
    assert result.is_error and expected in text_of(result), text_of(result)
    assert counts(data_dir) == before


async def test_a_slow_document_is_stopped_at_its_time_limit_while_other_requests_are_answered(
    data_dir: Path, root: Path
) -> None:
    # Well within the size limit below, and seconds of python-docx's work: longer than its time limit.
    (root / "slow.docx").write_bytes(docx_with("<w:p><w:r><w:t>Keep the lanes clear.</w:t></w:r></w:p>" * 150_000))
    settings = kb_settings(data_dir, root, parse_timeout_s=1, max_unpacked_mb=100)
    events: list[str] = []
    outcome = []
    reading = anyio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        events.append((message or "").split()[0])
        reading.set()

    async with Client(create_server(settings)) as client:

        async def ingest() -> None:
            outcome.append(
                await client.call_tool("ingest_document", {"path": "slow.docx"}, progress_callback=on_progress)
            )
            events.append("ingest answered")

        async with anyio.create_task_group() as group:
            group.start_soon(ingest)
            await reading.wait()  # the file is being read now
            structured(await client.call_tool("list_documents", {"limit": 1}))
            events.append("answered meanwhile")
    assert events == ["reading", "answered meanwhile", "ingest answered"]
    assert outcome[0].is_error and "longer than 1 s" in text_of(outcome[0])
    assert multiprocessing.active_children() == []  # the parser was killed, not left running


async def test_a_tool_call_stopped_while_its_file_is_read_kills_the_parser(data_dir: Path, root: Path) -> None:
    (root / "slow.docx").write_bytes(docx_with("<w:p><w:r><w:t>Keep the lanes clear.</w:t></w:r></w:p>" * 150_000))
    settings = make_settings(
        data_dir, tool_timeout_s=1, knowledge={"roots": [str(root)], "parse_timeout_s": 600, "max_unpacked_mb": 100}
    )
    async with Client(create_server(settings)) as client:
        stopped = await client.call_tool("ingest_document", {"path": "slow.docx"})
    assert stopped.is_error and "took longer than 1 s" in text_of(stopped)
    assert multiprocessing.active_children() == []


async def test_a_long_document_s_chunks_come_a_page_at_a_time(data_dir: Path, root: Path) -> None:
    sections = [
        f"## Rule {i}\n\n" + f"Rule {i} says residents keep lane {i} clear at all hours. " * 30 for i in range(30)
    ]
    (root / "rules.md").write_text("# House rules\n\n" + "\n\n".join(sections))
    async with Client(create_server(kb_settings(data_dir, root))) as client:
        document = structured(await client.call_tool("ingest_document", {"path": "rules.md"}))["document"]
        pages, start = [], 0
        while start is not None:
            page = structured(
                await client.call_tool(
                    "get_document",
                    {"document_id": document["id"], "include_chunks": True, "chunks_from": start, "chunk_limit": 7},
                )
            )
            pages.append(page["chunks"])
            start = page["next_chunk"]
        whole = await client.read_resource(f"kb://documents/{document['id']}/chunks")
    assert document["chunk_count"] > 14 and all(len(p) == 7 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 7
    assert [c["seq"] for p in pages for c in p] == list(range(document["chunk_count"]))
    assert whole.contents[0].text.count("[chunk ") == document["chunk_count"]  # type: ignore[union-attr]


async def test_pdf_docx_and_html_files_are_read(data_dir: Path, root: Path) -> None:
    from pypdf import PdfWriter

    (root / "moveout.docx").write_bytes(_docx_bytes())
    (root / "page.html").write_text(
        "<html><head><title>Pet policy</title><script>var x=1;</script></head><body><nav>Menu</nav>"
        "<h1>Pet policy</h1><p>Two pets per unit; dogs under 50 pounds.</p></body></html>"
    )
    blank = PdfWriter()
    blank.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    blank.write(buffer)
    (root / "scan.pdf").write_bytes(buffer.getvalue())
    async with Client(create_server(kb_settings(data_dir, root))) as client:
        docx_doc = structured(await client.call_tool("ingest_document", {"path": "moveout.docx"}))
        html_doc = structured(await client.call_tool("ingest_document", {"path": "page.html"}))
        scan = await client.call_tool("ingest_document", {"path": "scan.pdf"})
        chunks = await client.read_resource(f"kb://documents/{html_doc['document']['id']}/chunks")
    assert docx_doc["document"]["title"] == "Move-out checklist" and docx_doc["document"]["format"] == "docx"
    assert html_doc["document"]["title"] == "Pet policy"
    content = chunks.contents[0]
    assert isinstance(content, TextResourceContents) and "50 pounds" in content.text and "var x" not in content.text
    assert scan.is_error and "no text layer" in text_of(scan)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"path": "../outside.md"}, "not a file that may be ingested"),
        ({"path": "/etc/hostname"}, "not a file that may be ingested"),
        ({"path": "nope.md"}, "'nope.md' is not a file that may be ingested"),
        ({"path": "park\x00ing.md"}, "NUL character"),
        ({"path": "big.md"}, "the limit is"),
        ({"path": "broken.pdf"}, "cannot be read"),
        ({"path": "broken.docx"}, "cannot be read"),
        ({"path": "binary.txt"}, "binary data"),
        ({"path": "data.csv"}, "not a format"),
        ({"path": "sub"}, "not a file"),
        ({"path": "link.md"}, "not a file that may be ingested"),
    ],
)
async def test_refused_files_leave_nothing_behind(
    data_dir: Path, root: Path, arguments: dict[str, str], expected: str
) -> None:
    (root.parent / "outside.md").write_text("# Secret\n\nNot for the knowledge base.\n")
    (root / "big.md").write_text("# Big\n\n" + "word " * 400_000)
    (root / "broken.pdf").write_bytes(b"%PDF-1.7\n%broken beyond repair")
    (root / "broken.docx").write_bytes(b"PK\x03\x04 not really a zip")
    (root / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    (root / "data.csv").write_text("a,b\n1,2\n")
    (root / "sub").mkdir()
    (root / "link.md").symlink_to(root.parent / "outside.md")
    before = counts(data_dir)
    async with Client(create_server(kb_settings(data_dir, root, max_file_mb=1))) as client:
        result = await client.call_tool("ingest_document", arguments)
    assert result.is_error, text_of(result)
    assert expected in text_of(result) and "Traceback" not in text_of(result)
    assert counts(data_dir) == before


async def test_no_roots_means_no_files_and_an_empty_query_is_refused(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        no_roots = await client.call_tool("ingest_document", {"path": "/tmp/x.md"})
        empty = await client.call_tool("search_documents", {"query": "   "})
        text = structured(
            await client.call_tool("ingest_text", {"title": "Gate code", "text": "The gate code is 4512."})
        )
        again = structured(
            await client.call_tool("ingest_text", {"title": "Gate code", "text": "The gate code is 4512."})
        )
    assert no_roots.is_error and "SOPHIA_KNOWLEDGE__ROOTS" in text_of(no_roots)
    assert empty.is_error and "empty" in text_of(empty)
    assert text["status"] == "new" and again["status"] == "unchanged"


async def test_probing_paths_cannot_tell_which_exist(data_dir: Path, root: Path) -> None:
    (root.parent / "secret.md").write_text("# Secret\n\nNot for the knowledge base.\n")
    async with Client(create_server(kb_settings(data_dir, root))) as client:
        there = await client.call_tool("ingest_document", {"path": str(root.parent / "secret.md")})
        absent = await client.call_tool("ingest_document", {"path": str(root.parent / "absent.md")})
        through = await client.call_tool("ingest_document", {"path": "../secret.md"})
    assert there.is_error and absent.is_error and through.is_error
    assert text_of(there).replace("secret", "?") == text_of(absent).replace("absent", "?")
    # A client that is not known to share the machine is not told where the server's folders are.
    assert str(root) not in text_of(there) + text_of(through)


def shares(*folders: Path) -> Callable[[Any], Awaitable[ListRootsResult]]:
    """A client's roots callback that shares `folders`."""

    async def roots(_: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=f.as_uri(), name=f.name or "everything") for f in folders])  # type: ignore[arg-type]

    return roots


@pytest.mark.parametrize("client_is_local", [False, True])
async def test_a_client_sharing_the_root_slash_cannot_open_a_folder(
    data_dir: Path, root: Path, client_is_local: bool
) -> None:
    before = counts(data_dir)
    server = create_server(make_settings(data_dir))  # the server opens no folder
    server.client_is_local = client_is_local
    async with Client(server, mode="legacy", list_roots_callback=shares(Path("/"))) as client:
        refused = await client.call_tool("ingest_document", {"path": str(root / "parking.md")})
        prompt = await client.get_prompt("competitor_brief", {"competitor": "AppFolio"})
    assert refused.is_error and "SOPHIA_KNOWLEDGE__ROOTS" in text_of(refused)
    assert counts(data_dir) == before
    assert "AppFolio" in prompt.messages[0].content.text  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_over_stdio_a_client_s_roots_narrow_the_open_folders_and_never_widen_them(
    data_dir: Path, tmp_path: Path, mode: str
) -> None:
    opened, elsewhere = tmp_path / "opened", tmp_path / "elsewhere"
    shared = opened / "shared"
    shared.mkdir(parents=True)
    elsewhere.mkdir()
    (shared / "inside.docx").write_bytes(_docx_bytes())  # read by a worker process of the real server
    (opened / "unshared.md").write_text("# Unshared notes\n\nOpen on the server, not shared by the client.\n")
    (elsewhere / "other.md").write_text("# Other notes\n\nShared by the client, not open on the server.\n")
    params = StdioServerParameters(
        command=SCRIPT, args=["serve", "knowledge"], env=env_for(data_dir, SOPHIA_KNOWLEDGE__ROOTS=str(opened))
    )
    async with Client(params, mode=mode, list_roots_callback=shares(shared, elsewhere)) as client:
        inside = structured(await client.call_tool("ingest_document", {"path": str(shared / "inside.docx")}))
        narrowed = await client.call_tool("ingest_document", {"path": str(opened / "unshared.md")})
        widened = await client.call_tool("ingest_document", {"path": str(elsewhere / "other.md")})
        resource = (await client.read_resource(f"kb://documents/{inside['document']['id']}")).contents[0]
    assert inside["status"] == "new"
    assert isinstance(resource, TextResourceContents)
    assert json.loads(resource.text)["document"]["title"] == "Move-out checklist"
    assert narrowed.is_error and "not a file that may be ingested" in text_of(narrowed)
    assert widened.is_error and "not a file that may be ingested" in text_of(widened)
    # A client on this machine is told which folders are open to it.
    assert str(opened) in text_of(narrowed) and str(shared) in text_of(narrowed)


async def test_over_http_a_client_sharing_the_root_slash_cannot_read_a_server_file(
    data_dir: Path, root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "private" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("The database password is hunter2.\n")
    token = "s3cret-token-for-tests-0123456789"
    env = {"SOPHIA_HTTP__BEARER_TOKEN": token, "SOPHIA_KNOWLEDGE__ROOTS": str(root)}
    before = counts(data_dir)
    with http_server(data_dir, "http", server="knowledge", **env) as base:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        transport = streamable_http_client(f"{base}/mcp", http_client=http)
        async with Client(transport, mode="legacy", list_roots_callback=shares(Path("/"))) as client:
            stolen = await client.call_tool("ingest_document", {"path": str(secret)})
            opened = structured(await client.call_tool("ingest_document", {"path": "parking.md"}))
    assert stolen.is_error and "not a file that may be ingested" in text_of(stolen)
    assert "hunter2" not in text_of(stolen) and str(root) not in text_of(stolen)
    assert opened["status"] == "new"  # the folder the server opens is served as before
    assert counts(data_dir)[0] == before[0] + 1
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        assert conn.execute("SELECT count(*) FROM chunks WHERE text LIKE '%hunter2%'").fetchone()[0] == 0


def test_kb_commands_on_pinecone_and_openai_configured_by_environment(tmp_path: Path, root: Path) -> None:
    index = pinecone_fake.PineconeState(dimension=1536)
    with (
        serve(pinecone_fake.pinecone_app(index)) as p_url,
        serve(openai_fake.openai_app(openai_fake.OpenAIState())) as o_url,
    ):
        env = env_for(
            tmp_path / "data",
            COLUMNS="200",
            SOPHIA_PINECONE__BACKEND="pinecone",
            SOPHIA_PINECONE__API_KEY=pinecone_fake.API_KEY,
            SOPHIA_PINECONE__INDEX_HOST=p_url,
            SOPHIA_PINECONE__NAMESPACE="kb-test",
            SOPHIA_EMBEDDINGS__BACKEND="openai",
            SOPHIA_OPENAI__API_KEY=openai_fake.API_KEY,
            SOPHIA_OPENAI__BASE_URL=f"{o_url}/v1",
            SOPHIA_KNOWLEDGE__ROOTS=str(root),
        )
        runner = CliRunner()
        ingested = runner.invoke(app, ["kb", "ingest", str(root), "--type", "policy"], env=env)
        found = runner.invoke(app, ["kb", "search", "guests park visitor lot", "--limit", "1"], env=env)
        doctor = runner.invoke(app, ["doctor"], env=env)
    assert ingested.exit_code == 0, ingested.output
    assert found.exit_code == 0 and "Parking policy" in found.output and "48 hours" in found.output
    assert "Pinecone index at" in doctor.output
    vectors = index.namespaces["kb-test"]
    assert len(vectors) >= 2 and "__sophia_model__" in vectors
    for secret in (pinecone_fake.API_KEY, openai_fake.API_KEY):
        assert secret not in ingested.output + found.output + doctor.output


def full_text_in_one_segment(data_dir: Path) -> bool:
    """Whether the full-text index is merged into one segment: an FTS5 merge then has nothing to merge and writes at
    most its bookkeeping row (one that merges writes the index's pages)."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        before = conn.total_changes
        conn.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('merge', -1000)")
        return conn.total_changes - before < 2


def test_the_demo_knowledge_base_is_searched_in_one_full_text_segment(data_dir: Path) -> None:
    assert full_text_in_one_segment(data_dir)  # its 17 documents were ingested in 17 transactions


def test_kb_ingest_of_a_folder_leaves_one_full_text_segment(tmp_path: Path, root: Path) -> None:
    for n in range(5):
        (root / f"note-{n}.md").write_text(f"# Note {n}\n\nVisitor passes for unit {n} are kept at the office.\n")
    env = env_for(tmp_path / "data", SOPHIA_KNOWLEDGE__ROOTS=str(root))
    ingested = CliRunner().invoke(app, ["kb", "ingest", str(root)], env=env)
    assert ingested.exit_code == 0, ingested.output
    assert counts(tmp_path / "data")[0] == 6 and full_text_in_one_segment(tmp_path / "data")


async def test_full_text_out_of_time_leaves_the_vectors_to_answer(data_dir: Path) -> None:
    query = {"query": "who approves a discount above fifteen percent", "limit": 5}
    rules = "\n\n".join(
        f"Discount rule {i}: a discount of {i % 40} percent needs a manager's approval." for i in range(800)
    )
    async with Client(create_server(make_settings(data_dir))) as client:
        structured(await client.call_tool("ingest_text", {"title": "Discount rules", "text": rules}))
        both = structured(await client.call_tool("search_documents", query))["hits"]
    hurried = make_settings(data_dir, knowledge={"lexical_budget_ms": 1e-6})
    async with Client(create_server(hurried)) as client:
        alone = structured(await client.call_tool("search_documents", query))["hits"]
    assert any(h["lexical_rank"] for h in both)
    assert alone and all(h["lexical_rank"] is None and h["vector_rank"] for h in alone)


async def test_a_search_whose_vector_index_cannot_answer_says_what_to_do_in_one_error(settings: Settings) -> None:
    """The vector and full-text rankings run at once; the vectors' refusal reaches the client as itself."""
    with sqlite3.connect(settings.data_dir / "sophia.db") as conn:  # one vector of another size among the demo's
        conn.execute("INSERT INTO vectors VALUES ('odd#0.0', ?, '{}', 'now')", (struct.pack("8f", *[0.5] * 8),))
    async with Client(create_server(settings)) as client:
        result = await client.call_tool("search_documents", {"query": "Who approves a 20% discount?"})
    assert result.is_error, text_of(result)
    assert "more than one size" in text_of(result) and "sophia-mcp kb reindex" in text_of(result)
    assert "Traceback" not in text_of(result) and "ExceptionGroup" not in text_of(result)
