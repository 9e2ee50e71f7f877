"""Inputs an outside tester threw at the composite server (issue 14): each is answered with what to fix, never
with "Error executing tool", an internal error or a traceback, and never by echoing a huge argument back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, PromptReference, ResourceTemplateReference

from sophia_mcp.servers.composite import create_server
from sophia_mcp.settings import Settings
from tests.support.results import structured, text_of
from tests.support.store_file import newest_call_ids

pytestmark = pytest.mark.anyio

NOT_OURS = "cursor is not one this tool returned; omit it for the first page"
TEN_MB = "x" * 10_000_000


@pytest.fixture(autouse=True)
def no_crash_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A crash is logged with its traceback (what reaches stderr on stdio); none may be."""
    caplog.set_level(logging.INFO)
    yield
    crashes = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not crashes, crashes[0].getMessage()[:300]


async def refused(settings: Settings, tool: str, arguments: dict[str, Any]) -> str:
    async with Client(create_server(settings)) as client:
        result = await client.call_tool(tool, arguments)
    text = text_of(result)
    assert result.is_error, text[:300]
    assert "Error executing tool" not in text and "Traceback" not in text
    return text


async def test_a_blank_alert_text_is_refused_with_what_to_fix(settings: Settings) -> None:
    text = await refused(settings, "alerts_send_alert", {"text": " \n\t ", "channel": "#client-health"})
    assert text == "text is blank: give the alert's message, in plain text"


@pytest.mark.parametrize("cursor", ["garbage", "12345678901234567890", "-5", "W10", "WyJjYWxscyIsLTFd"])
@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("gong_list_calls", {}),
        ("crm_search_contacts", {}),
        ("crm_list_clients", {}),
        ("knowledge_list_documents", {}),
        ("linear_search_issues", {}),
        ("alerts_list_alerts", {}),
    ],
)
async def test_a_cursor_this_server_did_not_issue_is_refused_not_read_as_page_one(
    settings: Settings, tool: str, arguments: dict[str, Any], cursor: str
) -> None:
    assert await refused(settings, tool, arguments | {"cursor": cursor}) == NOT_OURS


async def test_a_transcript_cursor_this_server_did_not_issue_is_refused(settings: Settings, data_dir: Path) -> None:
    call_id = newest_call_ids(data_dir, 1)[0]
    for cursor in ("12345678901234567890", "-1", "garbage"):
        arguments = {"call_id": call_id, "cursor": cursor}
        assert await refused(settings, "gong_get_transcript", arguments) == NOT_OURS


async def test_one_listings_cursor_is_refused_by_another_and_pages_still_follow(settings: Settings) -> None:
    async with Client(create_server(settings)) as client:
        first = structured(await client.call_tool("crm_list_clients", {"limit": 5}))
        second = structured(await client.call_tool("crm_list_clients", {"limit": 5, "cursor": first["next_cursor"]}))
        elsewhere = await client.call_tool("crm_search_contacts", {"cursor": first["next_cursor"]})
    ids = [c["client"]["id"] for c in first["clients"] + second["clients"]]
    assert len(set(ids)) == 10 and ids == sorted(ids)
    assert elsewhere.is_error and text_of(elsewhere) == NOT_OURS


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("gong_list_calls", {"to_date": "9999-12-31"}, "- to_date: Input should be less than or equal to 2999-12-31"),
        ("gong_list_calls", {"from_date": "0001-01-01"}, "- from_date: Input should be greater than or equal to 1900"),
        (
            "crm_search_contacts",
            {"updated_since": "9999-12-31T23:59:59-05:00"},
            "- updated_since: Input should be less than or equal to 2999-12-31T23:59:59",
        ),
        (
            "crm_enrich_contacts",
            {"since": "0001-01-01T00:00:00+05:00"},
            "- since: Input should be greater than or equal to 1900-01-01T00:00:00Z",
        ),
    ],
)
async def test_a_date_out_of_range_names_the_argument_and_the_range(
    settings: Settings, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    assert expected in await refused(settings, tool, arguments)


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("gong_list_calls", {"client": "x" * 60_000}, "- client: String should have at most 200 characters"),
        ("alerts_retry_alerts", {"alert_ids": [10**20]}, "- alert_ids.0: Input should be less than or equal to"),
        (
            "knowledge_get_document",
            {"document_id": "demo-pricing-policy", "include_chunks": True, "chunks_from": 10**20},
            "- chunks_from: Input should be less than or equal to 1000000",
        ),
    ],
)
async def test_an_oversized_filter_or_number_is_refused_not_crashed(
    settings: Settings, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    assert expected in await refused(settings, tool, arguments)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("alerts://12345678901234567890123", "No alert '12345678901234567890123'"),
        ("gong://calls/12345678901234567890123", "No call with id '12345678901234567890123'"),
        ("crm://contacts/12345678901234567890123", "No contact with id '12345678901234567890123'"),
        ("crm://clients/12345678901234567890123/health", "No client with id '12345678901234567890123'"),
        ("sophia://runs/12345678901234567890123", "No run with id '12345678901234567890123'"),
    ],
)
async def test_a_23_digit_resource_id_is_not_found(settings: Settings, uri: str, expected: str) -> None:
    async with Client(create_server(settings)) as client:
        with pytest.raises(MCPError) as caught:
            await client.read_resource(uri)
    assert caught.value.error.code == INVALID_PARAMS and expected in caught.value.error.message


@pytest.mark.parametrize(
    ("prompt", "arguments", "expected"),
    [
        ("review_call", {"call_id": "999"}, "No call with id '999'. Use gong_list_calls to find call ids."),
        ("review_call", {"call_id": "not a call"}, "- call_id: String should match pattern"),
        ("review_client_calls", {"client": "Acme", "days": "many"}, "- days: Input should be a valid integer"),
        ("no_such_prompt", {}, "Unknown prompt no_such_prompt"),
    ],
)
async def test_a_prompt_it_cannot_render_says_what_to_fix(
    settings: Settings, prompt: str, arguments: dict[str, str], expected: str
) -> None:
    async with Client(create_server(settings)) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt(prompt, arguments)
    assert caught.value.error.code == INVALID_PARAMS and expected in caught.value.error.message
    assert "Internal server error" not in caught.value.error.message


async def test_a_10_mb_argument_is_not_echoed_back(settings: Settings) -> None:
    async with Client(create_server(settings)) as client:
        answers = [
            await client.call_tool("gong_list_calls", {"competitor": TEN_MB}),
            await client.call_tool("crm_update_contact", {"contact_id": "1", "changes": {TEN_MB: "x"}}),
            await client.call_tool("crm_enrich_contacts", {"contact_ids": ["x"] * 1000}),
            await client.call_tool(TEN_MB, {}),
        ]
        with pytest.raises(MCPError) as resource:
            await client.read_resource(f"gong://calls/{TEN_MB}")
        with pytest.raises(MCPError) as prompt:
            await client.get_prompt(TEN_MB, {})
    for answer in answers:
        assert answer.is_error and 0 < len(text_of(answer)) < 3000, text_of(answer)[:300]
    for caught in (resource, prompt):
        assert 0 < len(caught.value.error.message) < 3000


@pytest.mark.parametrize(
    ("ref", "argument"),
    [
        (PromptReference(type="ref/prompt", name="review_client_calls"), "client"),
        (ResourceTemplateReference(type="ref/resource", uri="gong://calls/{call_id}"), "call_id"),
        (ResourceTemplateReference(type="ref/resource", uri="kb://documents/{document_id}"), "document_id"),
    ],
)
async def test_a_60000_character_completion_prefix_suggests_nothing(
    settings: Settings, ref: PromptReference | ResourceTemplateReference, argument: str
) -> None:
    async with Client(create_server(settings)) as client:
        answer = await client.complete(ref, {"name": argument, "value": "x" * 60_000})
    assert answer.completion.values == []
