"""The inbox: events from outside kept once, processed by a worker with a lease, retried, given up on visibly,
and revived by hand; seen through the CLI and the composite's resources."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.inbox import Incoming
from sophia_mcp.servers.composite import create_server
from tests.support.cli import invoke
from tests.support.settings import make_settings

NO_ACTION = Incoming("slack", "C1/1700000000.000100", "nothing.handles.this", {"text": "hello"})


def keep(data_dir: Path, *events: Incoming) -> list[bool]:
    services = build_services(make_settings(data_dir))
    try:
        return anyio.run(services.inbox.record, list(events))
    finally:
        services.close()


def claim_as_a_worker_that_dies(data_dir: Path, lease: timedelta) -> None:
    """A worker claims every due event for `lease` (negative: a lease that ran out), then dies without finishing."""
    services = build_services(make_settings(data_dir))
    try:
        anyio.run(services.inbox.claim, "worker-that-died", 100, lease)
    finally:
        services.close()


def inbox_resource(data_dir: Path) -> dict[str, Any]:
    """What the composite's sophia://inbox resource shows."""

    async def read() -> dict[str, Any]:
        async with Client(create_server(make_settings(data_dir))) as client:
            contents = (await client.read_resource("sophia://inbox")).contents[0]
        return json.loads(contents.text)  # type: ignore[union-attr,no-any-return]

    return anyio.run(read)


def test_an_event_delivered_three_times_is_kept_once_with_its_deliveries_counted(data_dir: Path) -> None:
    assert keep(data_dir, NO_ACTION, NO_ACTION) == [True, False]
    assert keep(data_dir, NO_ACTION) == [False]
    shown = inbox_resource(data_dir)
    [event] = shown["events"]
    assert (event["event_id"], event["deliveries"], event["status"]) == (NO_ACTION.event_id, 3, "pending")
    assert shown["counts"] == {"pending": 1}


def test_a_failing_event_is_retried_then_dead_and_shown_and_retry_gives_it_fresh_attempts(data_dir: Path) -> None:
    keep(data_dir, NO_ACTION)
    code, out = invoke(data_dir, "inbox", "process")
    assert code == 0, out
    assert "Processed 1 event" in out and "1 pending" in out, out
    code, out = invoke(data_dir, "inbox", "list")
    assert "nothing.handles.this" in out and "pending" in out and "no action for events of kind" in out, out

    # Past its last attempt it is dead: kept and shown, never dropped.
    keep(data_dir, Incoming("gong", "call:42", "nothing.handles.this"))
    code, out = invoke(data_dir, "inbox", "process", env={"SOPHIA_INBOX__MAX_ATTEMPTS": "1"})
    assert code == 0 and "1 dead" in out, out
    code, out = invoke(data_dir, "inbox", "list", "--status", "dead")
    rows = re.findall(r"^\|\s+(\d+) \| (\S+)\s+\| (\w+)", out, re.MULTILINE)
    assert rows == [("2", "nothing.handles.this", "dead")], out
    from_gong = invoke(data_dir, "inbox", "list", "--source", "gong")[1]
    assert re.findall(r"^\|\s+(\d+) \|", from_gong, re.MULTILINE) == ["2"], from_gong
    dead_id = rows[0][0]

    code, out = invoke(data_dir, "inbox", "retry", dead_id, "99999")
    assert code == 0 and "1 dead event of 2 will be tried again" in out, out
    code, out = invoke(data_dir, "inbox", "list", "--status", "dead")
    assert "No event matches" in out, out


def test_an_event_held_by_a_worker_that_died_is_taken_again_only_once_its_lease_has_run_out(
    data_dir: Path,
) -> None:
    keep(data_dir, NO_ACTION)
    # Its lease still runs: another worker leaves it alone.
    claim_as_a_worker_that_dies(data_dir, lease=timedelta(minutes=10))
    assert "Processed 0 events" in invoke(data_dir, "inbox", "process")[1]
    [held] = inbox_resource(data_dir)["events"]
    assert (held["status"], held["attempts"]) == ("working", 1)

    # A lease that ran out (its worker died): the next worker takes that event, and leaves the held one alone.
    keep(data_dir, Incoming("slack", "C1/1700000000.000200", "nothing.handles.this"))
    claim_as_a_worker_that_dies(data_dir, lease=timedelta(seconds=-60))
    _, out = invoke(data_dir, "inbox", "process")
    assert "Processed 1 event;" in out, out
    second, first = inbox_resource(data_dir)["events"]
    assert (first["status"], first["attempts"]) == ("working", 1), first
    assert second["status"] == "pending" and second["attempts"] == 2, second
    assert "no action" in second["last_error"], second


@pytest.mark.anyio
async def test_an_unknown_inbox_event_is_an_error_that_says_where_to_look(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        with pytest.raises(Exception, match="sophia://inbox lists them"):
            await client.read_resource("sophia://inbox/12345")


def test_an_event_held_by_a_process_that_died_on_this_host_is_taken_at_once_not_after_its_lease(
    data_dir: Path,
) -> None:
    keep(data_dir, NO_ACTION)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_worker = f"{socket.gethostname()}:{int(ended.stdout)}:a1b2c3"
    services = build_services(make_settings(data_dir))
    try:
        anyio.run(services.inbox.claim, dead_worker, 100, timedelta(minutes=10))
    finally:
        services.close()
    code, out = invoke(data_dir, "inbox", "process")
    assert code == 0 and "Processed 1 event;" in out, out
    [event] = inbox_resource(data_dir)["events"]
    assert event["attempts"] == 2 and event["status"] == "pending", event


def test_doctor_warns_of_dead_events_and_says_how_to_see_and_retry_them(data_dir: Path) -> None:
    code, out = invoke(data_dir, "doctor")
    assert code == 0 and "Inbox events from outside: none yet" in out, out
    keep(data_dir, NO_ACTION)
    invoke(data_dir, "inbox", "process", env={"SOPHIA_INBOX__MAX_ATTEMPTS": "1"})
    code, out = invoke(data_dir, "doctor")
    assert code == 0 and "1 dead event gave up after the last attempt" in out, out
    assert "inbox list --status dead" in out and "with 1 warning above" in out, out
