"""The alerts server: routed by topic, sent once per key within the dedupe window, kept when Slack is down and
sent when it returns, and clear errors for bad input."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from sophia_mcp.servers.alerts import create_server
from sophia_mcp.settings import Settings
from tests.fakes.server import serve
from tests.fakes.slack import BOT_TOKEN, SlackState, slack_app
from tests.support.results import structured, text_of
from tests.support.settings import make_settings
from tests.support.store_file import sqlite_only

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("demo_store")]


@pytest.fixture
def slack() -> Iterator[tuple[str, SlackState]]:
    state = SlackState(retry_after="0")
    with serve(slack_app(state)) as url:
        yield url, state


def on_slack(data_dir: Path, url: str, **alerts: Any) -> Settings:
    section = {"backend": "slack", "base_url": f"{url}/api/", "bot_token": BOT_TOKEN, "timeout_s": 1}
    return make_settings(data_dir, slack=section, alerts=alerts)


async def test_topics_route_and_a_key_is_sent_once_within_the_window(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        health = structured(await client.call_tool(
            "send_alert", {"text": "Acme's health fell to 41", "topic": "health", "idempotency_key": "health:acme"}
        ))  # fmt: skip
        again = structured(await client.call_tool(
            "send_alert", {"text": "Acme's health is 40 now", "topic": "health", "idempotency_key": "health:acme"}
        ))  # fmt: skip
        churn = structured(await client.call_tool("send_alert", {"text": "Bolt may churn", "topic": "churn"}))
        plain = structured(await client.call_tool("send_alert", {"text": "FYI", "severity": "info"}))
        named = structured(await client.call_tool("send_alert", {"text": "Hi", "channel": "#random"}))
        listed = structured(await client.call_tool("list_alerts", {"limit": 2}))
        older = structured(await client.call_tool("list_alerts", {"limit": 10, "cursor": listed["next_cursor"]}))
        to_health = structured(await client.call_tool("list_alerts", {"channel": "#client-health"}))
        recent = await client.read_resource("alerts://recent")
        one = await client.read_resource(f"alerts://{churn['entry']['id']}")
    assert health["new"] and health["entry"]["target"] == "#client-health"
    assert health["entry"]["status"] == "delivered"
    assert not again["new"] and again["entry"]["id"] == health["entry"]["id"]
    assert churn["entry"]["target"] == "#leadership" and plain["entry"]["target"] == "#alerts"
    assert named["entry"]["target"] == "#random"
    assert len(listed["alerts"]) == 2 and len(older["alerts"]) == 2
    assert [a["id"] for a in to_health["alerts"]] == [health["entry"]["id"]]
    assert "Bolt may churn" in recent.contents[0].text and "#leadership" in one.contents[0].text  # type: ignore[union-attr]


@sqlite_only  # holds SQLite's one write lock from another connection
async def test_a_repeated_alert_is_answered_while_another_process_writes(data_dir: Path) -> None:
    """An alert already kept within the window is found by a read: it waits neither for the write lock another
    process holds (a health monitor's pass, say) nor for a worker thread."""
    key = {"text": "Acme's health fell to 41", "topic": "health", "idempotency_key": "health:acme"}
    async with Client(create_server(make_settings(data_dir))) as client:
        first = structured(await client.call_tool("send_alert", key))
        writer = sqlite3.connect(data_dir / "sophia.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            with anyio.fail_after(5):  # the store's busy timeout is 30 s
                again = structured(await client.call_tool("send_alert", key))
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    assert first["new"] and not again["new"] and again["entry"]["id"] == first["entry"]["id"]


async def test_a_listing_leaves_an_alerts_blocks_to_its_resource(data_dir: Path) -> None:
    """A page of alerts says what each one says; the Slack layout of the same message is read from its uri, so 20
    alerts with rich blocks do not fill a model's context twice over."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*Line {i}* of the layout"}} for i in range(30)]
    async with Client(create_server(make_settings(data_dir))) as client:
        sent = structured(await client.call_tool(
            "send_alert", {"text": "Acme's health fell to 41", "title": "Acme at 41", "blocks": blocks}
        ))  # fmt: skip
        [listed] = structured(await client.call_tool("list_alerts", {}))["alerts"]
        whole = json.loads((await client.read_resource(listed["uri"])).contents[0].text)  # type: ignore[union-attr]
    assert listed["id"] == sent["entry"]["id"] and listed["uri"] == f"alerts://{listed['id']}"
    said = (listed["title"], listed["text"], listed["severity"], listed["channel"])
    assert said == ("Acme at 41", "Acme's health fell to 41", "warning", "#alerts")
    assert "blocks" not in listed and "payload" not in listed and "Line 7" not in json.dumps(listed)
    assert whole["payload"]["blocks"] == blocks


async def test_past_the_window_the_same_key_alerts_again(data_dir: Path) -> None:
    settings = make_settings(data_dir, alerts={"dedupe_minutes": 0.001})  # 60 ms
    arguments = {"text": "Disk almost full", "idempotency_key": "disk:db1"}
    async with Client(create_server(settings)) as client:
        first = structured(await client.call_tool("send_alert", arguments))
        await anyio.sleep(0.1)
        later = structured(await client.call_tool("send_alert", arguments))
    assert first["new"] and later["new"] and later["entry"]["id"] != first["entry"]["id"]


async def test_slack_down_keeps_the_alert_and_retry_sends_it_once(
    data_dir: Path, slack: tuple[str, SlackState]
) -> None:
    url, state = slack
    state.faults = ["500"]  # Slack fails the first post, then is back
    async with Client(create_server(on_slack(data_dir, url))) as client:
        sent = structured(await client.call_tool("send_alert", {"text": "Acme at risk", "topic": "health"}))
        pending = structured(await client.call_tool("list_alerts", {"status": "pending"}))
        retried = structured(await client.call_tool("retry_alerts", {}))
        again = structured(await client.call_tool("retry_alerts", {"alert_ids": [sent["entry"]["id"]]}))
        resent = structured(await client.call_tool("send_alert", {"text": "Acme at risk", "topic": "health"}))
    assert sent["entry"]["status"] == "pending" and "Slack" in sent["entry"]["last_error"]
    assert [a["id"] for a in pending["alerts"]] == [sent["entry"]["id"]]
    assert retried["delivered"] == 1 and retried["pending"] == 0
    assert again["alerts"][0]["status"] == "delivered" and not resent["new"]
    assert len(state.posted_to("C0HEALTH01")) == 1


async def test_retrying_many_alerts_lists_a_capped_page_pending_first(
    data_dir: Path, slack: tuple[str, SlackState]
) -> None:
    url, state = slack
    state.faults = ["500"] * 56  # every first post fails, and one retry too
    async with Client(create_server(on_slack(data_dir, url))) as client:
        for i in range(55):
            await client.call_tool(
                "send_alert", {"text": f"Client {i} at risk", "topic": "health", "idempotency_key": f"k{i}"}
            )
        retried = structured(await client.call_tool("retry_alerts", {}))
    assert retried["delivered"] == 54 and retried["pending"] == 1
    assert len(retried["alerts"]) == 50 and retried["alerts_omitted"] == 5
    assert retried["alerts"][0]["status"] == "pending"
    assert all(a["status"] == "delivered" for a in retried["alerts"][1:])


@pytest.mark.parametrize(
    ("tool", "arguments", "expected"),
    [
        ("send_alert", {"text": ""}, "text"),
        ("send_alert", {"text": "x", "channel": "General Chat"}, "channel"),
        ("send_alert", {"text": "x", "severity": "meh"}, "severity"),
        ("send_alert", {"text": "x", "blocks": [{"text": "no type"}]}, "type"),
        ("send_alert", {"text": "x", "idempotency_key": "has spaces in it"}, "idempotency_key"),
        ("list_alerts", {"status": "lost"}, "status"),
        ("retry_alerts", {"alert_ids": [999999]}, "No alert 999999"),
    ],
)
async def test_bad_input_is_a_clear_error(data_dir: Path, tool: str, arguments: dict[str, Any], expected: str) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        result = await client.call_tool(tool, arguments)
    assert result.is_error and expected in text_of(result) and "Traceback" not in text_of(result)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_result_text_is_its_structured_content_as_compact_json(data_dir: Path, mode: Any) -> None:
    async with Client(create_server(make_settings(data_dir)), mode=mode) as client:
        await client.call_tool("send_alert", {"text": "Acme's health fell to 41", "idempotency_key": "health:acme"})
        listed = await client.call_tool("list_alerts", {"limit": 5})
    text = text_of(listed)
    # The same record a client validates against the output schema, without the SDK's indentation (half the bytes).
    assert json.loads(text) == structured(listed) and len(structured(listed)["alerts"]) == 1
    assert "\n" not in text and '": ' not in text
