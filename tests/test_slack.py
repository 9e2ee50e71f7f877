"""Alerts through Slack (slack-sdk against the Slack fake): one message per alert, whatever fails on the way."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from mcp import Client
from typer.testing import CliRunner

from sophia_mcp.app.backends import build_services
from sophia_mcp.cli.main import app
from sophia_mcp.domain.notify import Alert
from sophia_mcp.errors import ConfigurationError
from sophia_mcp.servers import alerts
from sophia_mcp.servers.gong import create_server
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.delivery import deliver
from tests.fakes.server import serve
from tests.fakes.slack import BOT_TOKEN, SlackState, slack_app
from tests.support.processes import env_for
from tests.support.results import structured
from tests.support.settings import make_settings
from tests.support.store_file import newest_call_ids, outbox_rows

pytestmark = pytest.mark.anyio
HEALTH = "C0HEALTH01"


@pytest.fixture
def slack() -> Iterator[tuple[str, SlackState]]:
    state = SlackState(retry_after="0", slow_seconds=2.5)
    with serve(slack_app(state)) as url:
        yield url, state


def slack_settings(data_dir: Path, url: str, **overrides: object) -> Settings:
    section = {"backend": "slack", "base_url": f"{url}/api/", "bot_token": BOT_TOKEN, "timeout_s": 1} | overrides
    # A threshold of 100 puts every client under it, so every analysis alerts.
    return make_settings(data_dir, slack=section, health={"threshold": 100})


async def test_an_at_risk_call_posts_one_slack_message(data_dir: Path, slack: tuple[str, SlackState]) -> None:
    url, state = slack
    call_id = newest_call_ids(data_dir, 1)[0]
    async with Client(create_server(slack_settings(data_dir, url))) as client:
        first = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
        again = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    assert first["alert"]["status"] == "delivered" and again["alert"]["new"] is False
    [message] = state.posted_to(HEALTH)
    assert message["metadata"]["event_payload"]["key"] == first["alert"]["key"]
    assert message["blocks"][0]["type"] == "header" and "health" in message["text"]
    assert outbox_rows(data_dir) == [(first["alert"]["key"], "delivered")]


async def test_slack_down_keeps_the_alert_and_delivers_it_later(data_dir: Path, slack: tuple[str, SlackState]) -> None:
    url, state = slack
    state.faults = ["500"] * 3
    call_id = newest_call_ids(data_dir, 1)[0]
    async with Client(create_server(slack_settings(data_dir, url))) as client:
        report = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
    assert report["alert"]["status"] == "pending" and "Slack" in report["alert"]["last_error"]
    assert state.posted_to(HEALTH) == []
    env = env_for(data_dir, SOPHIA_SLACK__BACKEND="slack", SOPHIA_SLACK__BASE_URL=f"{url}/api/",
                  SOPHIA_SLACK__BOT_TOKEN=BOT_TOKEN)  # fmt: skip
    state.faults = []

    def deliver() -> str:
        result = CliRunner().invoke(app, ["outbox", "deliver"], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert "Delivered 1 of 1 pending entries." in await anyio.to_thread.run_sync(deliver)
    assert "Delivered 0 of 0 pending entries." in await anyio.to_thread.run_sync(deliver)
    assert len(state.posted_to(HEALTH)) == 1
    assert outbox_rows(data_dir) == [(report["alert"]["key"], "delivered")]


async def test_a_running_server_delivers_pending_alerts_when_slack_returns(
    data_dir: Path, slack: tuple[str, SlackState]
) -> None:
    url, state = slack
    state.faults = ["500"] * 3
    settings = slack_settings(data_dir, url).model_copy(update={"outbox_interval_s": 0.05})
    call_id = newest_call_ids(data_dir, 1)[0]
    async with Client(create_server(settings)) as client:
        report = structured(await client.call_tool("analyze_call", {"call_id": call_id}))
        assert report["alert"]["status"] == "pending"
        # The server's background task writes the store; there is no event to wait on, so watch it, bounded.
        with anyio.fail_after(10):
            while outbox_rows(data_dir) != [(report["alert"]["key"], "delivered")]:  # noqa: ASYNC110
                await anyio.sleep(0.05)
    assert len(state.posted_to(HEALTH)) == 1


async def test_a_lost_answer_is_not_posted_twice(data_dir: Path, slack: tuple[str, SlackState]) -> None:
    url, state = slack
    state.faults = ["lost"]  # Slack posts, then the answer arrives after the client gave up
    services = build_services(slack_settings(data_dir, url))
    alert = Alert(key="health-alert:c1:42", channel="#client-health", title="t", text="Client at risk")
    try:
        entry, _ = await services.outbox.enqueue(alert)
        entry = await deliver(services, entry.id)
        assert entry.status == "pending" and "Slack could not be reached" in (entry.last_error or "")
        entry = await deliver(services, entry.id)
    finally:
        services.close()
    assert entry.status == "delivered"
    [message] = state.posted_to(HEALTH)
    assert entry.external_ref == message["ts"]
    assert state.calls.count("chat.postMessage") == 1


async def test_rate_limited_slack_is_retried_by_slack_sdk(data_dir: Path, slack: tuple[str, SlackState]) -> None:
    url, state = slack
    state.faults = ["429", "429"]
    services = build_services(slack_settings(data_dir, url))
    try:
        ref = await services.notifier.send(Alert(key="k", channel="#leadership", title="t", text="hello"))
    finally:
        services.close()
    assert [m["ts"] for m in state.posted_to("C0LEAD0001")] == [ref]


@pytest.mark.parametrize(
    ("overrides", "channel", "expected"),
    [
        ({"bot_token": "xoxb-wrong-token-123456"}, "#client-health", "Slack refused chat_postMessage: invalid_auth"),
        ({}, "#no-such-channel", "Slack refused chat_postMessage: channel_not_found"),
    ],
)
async def test_slack_errors_are_clear_and_keep_secrets(
    data_dir: Path,
    slack: tuple[str, SlackState],
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, object],
    channel: str,
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    url, _ = slack
    services = build_services(slack_settings(data_dir, url, **overrides))
    try:
        with pytest.raises(ConfigurationError, match=expected) as caught:
            await services.notifier.send(Alert(key="k", channel=channel, title="t", text="x"))
    finally:
        services.close()
    for text in [str(caught.value), *(r.getMessage() for r in caplog.records)]:
        assert BOT_TOKEN not in text and "xoxb-wrong-token-123456" not in text


async def test_a_slack_error_quoting_the_token_does_not_leak_it(
    data_dir: Path, slack: tuple[str, SlackState], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url, state = slack
    state.faults = ["leaky"]
    async with Client(alerts.create_server(slack_settings(data_dir, url))) as client:
        sent = structured(await client.call_tool("send_alert", {"text": "Acme at risk", "channel": "#client-health"}))
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        [(last_error,)] = conn.execute("SELECT last_error FROM outbox WHERE status = 'pending'").fetchall()
    assert sent["entry"]["status"] == "pending" and "Slack answered chat_postMessage with invalid_auth" in last_error
    logs = [r.getMessage() for r in caplog.records]
    assert any("Delivery of outbox entry" in line for line in logs)
    for text in [json.dumps(sent), last_error, *logs]:
        assert BOT_TOKEN not in text and "fake-0000" not in text


async def test_slack_needs_a_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SOPHIA_SLACK__BOT_TOKEN"):
        build_services(make_settings(tmp_path, slack={"backend": "slack"}))
