"""Every tool a server's words name is a tool of that server: its instructions, tool list, prompts (rendered),
resources and the errors a model commonly provokes, on the composite (prefixed names) and on each domain server
(bare names). A call of a tool or prompt that does not exist is told the nearest real names."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from sophia_mcp.mcp.tool_names import RENAMED
from sophia_mcp.servers import alerts, composite, crm, gong, knowledge, linear
from sophia_mcp.settings import Settings
from tests.support.results import text_of
from tests.support.settings import make_settings
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio

DOMAINS = {"gong": gong, "crm": crm, "knowledge": knowledge, "alerts": alerts, "linear": linear}
SERVERS: dict[str, Any] = {**DOMAINS, "composite": composite}
# Every snake_case word: written here again, so the test does not rely on how the servers find names.
SNAKE_WORD = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")

# The calls a model gets wrong most often (an unknown id, client, document or issue, a bad cursor, a missing or
# read-only argument), by domain and bare tool name; each must answer isError.
MISTAKES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "gong": [
        ("get_call", {"call_id": "4242"}),
        ("get_transcript", {"call_id": "4242"}),
        ("analyze_call", {"call_id": "4242"}),
        ("list_calls", {"cursor": "garbage"}),
        ("list_calls", {"from_date": "2026-02-01", "to_date": "2026-01-01"}),
        ("get_call", {"call_id": "not a call"}),
    ],
    "crm": [
        ("get_contact", {"contact_id": "999999"}),
        ("enrich_contact", {"contact_id": "999999"}),
        ("score_lead", {"contact_id": "999999"}),
        ("update_contact", {"contact_id": "999999", "changes": {"title": "CFO"}}),
        ("update_contact", {"contact_id": "1", "changes": {"lead_score": 90}}),
        ("update_contact", {"contact_id": "1", "changes": {"seniority": "vp"}}),
        ("enrich_contacts", {}),
        ("get_client_health", {"client": "Nobody Such Inc"}),
        ("search_contacts", {"cursor": "garbage"}),
        ("list_clients", {"cursor": "garbage"}),
    ],
    "knowledge": [
        ("get_document", {"document_id": "no-such-doc"}),
        ("delete_document", {"document_id": "no-such-doc"}),
        ("ingest_document", {"path": "/tmp/notes.md"}),
        ("list_documents", {"cursor": "garbage"}),
        ("search_documents", {"query": "   "}),
    ],
    "alerts": [
        ("retry_alerts", {"alert_ids": [999999]}),
        ("list_alerts", {"cursor": "garbage"}),
        ("set_schedule", {"name": "nightly", "workflow": "churn"}),
        ("send_alert", {"text": "x", "blocks": [{}]}),
    ],
    "linear": [
        ("update_issue", {"issue_id": "CS-9999", "state": "Done"}),
        ("update_issue", {"issue_id": "CS-1"}),
        ("create_issue", {"title": "Broken export", "team": "ZZZ"}),
        ("search_issues", {"cursor": "garbage"}),
    ],
    "composite": [
        ("record_outcome", {"client": "Nobody Such Inc", "outcome": "renewed"}),
        ("strategic_query", {"question": "Why is it at risk?", "client": "Nobody Such Inc"}),
        ("query_warehouse", {"sql": "DELETE FROM clients"}),
        ("query_warehouse", {"sql": "SELECT * FROM outbox"}),
    ],
}
# Resources asked for that do not exist, by the server that serves them.
MISSING_RESOURCES = {
    "gong": ["gong://calls/4242", "gong://calls/4242/transcript", "sophia://runs/no-such-run"],
    "crm": ["crm://contacts/999999", "crm://clients/999999", "crm://clients/999999/health"],
    "knowledge": ["kb://documents/no-such-doc", "kb://documents/no-such-doc/chunks"],
    "alerts": ["alerts://999999", "meetings://no-such-meeting"],
    "linear": ["linear://issues/CS-9999"],
    "composite": ["sophia://dashboards/no-such-dashboard", "ui://sophia/dashboard", "nowhere://at/all"],
}

# Prompts asked about something that does not exist.
MISTAKEN_PROMPTS = {"gong": [("review_call", {"call_id": "4242"})]}


def samples(data_dir: Path) -> dict[str, str]:
    """A value for each prompt argument, by its name: real ids from the demo store."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        contact = conn.execute("SELECT id FROM contacts ORDER BY id LIMIT 1").fetchone()[0]
        client = conn.execute("SELECT name FROM clients ORDER BY id LIMIT 1").fetchone()[0]
    return {"call_id": newest_call_ids(data_dir, 1)[0], "contact_id": str(contact), "client": client, "days": "30",
            "competitor": "AppFolio", "question": "Which clients are at risk?", "focus": "pricing",
            "reason": "two outages", "report": "Export fails on Safari", "audience": "the board"}  # fmt: skip


async def all_tool_names(settings: Settings) -> set[str]:
    """Every tool name of every server, bare and prefixed, and the names tools had before a rename."""
    names = {f"{prefix}_{old}" for prefix in DOMAINS for old in RENAMED} | set(RENAMED)
    for module in SERVERS.values():
        async with Client(module.create_server(settings)) as client:
            names |= {t.name for t in (await client.list_tools()).tools}
    return names


async def what_it_says(server: str, settings: Settings, data_dir: Path) -> list[tuple[str, str]]:
    """(where, text) for everything the server says to a model: instructions, the tool, prompt and resource lists,
    every prompt rendered, and the answers to the common mistakes."""
    areas = [*DOMAINS, "composite"] if server == "composite" else [server]
    said: list[tuple[str, str]] = []
    async with Client(SERVERS[server].create_server(settings)) as client:
        said.append(("instructions", client.instructions or ""))
        listings = {"tools": client.list_tools, "prompts": client.list_prompts, "resources": client.list_resources,
                    "templates": client.list_resource_templates}  # fmt: skip
        for kind, listing in listings.items():
            said.append((f"{kind}/list", json.dumps((await listing()).model_dump(mode="json", by_alias=True))))
        values = samples(data_dir)
        for prompt in (await client.list_prompts()).prompts:
            arguments = {a.name: values[a.name] for a in prompt.arguments or []}
            rendered = await client.get_prompt(prompt.name, arguments)
            said.append((f"prompt {prompt.name}", json.dumps(rendered.model_dump(mode="json"))))
            if any(a.required for a in prompt.arguments or []):
                said.append((f"prompt {prompt.name} without arguments", await refusal(client.get_prompt, prompt.name)))
        for area in areas:
            mounted = f"{area}_" if server == "composite" and area in DOMAINS else ""
            for tool, arguments in MISTAKES[area]:
                answer = await client.call_tool(mounted + tool, arguments)
                assert answer.is_error, f"{mounted + tool}({arguments}) did not fail: {text_of(answer)[:300]}"
                said.append((f"{mounted + tool}({arguments})", text_of(answer)))
            for uri in MISSING_RESOURCES[area]:
                said.append((uri, await refusal(client.read_resource, uri)))
            for prompt_name, arguments in MISTAKEN_PROMPTS.get(area, []):
                said.append(
                    (f"prompt {prompt_name}({arguments})", await refusal(client.get_prompt, prompt_name, arguments))
                )
    return said


async def refusal(ask: Callable[..., Any], *args: Any) -> str:
    with pytest.raises(MCPError) as caught:
        await ask(*args)
    return caught.value.error.message


async def tools_of(server: str, settings: Settings) -> set[str]:
    async with Client(SERVERS[server].create_server(settings)) as client:
        return {t.name for t in (await client.list_tools()).tools}


@pytest.mark.parametrize("server", list(SERVERS))
async def test_every_tool_a_server_names_is_one_of_its_own(server: str, data_dir: Path) -> None:
    settings = make_settings(data_dir)
    known = await all_tool_names(settings)
    own = await tools_of(server, settings)
    wrong = [f"{found.group()} in {where}: ...{text[max(0, found.start() - 80):found.end() + 80]!r}..."
             for where, text in await what_it_says(server, settings, data_dir) for found in SNAKE_WORD.finditer(text)
             if found.group() in known and found.group() not in own]  # fmt: skip
    assert wrong == [], f"{server} names tools it does not have:\n" + "\n".join(sorted(wrong))


@pytest.mark.parametrize(
    ("server", "asked", "expected"),
    [
        ("composite", "analyze_call", "Unknown tool analyze_call; did you mean gong_analyze_call?"),
        ("composite", "search_knowledge", "Unknown tool search_knowledge; did you mean knowledge_search_documents?"),
        ("composite", "knowledge_search_knowledge", "did you mean knowledge_search_documents?"),
        ("composite", "gong_analyse_call", "Unknown tool gong_analyse_call; did you mean gong_analyze_call"),
        ("knowledge", "search_knowledge", "Unknown tool search_knowledge; did you mean search_documents?"),
        ("gong", "gong_list_calls", "Unknown tool gong_list_calls; did you mean list_calls?"),
        ("crm", "get_contacts", "did you mean get_contact or "),
        ("linear", "frobnicate", "Unknown tool frobnicate; tools/list lists what this server offers"),
    ],
)
async def test_an_unknown_tool_is_told_the_nearest_real_names(
    server: str, asked: str, expected: str, empty_settings: Settings
) -> None:
    async with Client(SERVERS[server].create_server(empty_settings)) as client:
        answer = await client.call_tool(asked, {})
    assert answer.is_error and expected in text_of(answer), text_of(answer)


async def test_every_bare_domain_tool_asked_of_the_composite_is_pointed_to_its_prefixed_name(
    empty_settings: Settings,
) -> None:
    wrong = {}
    async with Client(composite.create_server(empty_settings)) as client:
        for domain in DOMAINS:
            for tool in await tools_of(domain, empty_settings):
                hint = text_of(await client.call_tool(tool, {}))
                if not hint.endswith(f"; did you mean {domain}_{tool}?"):
                    wrong[tool] = hint
    assert wrong == {}


@pytest.mark.parametrize(
    ("prompt", "arguments", "expected"),
    [
        ("review_cal", {}, "Unknown prompt review_cal; did you mean review_call or "),
        ("no_such_prompt", {}, "Unknown prompt no_such_prompt; prompts/list lists what this server offers"),
        ("review_call", {}, "Missing arguments for the prompt review_call; give these and ask again:\n- call_id: "),
        ("escalate", {"client": "Acme"}, "- reason: required (What happened.)"),
        ("review_call", {"call_id": "1", "speed": "fast"}, "- speed: Unexpected keyword argument"),
    ],
)
async def test_a_prompt_asked_wrongly_is_an_invalid_params_error_saying_which(
    prompt: str, arguments: dict[str, str], expected: str, empty_settings: Settings
) -> None:
    async with Client(composite.create_server(empty_settings)) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt(prompt, arguments)
    assert caught.value.error.code == INVALID_PARAMS
    assert expected in caught.value.error.message, caught.value.error.message
