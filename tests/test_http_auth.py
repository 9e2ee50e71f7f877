"""Serving over HTTP: a bearer token when one is set (none reaches a tool without it), Origin and Host checks,
and no listening beyond loopback without authentication."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from sophia_mcp.servers import composite, gong
from tests.support.oauth_issuer import ISSUER, issuer, signing_key
from tests.support.processes import SCRIPT, env_for, free_port, http_server
from tests.support.results import structured, text_of
from tests.support.settings import make_settings
from tests.support.store_file import outbox_rows

pytestmark = pytest.mark.anyio
TOKEN = "s3cret-token-for-tests-0123456789"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}  # fmt: skip
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def _session(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> dict[str, str]:
    """Open an MCP session as a client does; the headers to send with its requests."""
    opened = await http.post(url, json=INITIALIZE, headers=ACCEPT | headers)
    assert opened.status_code == 200, opened.text
    session = (
        ACCEPT | headers | {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
    )
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    return session


def _tool_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": arguments}}


async def test_a_tool_call_without_the_token_or_from_a_foreign_origin_never_reaches_the_tool(data_dir: Path) -> None:
    alert = _tool_call("send_alert", {"text": "Acme at risk", "topic": "health", "idempotency_key": "refused"})
    with http_server(data_dir, "http", server="alerts", SOPHIA_HTTP__BEARER_TOKEN=TOKEN) as base:
        url = f"{base}/mcp"
        async with httpx.AsyncClient(timeout=10) as http:
            session = await _session(http, url, {"Authorization": f"Bearer {TOKEN}"})
            without = {k: v for k, v in session.items() if k != "Authorization"}
            refused = [
                (await http.post(url, json=alert, headers=without)).status_code,
                (await http.post(url, json=alert, headers=without | {"Authorization": "Bearer nope"})).status_code,
                (await http.post(url, json=alert, headers=session | {"Origin": "http://evil.example.com"})).status_code,
            ]
            after_refusals = outbox_rows(data_dir)
            served = await http.post(url, json=alert, headers=session)
    assert refused == [401, 401, 403] and after_refusals == []
    assert served.status_code == 200 and [(k.split("@")[0], status) for k, status in outbox_rows(data_dir)] == [
        ("refused", "delivered")
    ]


async def test_requests_without_the_token_are_refused_and_with_it_served(data_dir: Path) -> None:
    with http_server(data_dir, "http", SOPHIA_HTTP__BEARER_TOKEN=TOKEN) as base:
        async with httpx.AsyncClient(timeout=10) as http:
            missing = await http.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT)
            wrong = await http.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT | {"Authorization": "Bearer nope"})
            foreign = await http.post(
                f"{base}/mcp", json=INITIALIZE,
                headers=ACCEPT | {"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example.com"},
            )  # fmt: skip
        authorised = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
        async with Client(streamable_http_client(f"{base}/mcp", http_client=authorised)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            calls = structured(await client.call_tool("list_calls", {"limit": 1}))
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401 and TOKEN not in wrong.text
    assert foreign.status_code in (400, 403)
    assert "list_calls" in tools and len(calls["calls"]) == 1


async def test_over_sse_too_the_stream_needs_the_token(data_dir: Path) -> None:
    with http_server(data_dir, "sse", SOPHIA_HTTP__BEARER_TOKEN=TOKEN) as base:
        async with httpx.AsyncClient(timeout=10) as http:
            missing = await http.get(f"{base}/sse")
            posted = await http.post(f"{base}/messages/?session_id=0" + "0" * 31, json=INITIALIZE)
            async with http.stream("GET", f"{base}/sse", headers={"Authorization": f"Bearer {TOKEN}"}) as stream:
                opened = stream.status_code
                first = await anext(stream.aiter_lines())
    assert missing.status_code == 401 and posted.status_code == 401
    assert opened == 200 and first == "event: endpoint"


async def test_stateless_replicas_on_one_store_share_its_state_and_send_once(data_dir: Path) -> None:
    alert = _tool_call("send_alert", {"text": "Acme at risk", "topic": "health", "idempotency_key": "replicas"})
    env = {"SOPHIA_HTTP__STATELESS": "true", "SOPHIA_HTTP__BEARER_TOKEN": TOKEN}
    headers = ACCEPT | {"Authorization": f"Bearer {TOKEN}"}
    with (
        http_server(data_dir, "http", server="alerts", **env) as one,
        http_server(data_dir, "http", server="alerts", **env) as two,
    ):
        async with httpx.AsyncClient(timeout=10) as http:
            # No session: each request may go to any replica, as behind a load balancer.
            answers = [await http.post(f"{base}/mcp", json=alert, headers=headers) for base in (one, two, one, two)]
    results = [json.loads(a.text.split("data: ", 1)[1]) if "data: " in a.text else a.json() for a in answers]
    assert all(a.status_code == 200 and "mcp-session-id" not in a.headers for a in answers)
    assert [r["result"]["structuredContent"]["new"] for r in results] == [True, False, False, False]
    assert len(outbox_rows(data_dir)) == 1


def test_no_listening_beyond_loopback_without_a_token(data_dir: Path) -> None:
    port = str(free_port())
    refused = subprocess.run(
        [SCRIPT, "serve", "gong", "--transport", "http", "--host", "0.0.0.0", "--port", port],
        env=env_for(data_dir), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    hosts = subprocess.run(
        [SCRIPT, "serve", "gong", "--transport", "http", "--host", "0.0.0.0", "--port", port],
        env=env_for(data_dir, SOPHIA_HTTP__BEARER_TOKEN=TOKEN), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "SOPHIA_HTTP__BEARER_TOKEN" in refused.stderr
    assert hosts.returncode == 2 and "SOPHIA_HTTP__ALLOWED_HOSTS" in hosts.stderr


async def test_oauth_tokens_are_checked_for_signature_issuer_audience_expiry_and_scope(data_dir: Path) -> None:
    other, _ = signing_key()
    with issuer() as auth:
        port = free_port()
        audience = f"http://127.0.0.1:{port}/mcp"
        with http_server(data_dir, "http", port=port, server="knowledge", **auth.env(audience)) as base:
            good = auth.token(audience)
            cases = {
                "none": None, "expired": auth.token(audience, exp=int(time.time()) - 10),
                "audience": auth.token("http://other.example.com/mcp"), "issuer": auth.token(audience, iss="https://evil"),
                "signature": auth.token(audience, key=other), "scope": auth.token(audience, scope="other"),
            }  # fmt: skip
            delete = _tool_call("delete_document", {"document_id": "demo-pricing-policy"})
            async with httpx.AsyncClient(timeout=10) as http:
                answers, deletes = {}, {}
                session = await _session(http, f"{base}/mcp", {"Authorization": f"Bearer {good}"})
                for name, value in cases.items():
                    headers = ACCEPT | ({"Authorization": f"Bearer {value}"} if value else {})
                    answers[name] = (await http.post(f"{base}/mcp", json=INITIALIZE, headers=headers)).status_code
                    # The same token on a tool call in an open session: refused before the tool.
                    on_session = session | {"Authorization": f"Bearer {value}" if value else ""}
                    deletes[name] = (await http.post(f"{base}/mcp", json=delete, headers=on_session)).status_code
                metadata = await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")
            client_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {good}"})
            async with Client(streamable_http_client(f"{base}/mcp", http_client=client_http)) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                read_only = await client.call_tool("delete_document", {"document_id": "demo-pricing-policy"})
            writer = httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {auth.token(audience, scope='sophia:read sophia:write')}"}
            )
            async with Client(streamable_http_client(f"{base}/mcp", http_client=writer)) as client:
                deleted = await client.call_tool("delete_document", {"document_id": "demo-pricing-policy"})
    assert answers == {"none": 401, "expired": 401, "audience": 401, "issuer": 401, "signature": 401, "scope": 403}
    assert deletes == answers  # and the document was still there for the writer to delete, below
    assert metadata.status_code == 200 and metadata.json()["resource"] == audience
    assert ISSUER in [str(s).rstrip("/") for s in metadata.json()["authorization_servers"]]
    assert "search_documents" in tools
    assert read_only.is_error and "needs the scope 'sophia:write'" in text_of(read_only)
    assert not deleted.is_error and deleted.structured_content["id"] == "demo-pricing-policy"


async def test_a_tool_running_past_its_time_is_stopped_with_a_clear_error(data_dir: Path) -> None:
    async with Client(gong.create_server(make_settings(data_dir, tool_timeout_s=1e-6))) as client:
        # By client the calls are read in a worker thread: a wait the timeout can stop (an unfiltered page is
        # read at once, with nothing to stop).
        result = await client.call_tool("list_calls", {"limit": 1, "client": "Acme"})
    assert result.is_error and "took longer than 1e-06 s" in text_of(result)


async def test_a_result_over_the_size_cap_is_refused_with_advice_to_ask_for_less(data_dir: Path) -> None:
    async with Client(gong.create_server(make_settings(data_dir, max_result_kb=16))) as client:
        big = await client.call_tool("list_calls", {"limit": 100})
        small = await client.call_tool("list_calls", {"limit": 5})
    assert big.is_error and "over the 16 KB a result may be" in text_of(big) and "limit" in text_of(big)
    assert not small.is_error and len(small.structured_content["calls"]) == 5  # type: ignore[index]


async def test_a_result_over_the_size_cap_names_the_arguments_that_make_it_smaller(data_dir: Path) -> None:
    async with Client(composite.create_server(make_settings(data_dir, max_result_kb=16))) as client:
        calls = await client.call_tool("gong_list_calls", {"limit": 100})
        fits = int(text_of(calls).split("about ")[1].split(" fit")[0])
        smaller = await client.call_tool("gong_list_calls", {"limit": fits})
        passages = await client.call_tool("knowledge_search_documents", {"query": "pricing", "limit": 50})
    assert calls.is_error and "call it again with a smaller limit (this call's was 100; about" in text_of(calls)
    assert "cursor to read it a page at a time" in text_of(calls)
    assert "client, from_date, to_date, competitor to narrow it" in text_of(calls)
    assert not smaller.is_error and 1 < fits < 100
    assert passages.is_error and "a smaller limit (this call's was 50;" in text_of(passages)
    assert "types, tags, date_from, date_to to narrow it" in text_of(passages) and "cursor" not in text_of(passages)


async def test_a_client_over_its_rate_is_told_to_wait_and_a_huge_body_is_refused(data_dir: Path) -> None:
    env = {"SOPHIA_HTTP__RATE_PER_MINUTE": "60", "SOPHIA_HTTP__MAX_BODY_MB": "0.01"}
    with http_server(data_dir, "http", **env) as base:
        async with httpx.AsyncClient(timeout=10) as http:
            big = await http.post(f"{base}/mcp", content=b"{" + b" " * 20_000 + b"}", headers=ACCEPT)
            statuses = [(await http.post(f"{base}/mcp", json=INITIALIZE, headers=ACCEPT)) for _ in range(12)]
    codes = [r.status_code for r in statuses]
    assert big.status_code == 413
    assert codes[:4] == [200] * 4 and 429 in codes  # a burst of 6 at 60 a minute (the big body took one), then wait
    limited = next(r for r in statuses if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
