"""The `MeetingScheduler` port on a CalDAV calendar (the `caldav` library: Google Calendar, iCloud, Fastmail,
Nextcloud, Radicale): a meeting goes in the organizer's calendar, with its attendees, at the first free slot of
the working hours on or after the day asked for; the store keeps the booking, as the local backend does.

Exactly once without a distributed transaction: the event's UID comes from the request's key, so writing it
again replaces it. It is written to the calendar first and recorded in the store after; a crash between the two
books it again on the next run, which moves the one event rather than adding a second. A key the store has
already booked is not sent again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from caldav.davclient import DAVClient
from caldav.lib.error import AuthorizationError, DAVError

from sophia_mcp.analysis.slots import Busy, first_free_slot
from sophia_mcp.domain.meetings import Meeting, MeetingRequest
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import ConfigurationError, ServiceUnavailable
from sophia_mcp.settings import CalendarSettings
from sophia_mcp.store.meetings import Meetings, invite, meeting_uid

log = logging.getLogger(__name__)


class CalDAVCalendar:
    name = "caldav"

    def __init__(self, settings: CalendarSettings, ledger: Meetings) -> None:
        if not settings.url:
            raise ConfigurationError("SOPHIA_CALENDAR__BACKEND=caldav needs SOPHIA_CALENDAR__URL")
        self.settings = settings
        self.ledger = ledger
        self.zone = ZoneInfo(settings.timezone)
        self._calendar: Any = None

    # -- the port ---------------------------------------------------------------------------------------

    async def book(self, request: MeetingRequest) -> tuple[Meeting, bool]:
        return (await self.book_all([request]))[0]

    async def book_all(self, requests: list[MeetingRequest]) -> list[tuple[Meeting, bool]]:
        """Each meeting and whether it is new; the new ones placed in free slots of the calendar, in order."""
        booked = await self.ledger.booked([r.key for r in requests])
        new = list({r.key: r for r in requests if r.key not in booked}.values())
        placed = {r.key: r for r in (await anyio.to_thread.run_sync(self._place, new) if new else [])}
        # The store records the new ones at their slots; the ones booked before come back as they were.
        return await self.ledger.book_all([placed.get(r.key, r) for r in requests])

    async def booked(self, keys: list[str]) -> set[str]:
        return await self.ledger.booked(keys)

    async def get(self, uid: str) -> Meeting:
        return await self.ledger.get(uid)

    async def page(
        self,
        client_id: str | None = None,
        starts_from: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Meeting], str | None]:
        return await self.ledger.page(client_id, starts_from, limit, cursor)

    async def check(self) -> str:
        """For `doctor`: the calendar it books in."""
        calendar = await anyio.to_thread.run_sync(self._open)
        return f"CalDAV calendar {self._display_name(calendar)!r} at {self.settings.url}"

    # -- in a worker thread -----------------------------------------------------------------------------

    def _place(self, requests: Sequence[MeetingRequest]) -> list[MeetingRequest]:
        """The requests moved to free slots, each written to the calendar."""
        calendar = self._open()
        earliest = max(utcnow(), min(self._day_start(r.starts_at) for r in requests))
        window_end = earliest + timedelta(days=self.settings.search_days + 1)
        busy = self._busy(calendar, earliest, window_end, {meeting_uid(r.key) for r in requests})
        placed = []
        for request in requests:
            start = first_free_slot(
                busy, max(earliest, self._day_start(request.starts_at)), request.minutes, self.zone,
                self.settings.work_start_hour, self.settings.work_end_hour, self.settings.search_days,
            )  # fmt: skip
            if start is None:
                log.warning("no free slot in %d days of %s: booked as asked", self.settings.search_days, request.key)
                start = request.starts_at
            moved = request.model_copy(update={"starts_at": start})
            busy.append((start, start + timedelta(minutes=request.minutes)))
            self._call(partial(calendar.save_event, invite(moved, meeting_uid(moved.key), method=None)))
            placed.append(moved)
        return placed

    def _open(self) -> Any:
        if self._calendar is None:
            self._calendar = self._call(self._find_calendar)
        return self._calendar

    def _find_calendar(self) -> Any:
        s = self.settings
        client = DAVClient(
            url=s.url, username=s.username, password=s.password.get_secret_value() if s.password else None,
            timeout=int(s.timeout_s),
        )  # fmt: skip
        calendars = client.principal().calendars()
        if s.calendar:
            for calendar in calendars:
                if self._display_name(calendar) == s.calendar:
                    return calendar
            names = ", ".join(repr(self._display_name(c)) for c in calendars) or "none"
            raise ConfigurationError(
                f"No CalDAV calendar named {s.calendar!r} (SOPHIA_CALENDAR__CALENDAR); there are: {names}"
            )
        if calendars:
            return calendars[0]
        return client.calendar(url=s.url)  # the URL names the calendar itself

    def _busy(self, calendar: Any, start: datetime, end: datetime, ours: set[str]) -> list[Busy]:
        """What the calendar holds between `start` and `end` (recurrences expanded), but transparent events and
        the events these requests would write themselves."""
        busy: list[Busy] = []
        events = self._call(lambda: calendar.search(start=start, end=end, event=True, expand=True))
        for event in events:
            component = event.icalendar_component
            if str(component.get("uid", "")) in ours or str(component.get("transp", "")).upper() == "TRANSPARENT":
                continue
            begins = component.get("dtstart")
            if begins is None:
                continue
            ends = component.get("dtend")
            first = self._aware(begins.dt)
            last = self._aware(ends.dt) if ends is not None else first + timedelta(days=1 if _all_day(begins.dt) else 0)
            busy.append((first, last))
        return busy

    def _call(self, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except AuthorizationError:
            raise ConfigurationError(
                "The CalDAV server refused the credentials: check SOPHIA_CALENDAR__USERNAME and "
                "SOPHIA_CALENDAR__PASSWORD"
            ) from None
        except (DAVError, OSError) as exc:
            raise ServiceUnavailable(
                f"The CalDAV calendar at {self.settings.url} did not answer: {type(exc).__name__}"
            ) from None

    # -- times ------------------------------------------------------------------------------------------

    def _day_start(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        return datetime.combine(local.date(), datetime.min.time(), self.zone)

    def _aware(self, value: date | datetime) -> datetime:
        """An event's time as an aware datetime: a floating time is the organizer's; a date is its midnight."""
        if not isinstance(value, datetime):
            return datetime.combine(value, datetime.min.time(), self.zone)
        return value.replace(tzinfo=self.zone) if value.tzinfo is None else value.astimezone(UTC)

    @staticmethod
    def _display_name(calendar: Any) -> str:
        return str(calendar.get_display_name() or calendar.url)


def _all_day(value: date | datetime) -> bool:
    return not isinstance(value, datetime)
