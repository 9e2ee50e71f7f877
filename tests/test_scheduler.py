"""The scheduler: each due schedule runs once however many schedulers look, a catch-up after downtime runs once
and says what it stood for, a failure is recorded and the schedule goes on, and bad timings are refused."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.errors import ServiceUnavailable
from sophia_mcp.servers.alerts import create_server
from sophia_mcp.settings import DEFAULT_SCHEDULES
from sophia_mcp.workflows import scheduler
from sophia_mcp.workflows.scheduler import Scheduler, sync_schedules
from tests.support.cli import invoke
from tests.support.results import structured, text_of
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio


def set_due(data_dir: Path, name: str, ago: timedelta) -> None:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        conn.execute("UPDATE schedules SET next_run_at = ? WHERE name = ?", (iso(utcnow() - ago), name))


async def test_two_schedulers_run_a_due_schedule_once(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    async def slow(services: Any) -> dict[str, Any]:
        calls.append("ran")
        await anyio.sleep(0.2)
        return {"ok": True}

    monkeypatch.setitem(scheduler.WORKFLOWS, "deliver-outbox", slow)
    settings = make_settings(data_dir, schedules=[{"name": "outbox", "workflow": "deliver-outbox", "every": "1m"}])
    first, second = build_services(settings), build_services(settings)  # two processes' worth of connections
    try:
        await sync_schedules(first, settings.schedules, utcnow())
        runs: list[list[Any]] = []

        async def look(services: Any) -> None:
            runs.append(await Scheduler(services).run_due())

        async with anyio.create_task_group() as group:
            group.start_soon(look, first)
            group.start_soon(look, second)
        again = await Scheduler(first).run_due()  # not due again until a minute has passed
    finally:
        first.close()
        second.close()
    assert calls == ["ran"] and sorted(len(r) for r in runs) == [0, 1] and again == []


async def test_a_catch_up_runs_once_and_counts_what_it_stood_for(data_dir: Path) -> None:
    settings = make_settings(
        data_dir,
        schedules=[
            {"name": "monitor", "workflow": "health-monitor", "every": "5m"},
            {"name": "nightly", "workflow": "deliver-outbox", "cron": "0 2 * * *"},
        ],
    )
    services = build_services(settings)
    try:
        await sync_schedules(services, settings.schedules, utcnow())
        set_due(data_dir, "monitor", timedelta(hours=1, minutes=1))
        # Due at the 02:00 three days before the last one: it missed the three 02:00s since.
        now = utcnow()
        last_two = now.replace(hour=2, minute=0, second=0, microsecond=0)
        last_two -= timedelta(days=1) if last_two > now else timedelta(0)
        set_due(data_dir, "nightly", now - last_two + timedelta(days=3))
        runs = {r.due_at: r for r in await Scheduler(services).run_due()}
        listed = {s.name: s for s in (await scheduler.list_schedules(services))}
    finally:
        services.close()
    assert sorted(r.missed for r in runs.values()) == [3, 12]
    assert all(r.status == "succeeded" for r in runs.values())
    assert listed["monitor"].next_run_at > utcnow() + timedelta(minutes=4)
    assert listed["nightly"].next_run_at.hour == 2 and listed["nightly"].next_run_at > utcnow()
    assert listed["monitor"].recent_runs[0].summary["period"]  # type: ignore[index]


async def test_a_failing_run_is_recorded_and_the_schedule_goes_on(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(services: Any) -> dict[str, Any]:
        raise ServiceUnavailable("the warehouse is gone")

    monkeypatch.setitem(scheduler.WORKFLOWS, "bug-status", broken)
    settings = make_settings(data_dir, schedules=[{"name": "bugs", "workflow": "bug-status", "every": "10m"}])
    services = build_services(settings)
    try:
        await sync_schedules(services, settings.schedules, utcnow())
        [run] = await Scheduler(services).run_due()
        [info] = await scheduler.list_schedules(services)
    finally:
        services.close()
    assert run.status == "failed" and "the warehouse is gone" in (run.error or "")
    assert not info.running and info.next_run_at > utcnow()


async def test_a_schedule_held_by_another_scheduler_is_left_alone(data_dir: Path) -> None:
    settings = make_settings(data_dir, schedules=[{"name": "outbox", "workflow": "deliver-outbox", "every": "1m"}])
    services = build_services(settings)
    try:
        await sync_schedules(services, settings.schedules, utcnow())
        with sqlite3.connect(data_dir / "sophia.db") as conn:
            conn.execute(
                "UPDATE schedules SET lease_owner = 'other', lease_until = ?", (iso(utcnow() + timedelta(minutes=5)),)
            )
        assert await Scheduler(services).run_due() == []
        assert (await scheduler.list_schedules(services))[0].running
    finally:
        services.close()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"cron": "0 25 * * *"}, "not a cron expression (Bad hour)"),
        ({"cron": "every day"}, "not a cron expression"),
        ({"every": "5 minutes"}, "not an interval"),
        ({"every": "0m"}, "not an interval"),
        ({}, "exactly one of cron"),
        ({"cron": "0 2 * * *", "every": "5m"}, "exactly one of cron"),
        ({"cron": "0 2 * * *", "workflow": "coffee"}, "workflow"),
    ],
)
async def test_bad_timings_are_refused(data_dir: Path, arguments: dict[str, Any], expected: str) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        result = await client.call_tool("set_schedule", {"name": "nightly", "workflow": "health-monitor"} | arguments)
    assert result.is_error and expected in text_of(result) and "Traceback" not in text_of(result)


async def test_set_and_list_schedules_through_the_server(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        made = structured(
            await client.call_tool(
                "set_schedule", {"name": "nightly", "workflow": "health-monitor", "cron": "0 2 * * *"}
            )
        )
        listed = structured(await client.call_tool("list_schedules", {}))
    assert made["spec"] == "cron 0 2 * * *" and made["next_run_at"].endswith("02:00:00Z")
    configured = [s.name for s in DEFAULT_SCHEDULES]  # listed before any scheduler has run them
    assert [s["name"] for s in listed["schedules"]] == sorted([*configured, "nightly"])


def test_schedule_once_from_the_command_line(data_dir: Path) -> None:
    code, out = invoke(data_dir, "schedule", "--once")
    assert code == 0, out
    assert out.count("succeeded") == 3 and "period" in out
    code, again = invoke(data_dir, "schedule", "--once")
    assert code == 0 and "succeeded" not in again  # nothing is due yet


async def test_a_fresh_store_lists_the_configured_schedules_with_their_first_run(tmp_path: Path) -> None:
    specs = [{"name": "nightly-churn", "workflow": "churn", "cron": "0 6 * * 1"},
             {"name": "outbox", "workflow": "deliver-outbox", "every": "1m", "enabled": False}]  # fmt: skip
    async with Client(create_server(make_settings(tmp_path / "fresh", schedules=specs))) as client:
        listed = structured(await client.call_tool("list_schedules", {}))["schedules"]
    assert [(s["name"], s["spec"], s["enabled"], s["last_run_at"], s["recent_runs"]) for s in listed] == [
        ("nightly-churn", "cron 0 6 * * 1", True, None, []), ("outbox", "every 1m", False, None, [])
    ]  # fmt: skip
    monday = datetime.fromisoformat(listed[0]["next_run_at"])
    assert (monday.weekday(), monday.hour, monday.minute) == (0, 6, 0)
