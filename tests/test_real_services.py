"""The call-analysis workflow with every real backend configured and pointed at its fake, through an MCP client:
sync from Gong, read with the OpenAI-compatible model, alert on Slack; and no configured secret anywhere."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio.to_thread
import pytest
from mcp import Client
from typer.testing import CliRunner

from sophia_mcp.app.backends import build_services
from sophia_mcp.cli.main import app
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.times import utcnow
from sophia_mcp.servers.gong import create_server
from tests.fakes.gong import ACCESS_KEY, ACCESS_SECRET, gong_app
from tests.fakes.openai import API_KEY, OpenAIState, openai_app
from tests.fakes.server import serve
from tests.fakes.slack import BOT_TOKEN, SlackState, slack_app
from tests.support.demo_states import gong_state
from tests.support.processes import env_for
from tests.support.results import text_of
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio
SECRETS = [ACCESS_KEY, ACCESS_SECRET, API_KEY, BOT_TOKEN]


async def test_sync_analyse_and_alert_on_real_backends(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gong, slack, model = gong_state(page_size=50, retry_after="0.05"), SlackState(retry_after="0"), OpenAIState()
    gong.faults = ["429", "500"]
    slack.faults = ["500", "500", "500"]  # Slack is down for the first alert; the outbox keeps it
    with serve(gong_app(gong)) as gong_url, serve(slack_app(slack)) as slack_url, serve(openai_app(model)) as ai_url:
        sections = {
            "gong": {"backend": "gong", "base_url": gong_url, "access_key": ACCESS_KEY,
                     "access_key_secret": ACCESS_SECRET, "retry_base_s": 0.01, "rate_per_second": 1000},
            "openai": {"api_key": API_KEY, "base_url": f"{ai_url}/v1", "model": "gpt-test"},
            "slack": {"backend": "slack", "base_url": f"{slack_url}/api/", "bot_token": BOT_TOKEN},
            "analyst": {"backend": "openai"},
            "health": {"threshold": 100},
        }  # fmt: skip
        data_dir = tmp_path / "data"
        env = env_for(
            data_dir,
            COLUMNS="200",
            **{f"SOPHIA_{s.upper()}__{k.upper()}": str(v) for s, kv in sections.items() for k, v in kv.items()},
        )
        since = (utcnow().date().replace(day=1)).isoformat()

        def run_cli(*args: str) -> str:
            result = CliRunner().invoke(app, list(args), env=env)
            assert result.exit_code == 0, result.output
            return result.output

        synced = await anyio.to_thread.run_sync(run_cli, "calls", "sync", "--since", since)
        assert "new calls" in synced
        call_id = max(gong.calls, key=lambda c: c["metaData"]["started"])["metaData"]["id"]
        outputs = [synced]
        async with Client(create_server(make_settings(data_dir, **sections))) as client:
            for _ in range(2):
                result = await client.call_tool("analyze_call", {"call_id": call_id})
                assert not result.is_error, text_of(result)
                outputs.append(text_of(result))
            report = result.structured_content
        assert report is not None and report["analysis"]["analyst"] == "openai"
        assert report["alert"]["status"] == "pending" and slack.messages == []
        outputs.append(await anyio.to_thread.run_sync(run_cli, "outbox", "deliver"))
        outputs.append(await anyio.to_thread.run_sync(run_cli, "outbox", "deliver"))
        outputs.append(await anyio.to_thread.run_sync(run_cli, "doctor"))
    assert len(slack.messages) == 1 and slack.messages[0]["metadata"]["event_payload"]["key"] == report["alert"]["key"]
    assert model.requests, "the model was asked"
    for text in [*outputs, *(r.getMessage() for r in caplog.records)]:
        for secret in SECRETS:
            assert secret not in text


@pytest.mark.parametrize("backend", ["local", "slack"])
async def test_notifier_contract(tmp_path: Path, backend: str) -> None:
    """Whatever the backend: send returns a reference, and an alert never sent is never reported as sent."""
    state = SlackState(retry_after="0")
    with serve(slack_app(state)) as url:
        slack = {"backend": backend, "base_url": f"{url}/api/", "bot_token": BOT_TOKEN}
        services = build_services(make_settings(tmp_path, slack=slack))
        try:
            alert = Alert(key="contract:1", channel="#client-health", title="t", text="hello")
            assert await services.notifier.already_sent(alert) is None
            ref = await services.notifier.send(alert)
            assert ref
            assert await services.notifier.already_sent(alert) in (None, ref)
            other = Alert(key="contract:2", channel="#client-health", title="t", text="other")
            assert await services.notifier.already_sent(other) is None
        finally:
            services.close()


def test_doctor_checks_each_real_service(tmp_path: Path) -> None:
    gong, slack, model = gong_state(), SlackState(), OpenAIState()
    with serve(gong_app(gong)) as gong_url, serve(slack_app(slack)) as slack_url, serve(openai_app(model)) as ai_url:
        base = {
            "SOPHIA_GONG__BACKEND": "gong", "SOPHIA_GONG__BASE_URL": gong_url,
            "SOPHIA_GONG__ACCESS_KEY": ACCESS_KEY, "SOPHIA_GONG__ACCESS_KEY_SECRET": ACCESS_SECRET,
            "SOPHIA_SLACK__BACKEND": "slack", "SOPHIA_SLACK__BASE_URL": f"{slack_url}/api/",
            "SOPHIA_SLACK__BOT_TOKEN": BOT_TOKEN, "SOPHIA_ANALYST__BACKEND": "openai",
            "SOPHIA_OPENAI__API_KEY": API_KEY, "SOPHIA_OPENAI__BASE_URL": f"{ai_url}/v1",
            "SOPHIA_OPENAI__MODEL": "gpt-test", "SOPHIA_GONG__MAX_RETRIES": "0", "COLUMNS": "200",
        }  # fmt: skip

        def doctor(**changes: str) -> tuple[int, str]:
            result = CliRunner().invoke(app, ["doctor"], env=env_for(tmp_path / "data", **(base | changes)))
            return result.exit_code, result.output

        code, healthy = doctor()
        broken_code, broken = doctor(SOPHIA_GONG__ACCESS_KEY_SECRET="wrong-gong-secret", SOPHIA_OPENAI__MODEL="gpt-9")
    assert code == 0, healthy
    assert "CallSource Gong at" in healthy and "accepted the credentials" in healthy
    assert "Notifier Slack accepted the bot token (team Pay Ready" in healthy
    assert "Analyst the model 'gpt-test'" in healthy
    assert broken_code == 1
    assert "CallSource Gong refused the credentials (HTTP 401)" in broken
    assert "Analyst OpenAI-compatible API: HTTP 404 NotFoundError" in broken
    for text in (healthy, broken):
        for secret in [*SECRETS, "wrong-gong-secret"]:
            assert secret not in text
