"""Meetings on a real calendar: the CalDAV backend against a real Radicale server on 127.0.0.1, through the alerts
server's health monitor; and the free-slot rule on its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from caldav.davclient import DAVClient
from mcp import Client

from sophia_mcp.analysis.slots import first_free_slot
from sophia_mcp.servers.alerts import create_server
from sophia_mcp.workflows.health_monitor import next_weekday_at
from tests.support.caldav_server import CalDAVServer, radicale
from tests.support.results import structured
from tests.support.settings import make_settings
from tests.support.store_file import set_health

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture
def caldav_server(tmp_path: Path) -> Iterator[CalDAVServer]:
    folder = tmp_path / "radicale"
    folder.mkdir()
    with radicale(folder) as server:
        yield server


def calendar_of(server: CalDAVServer, password: str | None = None):  # type: ignore[no-untyped-def]
    """The user's "Work" calendar, as another CalDAV client sees it (made on first use)."""
    principal = DAVClient(url=server.url, username=server.username, password=password or server.password).principal()
    found = [c for c in principal.calendars() if c.get_display_name() == "Work"]
    return found[0] if found else principal.make_calendar(name="Work")


def busy_event(uid: str, start: datetime, end: datetime) -> str:
    stamp = "%Y%m%dT%H%M%SZ"
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//tests//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{datetime.now(UTC).strftime(stamp)}\r\n"
        f"DTSTART:{start.astimezone(UTC).strftime(stamp)}\r\nDTEND:{end.astimezone(UTC).strftime(stamp)}\r\n"
        "SUMMARY:Quarterly planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def caldav_settings(data_dir: Path, server: CalDAVServer, **extra: object):  # type: ignore[no-untyped-def]
    calendar = {"backend": "caldav", "url": server.url, "username": server.username, "password": server.password,
                "calendar": "Work", "timezone": "America/Chicago"} | extra  # fmt: skip
    return make_settings(data_dir, calendar=calendar)


@pytest.mark.anyio
async def test_a_meeting_lands_in_a_free_slot_of_the_calendar_once_and_another_client_reads_it(
    data_dir: Path, caldav_server: CalDAVServer
) -> None:
    set_health(data_dir, {"c-low-1": 40.0})
    work = calendar_of(caldav_server)
    day = next_weekday_at(datetime.now(UTC), 15).astimezone(CHICAGO).date()
    morning = datetime(day.year, day.month, day.day, 9, tzinfo=CHICAGO)
    work.save_event(busy_event("planning@tests", morning, morning + timedelta(hours=2, minutes=30)))

    async with Client(create_server(caldav_settings(data_dir, caldav_server))) as client:
        runs = [structured(await client.call_tool("run_health_monitor", {})) for _ in range(3)]
        listed = structured(await client.call_tool("list_meetings", {}))

    assert [r["new_meetings"] for r in runs] == [1, 0, 0]
    [meeting] = listed["meetings"]
    # The first half hour of the working day clear of the planning event, in the organizer's time zone.
    assert datetime.fromisoformat(meeting["starts_at"]) == morning + timedelta(hours=2, minutes=30)
    everything = calendar_of(caldav_server).search(event=True)
    ours = [e for e in everything if str(e.icalendar_component["uid"]) != "planning@tests"]

    assert len(ours) == 1  # however often the monitor ran
    event = calendar_of(caldav_server).event_by_uid(meeting["uid"]).icalendar_component
    assert event.decoded("dtstart") == morning + timedelta(hours=2, minutes=30)
    attendees = event["attendee"] if isinstance(event["attendee"], list) else [event["attendee"]]
    assert [str(a) for a in attendees] == [f"mailto:{meeting['attendees'][0]['email']}"]


@pytest.mark.anyio
async def test_a_wrong_calendar_password_is_said_without_the_password(
    data_dir: Path, caldav_server: CalDAVServer
) -> None:
    set_health(data_dir, {"c-low-1": 40.0})
    calendar_of(caldav_server)
    settings = caldav_settings(data_dir, caldav_server, password="not-the-password")
    async with Client(create_server(settings)) as client:
        result = await client.call_tool("run_health_monitor", {})
    text = result.content[0].text  # type: ignore[union-attr]
    assert result.is_error and "SOPHIA_CALENDAR__PASSWORD" in text and "not-the-password" not in text


def slot(busy: list[tuple[datetime, datetime]], earliest: datetime, minutes: int = 30) -> datetime | None:
    return first_free_slot(busy, earliest, minutes, CHICAGO, 9, 17, 10)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=CHICAGO)  # 2026-12-04 is a Friday


def test_a_slot_is_in_working_hours_of_a_weekday_and_clear_of_what_is_busy() -> None:
    assert slot([], local(4, 6)) == local(4, 9)  # before the day starts: its first half hour
    assert slot([], local(4, 16, 45)) == local(7, 9)  # too late on Friday: Monday
    assert slot([(local(4, 9), local(4, 10, 15))], local(4, 9)) == local(4, 10, 30)
    assert slot([(local(4, 9), local(4, 17))], local(4, 9), minutes=60) == local(7, 9)
    assert slot([(local(4, 8), local(30, 23))], local(4, 9)) is None  # nothing free in the days looked at
