"""Attacks on the HTTP surface, each tried as an outsider would over the real transport: a read-only token calling
tools that change data, slow and idle connections under a low file limit, rotating credentials against the rate
and session limits, and the bearer scheme in lower case."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from sophia_mcp.http.serving import report_loop_error
from tests.support.oauth_issuer import issuer
from tests.support.processes import free_port, http_server
from tests.support.results import structured, text_of
from tests.support.store_file import newest_call_ids, outbox_rows

pytestmark = pytest.mark.anyio
TOKEN = "s3cret-token-for-tests-0123456789"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip


def store_digest(data_dir: Path) -> dict[str, str]:
    """Every table's rows, hashed: equal digests mean nothing was written."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            t: hashlib.sha256(repr(sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"')))).encode()).hexdigest()
            for t in tables
        }


# A designed workflow to deploy, then disable.
WORKFLOW = {
    "name": "daily-competitors", "trigger": {"every": "1d"}, "steps": [{"id": "m", "use": "competitor_mentions"}],
    "actions": [{"do": "alert", "rows_of": "m", "channel": "#competitive-intel", "title": "Competitors"}],
}  # fmt: skip


def changing_calls(data_dir: Path, document: Path, issue_id: str) -> dict[str, dict[str, Any]]:
    """Arguments that make each composite tool that is not read-only really change something."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        contact = conn.execute("SELECT id FROM contacts ORDER BY id LIMIT 1").fetchone()[0]
        client = conn.execute("SELECT name FROM clients ORDER BY id LIMIT 1").fetchone()[0]
    return {
        "gong_analyze_call": {"call_id": newest_call_ids(data_dir, 1)[0]},
        "gong_link_call": {"call_id": newest_call_ids(data_dir, 2)[1], "client": client},
        "crm_enrich_contact": {"contact_id": contact, "force": True},
        "crm_enrich_contacts": {"contact_ids": [contact], "force": True},
        "crm_update_contact": {"contact_id": contact, "changes": {"title": "Owner"}},
        "knowledge_ingest_document": {"path": str(document)},
        "knowledge_ingest_text": {"title": "Pricing policy", "text": "Everything is free now."},
        "deploy_workflow": {"spec": WORKFLOW, "request": "Every day, list the competitors to #competitive-intel"},
        "disable_workflow": {"name": WORKFLOW["name"]},
        "knowledge_delete_document": {"document_id": "demo-pricing-policy"},
        "alerts_send_alert": {"text": "Acme at risk", "channel": "#client-health", "idempotency_key": "scope-test"},
        "alerts_set_schedule": {
            "name": "health-monitor",
            "workflow": "health-monitor",
            "every": "5m",
            "enabled": False,
        },
        "alerts_run_health_monitor": {},
        "alerts_retry_alerts": {},
        "linear_create_issue": {"title": "Acme renewal risk", "idempotency_key": "scope-test"},
        "linear_update_issue": {"issue_id": issue_id, "state": "In Progress"},
        "linear_report_bug": {"text": "Export fails", "reporter": "@maria", "channel": "#support"},
        "predict_churn": {"act": True},
        "record_outcome": {"client": client, "outcome": "renewed"},
        "competitive_intelligence": {},
        "build_dashboard": {"request": "client health"},
    }


async def test_a_read_only_token_cannot_call_any_tool_that_changes_data(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.md").write_text("# Gate codes\n\nThe gate code is 4512.\n")
    port = free_port()
    audience = f"http://127.0.0.1:{port}/mcp"
    with issuer() as auth:
        env = auth.env(audience) | {"SOPHIA_KNOWLEDGE__ROOTS": str(folder)}
        with http_server(data_dir, "http", port=port, server="composite", **env) as base:
            reader = httpx2.AsyncClient(
                timeout=60, headers={"Authorization": f"Bearer {auth.token(audience, 'sophia:read')}"}
            )
            async with Client(streamable_http_client(f"{base}/mcp", http_client=reader)) as client:
                tools = (await client.list_tools()).tools
                changing = sorted(t.name for t in tools if not (t.annotations and t.annotations.read_only_hint))
                calls = changing_calls(data_dir, folder / "note.md", "CS-1")
                structured(await client.call_tool("crm_list_clients", {"limit": 1}))  # the store is open: nothing
                before = store_digest(data_dir)  # a read changes from here on
                refused = {name: await client.call_tool(name, calls[name]) for name in changing}
                after = store_digest(data_dir)
                scoring = await client.call_tool("predict_churn", {"act": False})
            token = auth.token(audience, "sophia:read sophia:write")
            writer = httpx2.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {token}"})
            async with Client(streamable_http_client(f"{base}/mcp", http_client=writer)) as client:
                issue = structured(await client.call_tool("linear_create_issue", {"title": "First"}))
                calls = changing_calls(data_dir, folder / "note.md", issue["issue"]["identifier"])
                done = {name: await client.call_tool(name, calls[name]) for name in changing}
    assert set(changing) == set(calls), "a tool that changes data needs arguments in changing_calls"
    assert {"alerts_set_schedule", "knowledge_ingest_text", "record_outcome", "predict_churn"} <= set(changing)
    not_refused = {n: text_of(r) for n, r in refused.items() if not r.is_error or "'sophia:write'" not in text_of(r)}
    assert not_refused == {}
    assert "act=false only reads" in text_of(refused["predict_churn"])
    assert after == before
    assert not scoring.is_error and scoring.structured_content is not None
    failed = {name: text_of(r) for name, r in done.items() if r.is_error}
    assert failed == {}


async def test_over_sse_too_a_read_only_token_cannot_send_an_alert(data_dir: Path) -> None:
    port = free_port()
    audience = f"http://127.0.0.1:{port}/mcp"
    with issuer() as auth, http_server(data_dir, "sse", port=port, server="alerts", **auth.env(audience)) as base:
        reader = {"Authorization": f"Bearer {auth.token(audience, 'sophia:read')}"}
        async with Client(sse_client(f"{base}/sse", headers=reader)) as client:
            refused = await client.call_tool("send_alert", {"text": "Acme at risk", "channel": "#client-health"})
            listed = await client.call_tool("list_alerts", {})
    assert refused.is_error and "needs the scope 'sophia:write'" in text_of(refused)
    assert not listed.is_error and outbox_rows(data_dir) == []


async def test_the_static_token_goes_through_the_one_verifier_and_its_scheme_is_case_insensitive(
    data_dir: Path,
) -> None:
    alert = {"text": "Acme at risk", "channel": "#client-health", "idempotency_key": "static"}
    with http_server(data_dir, "http", server="alerts", SOPHIA_HTTP__BEARER_TOKEN=TOKEN) as base:
        async with httpx.AsyncClient(timeout=10) as http:
            lower = await http.post(
                f"{base}/mcp", json=INITIALIZE, headers=ACCEPT | {"Authorization": f"bearer {TOKEN}"}
            )
            wrong = await http.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT | {"Authorization": "bearer nope"})
        writer = httpx2.AsyncClient(timeout=60, headers={"Authorization": f"bearer {TOKEN}"})
        async with Client(streamable_http_client(f"{base}/mcp", http_client=writer)) as client:
            sent = await client.call_tool("send_alert", alert)
    assert lower.status_code == 200
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    assert not sent.is_error and [k.split("@")[0] for k, _ in outbox_rows(data_dir)] == ["static"]


async def test_rotating_authorization_headers_earns_no_new_allowance(data_dir: Path) -> None:
    port = free_port()
    audience = f"http://127.0.0.1:{port}/mcp"
    with issuer() as auth:
        # A burst of 5, then one more every 10 s: slow enough that no refill falls within the test on a busy machine.
        env = auth.env(audience) | {"SOPHIA_HTTP__RATE_PER_MINUTE": "6"}
        with http_server(data_dir, "http", port=port, **env) as base:
            async with httpx.AsyncClient(timeout=10) as http:
                rotating = [
                    (
                        await http.post(
                            f"{base}/mcp", json=INITIALIZE, headers=ACCEPT | {"Authorization": f"Bearer x{i}"}
                        )
                    )
                    for i in range(20)
                ]
                # Another person's verified token, from the same address, has an allowance of its own.
                other = {"Authorization": f"Bearer {auth.token(audience, sub='u2')}"}
                verified = [(await http.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT | other)) for _ in range(3)]
    codes = [r.status_code for r in rotating]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    assert [r.status_code for r in verified] == [200, 200, 200]


async def test_one_client_cannot_fill_the_session_table(data_dir: Path) -> None:
    env = {"SOPHIA_HTTP__SESSIONS_PER_CLIENT": "3", "SOPHIA_HTTP__BEARER_TOKEN": TOKEN}
    with http_server(data_dir, "http", **env) as base:
        async with httpx.AsyncClient(timeout=10, headers=ACCEPT | {"Authorization": f"Bearer {TOKEN}"}) as http:
            opened = [await http.post(f"{base}/mcp", json=INITIALIZE) for _ in range(4)]
            ended = await http.delete(f"{base}/mcp", headers={"mcp-session-id": opened[0].headers["mcp-session-id"]})
            again = await http.post(f"{base}/mcp", json=INITIALIZE)
    assert [r.status_code for r in opened] == [200, 200, 200, 429]
    assert "end one (HTTP DELETE" in opened[3].json()["error_description"]
    assert ended.status_code == 200 and again.status_code == 200


def _stalled_sockets(port: int, count: int) -> list[socket.socket]:
    """Connections that send the start of a request and then nothing: the slow-headers attack."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
        held.append(sock)
    return held


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_slow_connections_under_a_low_file_limit_neither_starve_nor_kill_the_server(data_dir: Path) -> None:
    port = free_port()
    running: list[subprocess.Popen[str]] = []
    logged: list[str] = []
    env = {"SOPHIA_HTTP__HEADER_TIMEOUT_S": "2", "SOPHIA_HTTP__RATE_PER_MINUTE": "0"}
    with http_server(data_dir, "http", port=port, fd_limit=512, running=running, output=logged, **env) as base:
        held = _stalled_sockets(port, 520)  # more than the server may open files
        async with Client(streamable_http_client(f"{base}/mcp")) as client:
            served = [await client.call_tool("list_calls", {"limit": 1}) for _ in range(20)]
        closed = [_closed_by_server(sock) for sock in held]
        for sock in held:
            sock.close()
        alive = running[0].poll() is None
        async with Client(streamable_http_client(f"{base}/mcp")) as client:
            afterwards = await client.call_tool("list_calls", {"limit": 1})
    assert [r.is_error for r in served] == [False] * 20
    assert all(closed)
    assert alive and not afterwards.is_error
    assert not [line for line in logged if "Too many open files" in line]  # it never ran out


def _raw(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(data)
    return sock


def _response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a body of content-length) read off the socket."""
    seen = b""
    while b"\r\n\r\n" not in seen:
        seen += sock.recv(65536)
    head, _, body = seen.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_body_that_never_arrives_is_answered_408_and_a_stalled_keep_alive_is_closed(data_dir: Path) -> None:
    port = free_port()
    env = {"SOPHIA_HTTP__BODY_TIMEOUT_S": "1", "SOPHIA_HTTP__HEADER_TIMEOUT_S": "1"}
    request = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n"
    with http_server(data_dir, "http", port=port, **env):
        answer = _response(_raw(port, request + b"\r\n{"))
        # A complete request, answered; then the start of a second one on the same connection, and nothing more.
        keep_alive = _raw(port, f"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        replied = _response(keep_alive)
        keep_alive.sendall(b"POST /mcp HTTP/1.1\r\n")
        stalled = [keep_alive.recv(65536) for _ in range(2)]
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in answer
    assert replied.startswith(b"HTTP/1.1 404")
    assert b"" in stalled  # the server hung up rather than wait for the rest of the second request


def test_headers_that_never_end_are_refused_431_before_they_fill_the_memory(data_dir: Path) -> None:
    """The header flood: a request's headers sent on and on within the header deadline. The parser sets no bound of
    its own, so the connection guard refuses them past 16 KB; headers under that still serve, on a new connection."""
    port = free_port()
    with http_server(data_dir, "http", port=port):
        flood = _raw(port, b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Filler: " + b"a" * 20_000 + b"\r\n")
        refused = b"".join(iter(lambda: flood.recv(65536), b""))  # all the server says before it hangs up
        fine = _raw(
            port, f"GET /nothing-here HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Filler: {'a' * 8000}\r\n\r\n".encode()
        )
        served = _response(fine)
    assert refused.startswith(b"HTTP/1.1 431")
    assert served.startswith(b"HTTP/1.1 404")


def test_the_rest_of_a_refused_body_is_not_read_as_a_header_flood_on_the_same_connection(data_dir: Path) -> None:
    """A body over the cap is refused 413 from its declared size, before it has arrived; the client then sends it
    anyway. The server closes the connection after the refusal, so that remainder (20 KB without a blank line) is
    never taken for the next request's headers and answered 431 on a connection the client reuses."""
    port = free_port()
    with http_server(data_dir, "http", port=port, SOPHIA_HTTP__MAX_BODY_MB="0.01"):
        sock = _raw(port, f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: 20002\r\n\r\n".encode())  # fmt: skip
        refused = _response(sock)
        try:
            sock.sendall(b"{" + b" " * 20_000 + b"}")
            after = b"".join(iter(lambda: sock.recv(65536), b""))  # all the server says before it hangs up
        except ConnectionResetError:
            after = b""
    assert refused.startswith(b"HTTP/1.1 413") and b"connection: close" in refused.lower()
    assert after == b""


def test_an_event_loop_error_is_reported_even_when_logging_it_needs_a_file_that_cannot_be_opened(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Out of file descriptors, `accept` fails and the loop reports it; the report itself then failed (the logging
    handler imports a module to format it) and took the server down."""

    class OutOfFiles:
        def default_exception_handler(self, context: dict[str, Any]) -> None:
            raise OSError(24, "Too many open files")

    report_loop_error(OutOfFiles(), {"message": "socket.accept() out of system resource"})  # type: ignore[arg-type]
    assert "socket.accept() out of system resource" in capfd.readouterr().err
