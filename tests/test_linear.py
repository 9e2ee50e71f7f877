"""The linear server on both trackers (the local one in the store, and Linear's GraphQL API through its fake):
the same contract, one issue per idempotency key whatever fails on the way, and clear errors for bad input."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from sophia_mcp.servers.linear import create_server
from sophia_mcp.settings import Settings
from tests.fakes.linear import API_KEY, OAUTH_TOKEN, LinearState, linear_app
from tests.fakes.server import serve
from tests.support.results import structured, text_of
from tests.support.settings import make_settings
from tests.support.store_file import StoreSQL, sqlite_only

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("demo_store")]


def linear_settings(data_dir: Path, url: str, **overrides: object) -> Settings:
    section = {
        "backend": "linear", "base_url": f"{url}/graphql", "api_key": API_KEY, "team": "CS", "timeout_s": 1,
        "retry_base_s": 0.01, "retry_max_s": 0.1, "max_retries": 2,
    } | overrides  # fmt: skip
    return make_settings(data_dir, linear=section)


@pytest.fixture(params=["local", "linear"])
def tracker_settings(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Settings]:
    if request.param == "local":
        yield make_settings(data_dir)
    else:
        with serve(linear_app(LinearState())) as url:
            yield linear_settings(data_dir, url)


async def test_the_tracker_contract(tracker_settings: Settings) -> None:
    bug = {"title": "Acme cannot export rent roll", "team": "CS", "priority": 2, "labels": ["bug"],
           "description": "Export fails with a 500.", "idempotency_key": "bug:acme:export"}  # fmt: skip
    async with Client(create_server(tracker_settings)) as client:
        teams = structured(await client.call_tool("list_teams", {}))
        first = structured(await client.call_tool("create_issue", bug))
        again = structured(await client.call_tool("create_issue", bug | {"title": "Acme export (retry)"}))
        other = structured(await client.call_tool("create_issue", {"title": "Churn risk at Bolt", "team": "cs"}))
        found = structured(await client.call_tool("search_issues", {"labels": ["bug"]}))
        by_title = structured(await client.call_tool("search_issues", {"text": "churn"}))
        moved = structured(
            await client.call_tool("update_issue", {"issue_id": first["issue"]["identifier"], "state": "in progress"})
        )
        in_progress = structured(await client.call_tool("search_issues", {"state": "In Progress"}))
        resource = await client.read_resource(f"linear://issues/{first['issue']['identifier']}")
    assert "CS" in [t["key"] for t in teams["teams"]] and teams["default_team"] == "CS"
    assert first["new"] and not again["new"] and again["issue"]["id"] == first["issue"]["id"]
    assert first["issue"]["identifier"].startswith("CS-") and first["issue"]["priority"] == 2
    assert first["issue"]["labels"] == ["bug"] and other["new"]
    assert [i["id"] for i in found["issues"]] == [first["issue"]["id"]]
    assert [i["id"] for i in by_title["issues"]] == [other["issue"]["id"]]
    assert moved["state"] == "In Progress" and [i["id"] for i in in_progress["issues"]] == [first["issue"]["id"]]
    assert first["issue"]["identifier"] in resource.contents[0].text  # type: ignore[union-attr]


async def test_a_title_search_takes_wildcards_as_themselves(data_dir: Path) -> None:
    """`%` and `_` in the words searched for are characters of a title, not LIKE's wildcards (a `%` matched every
    issue before)."""
    async with Client(create_server(make_settings(data_dir))) as client:
        for title in ("Rent roll 100% late", "Owner_portal login fails", "Churn risk at Bolt"):
            assert not (await client.call_tool("create_issue", {"title": title, "team": "CS"})).is_error
        found = {}
        for text in ("%", "_", "100%", "r_p"):
            page = structured(await client.call_tool("search_issues", {"text": text, "limit": 50}))
            found[text] = {i["title"] for i in page["issues"]}
    assert found["%"] == found["100%"] == {"Rent roll 100% late"}
    assert found["_"] == {"Owner_portal login fails"}
    assert found["r_p"] == {"Owner_portal login fails"}


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("create_issue", {"title": "x", "team": "NOPE"}, "Unknown team 'NOPE'"),
        ("create_issue", {"title": ""}, "title"),
        ("create_issue", {"title": "x", "priority": 7}, "priority"),
        ("update_issue", {"issue_id": "CS-999"}, "Nothing to change"),
        ("update_issue", {"issue_id": "CS-999", "state": "Done"}, "CS-999"),
        ("update_issue", {"issue_id": "not an id", "state": "Done"}, "issue_id"),
    ],
)
async def test_bad_input_is_a_clear_error(
    tracker_settings: Settings, tool: str, arguments: dict[str, Any], expected: str
) -> None:
    async with Client(create_server(tracker_settings)) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error and expected in text_of(result) and "Traceback" not in text_of(result)


async def test_an_unknown_state_names_the_teams_states(tracker_settings: Settings) -> None:
    async with Client(create_server(tracker_settings)) as client:
        issue = structured(await client.call_tool("create_issue", {"title": "Check states"}))["issue"]
        result = await client.call_tool("update_issue", {"issue_id": issue["identifier"], "state": "Parked"})
    assert result.is_error and "Unknown state 'Parked'" in text_of(result) and "Todo" in text_of(result)


async def test_rate_limited_and_failing_linear_still_opens_one_issue(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    url, state = linear
    state.faults += ["ratelimited", "500"]
    async with Client(create_server(linear_settings(data_dir, url))) as client:
        result = structured(await client.call_tool("create_issue", {"title": "Paced", "idempotency_key": "paced"}))
    assert result["new"] and [i["title"] for i in state.issues] == ["Paced"]


async def test_a_create_whose_answer_was_lost_is_found_not_repeated(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    url, state = linear
    settings = linear_settings(data_dir, url, max_retries=0)
    arguments = {"title": "Bolt is at risk", "idempotency_key": "health:bolt:2026-W48"}
    async with Client(create_server(settings)) as client:
        # The team lookup goes through; the create is done by Linear, but its answer comes after the timeout.
        structured(await client.call_tool("list_teams", {}))
        state.faults.append("lost")
        lost = await client.call_tool("create_issue", arguments)
        retried = structured(await client.call_tool("create_issue", arguments))
    assert lost.is_error and "try again" in text_of(lost)
    assert not retried["new"] and len(state.issues) == 1
    assert retried["issue"]["id"] == state.issues[0]["id"]


async def test_wrong_credentials_are_named_without_the_secret(data_dir: Path, linear: tuple[str, LinearState]) -> None:
    url, _ = linear
    async with Client(create_server(linear_settings(data_dir, url, api_key="lin_api_wrong_key_12345"))) as client:
        result = await client.call_tool("list_teams", {})
    assert result.is_error and "refused the credentials" in text_of(result)
    assert "lin_api_wrong_key_12345" not in text_of(result)


async def test_an_oauth_token_goes_as_a_bearer_token(data_dir: Path, linear: tuple[str, LinearState]) -> None:
    url, _ = linear
    async with Client(create_server(linear_settings(data_dir, url, api_key=OAUTH_TOKEN))) as client:
        teams = structured(await client.call_tool("list_teams", {}))
    assert [t["key"] for t in teams["teams"]] == ["CS", "ENG"]


async def test_a_linear_error_quoting_the_key_does_not_leak_it(
    data_dir: Path, demo_store: StoreSQL, linear: tuple[str, LinearState], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, state = linear
    async with Client(create_server(linear_settings(data_dir, url, bug_team="CS"))) as client:
        structured(await client.call_tool("list_teams", {}))  # the teams are known: the next request is the create
        state.faults.append("leaky")
        refused = await client.call_tool("create_issue", {"title": "Export fails"})
        state.faults.append("leaky")
        received = structured(await client.call_tool(
            "report_bug", {"text": "Export fails with a 500", "reporter": "@dana", "channel": "#support"}
        ))  # fmt: skip
    [(last_error,)] = demo_store.rows("SELECT last_error FROM outbox WHERE kind = 'issue'")
    assert refused.is_error and "Linear rejected the request" in text_of(refused)
    assert received["status"] == "received" and "Linear rejected the request" in last_error
    logs = [r.getMessage() for r in caplog.records]
    assert any("Delivery of outbox entry" in line for line in logs)
    for text in [text_of(refused), json.dumps(received), last_error, *logs]:
        assert API_KEY not in text and "fake0000" not in text


@sqlite_only  # never opens the store
def test_the_fake_refuses_a_query_linear_would_refuse(linear: tuple[str, LinearState]) -> None:
    url, _ = linear
    answer = httpx.post(
        f"{url}/graphql", headers={"Authorization": API_KEY}, json={"query": "query { teams { nodes { colour } } }"}
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_get_issue_reads_one_issue_by_identifier_on_either_tracker(tracker_settings: Settings) -> None:
    async with Client(create_server(tracker_settings)) as client:
        created = structured(await client.call_tool("create_issue", {"title": "Acme renewal risk", "team": "CS"}))
        issue = created["issue"]
        by_identifier = structured(await client.call_tool("get_issue", {"issue_id": issue["identifier"]}))
        by_id = structured(await client.call_tool("get_issue", {"issue_id": issue["id"]}))
        missing = await client.call_tool("get_issue", {"issue_id": "CS-999999"})
        bad = await client.call_tool("get_issue", {"issue_id": "not an issue"})
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert by_identifier == by_id == issue
    assert missing.is_error and "CS-999999" in text_of(missing) and "Traceback" not in text_of(missing)
    assert bad.is_error and "issue_id" in text_of(bad)
    assert tools["get_issue"].annotations.read_only_hint and tools["get_issue"].output_schema  # type: ignore[union-attr]
