"""Bug report -> issue: labels and priority from the report, the reporter's channel told when it is filed and
on every state change, kept when the tracker is down and filed when it is back."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from sophia_mcp.app.backends import build_services
from sophia_mcp.servers.linear import create_server
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.bugs import draft_from_report, notify_status_changes
from sophia_mcp.workflows.delivery import deliver_pending
from tests.fakes.linear import API_KEY, LinearState, linear_app
from tests.fakes.server import serve
from tests.support.results import structured, text_of
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio
REPORT = """<@U024BE7LH> bug: Rent payments by ACH fail with a 500 for Acme
Steps: resident portal > pay rent > ACH. Urgent, month-end is blocked for three clients."""


def told(data_dir: Path, channel: str) -> list[str]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        rows = conn.execute(
            "SELECT json_extract(payload, '$.text') FROM outbox WHERE kind = 'alert' AND target = ? ORDER BY id",
            (channel,),
        )
        return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("text", "title", "priority", "labels"),
    [
        (REPORT, "Rent payments by ACH fail with a 500 for Acme", 1, ["bug", "payments"]),
        ("The owner statement export is broken", "The owner statement export is broken", 2, ["bug", "reporting"]),
        ("[Bug] typo on the login page", "typo on the login page", 4, ["bug", "auth"]),
        ("Residents ask for dark mode in the app", "Residents ask for dark mode in the app", 3, ["bug"]),
    ],
)
def test_a_report_becomes_a_draft(text: str, title: str, priority: int, labels: list[str]) -> None:
    draft = draft_from_report(text, "@maria", "#support", "ENG")
    assert (draft.title, draft.priority, draft.labels) == (title, priority, labels)
    assert "Reported by @maria in #support" in draft.description


async def test_filed_once_and_the_channel_hears_each_state(data_dir: Path) -> None:
    report = {"text": REPORT, "reporter": "@maria", "channel": "#support"}
    async with Client(create_server(make_settings(data_dir))) as client:
        filed = structured(await client.call_tool("report_bug", report))
        again = structured(await client.call_tool("report_bug", report))
        issue = filed["issue"]["identifier"]
        for state in ("In Progress", "In Progress", "Done"):
            structured(await client.call_tool("update_issue", {"issue_id": issue, "state": state}))
        empty = await client.call_tool("report_bug", report | {"text": "   \n  "})
    assert filed["status"] == "filed" and issue.startswith("ENG-") and filed["issue"]["priority"] == 1
    assert filed["issue"]["labels"] == ["bug", "payments"] and filed["acknowledgement"] == "delivered"
    assert again["status"] == "already filed" and again["issue"]["id"] == filed["issue"]["id"]
    messages = told(data_dir, "#support")
    assert len(messages) == 3 and f"filed as {issue}" in messages[0]
    assert "is now In Progress" in messages[1] and "is now Done" in messages[2]
    assert empty.is_error and "Traceback" not in text_of(empty)


@pytest.fixture
def linear() -> Iterator[tuple[str, LinearState]]:
    state = LinearState()
    with serve(linear_app(state)) as url:
        yield url, state


def on_linear(data_dir: Path, url: str) -> Settings:
    # "Down" is a fault the fake answers with; the timeout only has to outlast a loaded machine.
    section = {"backend": "linear", "base_url": f"{url}/graphql", "api_key": API_KEY, "team": "ENG",
               "timeout_s": 15, "max_retries": 0}  # fmt: skip
    return make_settings(data_dir, linear=section)


async def filed_on_linear(settings: Settings, state: LinearState) -> dict[str, Any]:
    """The report filed through the linear server, on the Linear fake: its issue there."""
    async with Client(create_server(settings)) as client:
        structured(await client.call_tool("report_bug", {"text": REPORT, "reporter": "@maria", "channel": "#support"}))
    [issue] = state.issues
    return issue


async def test_linear_down_keeps_the_report_and_files_it_when_back(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    url, state = linear
    settings = on_linear(data_dir, url)
    state.faults = ["500"]  # Linear fails the report's first request, then is back
    async with Client(create_server(settings)) as client:
        kept = structured(await client.call_tool("report_bug", {"text": REPORT, "reporter": "@maria",
                                                                "channel": "#support"}))  # fmt: skip
    assert kept["status"] == "received" and kept["issue"] is None and state.issues == []
    services = build_services(settings)
    try:
        back = await notify_status_changes(services)
        # Someone moves the issue on in Linear itself; the next check tells the channel.
        [issue] = state.issues
        state.move(issue, "Done")
        moved = await notify_status_changes(services)
        still = await notify_status_changes(services)
    finally:
        await services.aclose()
        services.close()
    assert back["filed"] == 1 and moved["state_changes"] == 1 and still["state_changes"] == 0
    messages = told(data_dir, "#support")
    assert "received" in messages[0] and "filed as ENG-1" in messages[1] and "is now Done" in messages[2]
    assert len(messages) == 3 and len(state.issues) == 1


async def test_a_bug_closed_reopened_and_closed_again_is_announced_every_time(data_dir: Path) -> None:
    report = {"text": REPORT, "reporter": "@maria", "channel": "#support"}
    async with Client(create_server(make_settings(data_dir))) as client:
        issue = structured(await client.call_tool("report_bug", report))["issue"]["identifier"]
        for state in ("Done", "Todo", "Done"):
            structured(await client.call_tool("update_issue", {"issue_id": issue, "state": state}))
    messages = told(data_dir, "#support")
    assert len(messages) == 4 and f"filed as {issue}" in messages[0]
    assert [m.rsplit(" is now ", 1)[-1] for m in messages[1:]] == ["Done.", "Todo.", "Done."]


async def test_a_bug_reopened_and_closed_in_linear_itself_is_announced_each_time(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    url, state = linear
    settings = on_linear(data_dir, url)
    issue = await filed_on_linear(settings, state)

    services = build_services(settings)
    changes = []
    try:
        for name in ("Done", "Todo", "Done"):
            state.move(issue, name)
            changes.append((await notify_status_changes(services))["state_changes"])
    finally:
        await services.aclose()
        services.close()
    messages = told(data_dir, "#support")
    assert changes == [1, 1, 1] and len(messages) == 4
    assert [m.rsplit(" is now ", 1)[-1] for m in messages[1:]] == ["Done.", "Todo.", "Done."]


class Died(BaseException):
    """The process dying at this very point (nothing after it runs, no handler catches it)."""


async def test_a_state_change_taken_by_a_process_that_dies_before_sending_is_still_told_once(
    data_dir: Path, linear: tuple[str, LinearState]
) -> None:
    url, state = linear
    settings = on_linear(data_dir, url)
    issue = await filed_on_linear(settings, state)
    state.move(issue, "Done")

    async def dies(*_: object) -> None:
        raise Died

    # It records the change of state, then dies before its message is sent.
    services = build_services(settings)
    services.outbox.enqueue_many = dies  # type: ignore[method-assign]
    with pytest.raises(Died):
        await notify_status_changes(services)
    services.close()
    # The next check finds the change told (none to take), and the outbox's delivery sends the message, once.
    services = build_services(settings)
    try:
        assert (await notify_status_changes(services))["state_changes"] == 0
        await deliver_pending(services)
    finally:
        await services.aclose()
        services.close()
    messages = told(data_dir, "#support")
    assert len(messages) == 2 and messages[1].endswith("is now Done."), messages


async def test_a_report_another_replica_is_filing_this_moment_is_not_told_the_tracker_is_down(data_dir: Path) -> None:
    # The same report made at once on two replicas: the other one holds its issue (claimed, being sent) and tells
    # the channel when it is filed; this one must not say the tracker cannot be reached.
    key = "bug:" + hashlib.sha256(f"@maria\n{REPORT.strip()}".encode()).hexdigest()[:20]
    draft = draft_from_report(REPORT, "@maria", "#support", "ENG")
    services = build_services(make_settings(data_dir))
    try:
        payload = {"key": key, "draft": draft.model_dump(mode="json")}
        [(entry_id, _)] = await services.outbox.enqueue_many("issue", [(key, "ENG", payload)])
        assert await services.outbox.claim([entry_id])
    finally:
        services.close()
    report = {"text": REPORT, "reporter": "@maria", "channel": "#support"}
    async with Client(create_server(make_settings(data_dir))) as client:
        result = structured(await client.call_tool("report_bug", report))
    assert (result["status"], result["acknowledgement"]) == ("received", "sending")
    assert told(data_dir, "#support") == []
