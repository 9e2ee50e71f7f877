"""The `MeetingScheduler` port in the store: each meeting request becomes an iCalendar invite (icalendar), kept
with its attendees; the notification that asks for the meeting carries the invite as an .ics attachment.

The invite's UID comes from the request's key, so sending it again (to another calendar, or after a retry)
updates one event instead of adding another.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timedelta

from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.meetings import Attendee, Meeting, MeetingRequest
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.errors import NotFound
from sophia_mcp.store.database import Store

PRODID = "-//sophia-mcp//meetings//EN"


def meeting_uid(key: str) -> str:
    """The invite's UID, from the request's key: the same request is the same event in every calendar."""
    return hashlib.sha256(key.encode()).hexdigest()[:32] + "@sophia-mcp"


def invite(request: MeetingRequest, uid: str, method: str | None = "REQUEST") -> str:
    """The request as an RFC 5545 calendar with one VEVENT and METHOD:REQUEST (`method` None: a calendar
    object to store in a calendar, which RFC 4791 says carries no METHOD)."""
    # icalendar is heavy to import and only booking needs it: loaded then, not at every server's start.
    from icalendar import Calendar, Event, vCalAddress, vText

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    if method is not None:
        calendar.add("method", method)
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", utcnow())
    event.add("dtstart", request.starts_at)
    event.add("dtend", request.starts_at + timedelta(minutes=request.minutes))
    event.add("summary", request.title)
    if request.description:
        event.add("description", request.description)
    organizer = vCalAddress(f"mailto:{request.organizer.email}")
    if request.organizer.name:
        organizer.params["cn"] = vText(request.organizer.name)
    event.add("organizer", organizer)
    for person in request.attendees:
        attendee = vCalAddress(f"mailto:{person.email}")
        if person.name:
            attendee.params["cn"] = vText(person.name)
        attendee.params["role"] = vText("REQ-PARTICIPANT")
        attendee.params["partstat"] = vText("NEEDS-ACTION")
        attendee.params["rsvp"] = vText("TRUE")
        event.add("attendee", attendee, encode=False)
    event.add("status", "CONFIRMED")
    event.add("sequence", 0)
    calendar.add_component(event)
    return calendar.to_ical().decode()


def _meeting(row: sqlite3.Row) -> Meeting:
    return Meeting(
        uid=row["uid"], key=row["key"], title=row["title"], organizer=Attendee.model_validate_json(row["organizer"]),
        attendees=[Attendee.model_validate(a) for a in json.loads(row["attendees"])],
        starts_at=parse_iso(row["starts_at"]), ends_at=parse_iso(row["ends_at"]), ics=row["ics"],
    )  # fmt: skip


class Meetings:
    name = "local"

    def __init__(self, store: Store) -> None:
        self.store = store

    def book_now(self, conn: sqlite3.Connection, request: MeetingRequest) -> tuple[Meeting, bool]:
        """Book inside the caller's transaction (the health monitor books many in one)."""
        row = conn.execute("SELECT * FROM meetings WHERE key = ?", (request.key,)).fetchone()
        if row is not None:
            return _meeting(row), False
        uid = meeting_uid(request.key)
        ends = request.starts_at + timedelta(minutes=request.minutes)
        ics = invite(request, uid)
        conn.execute(
            """
            INSERT INTO meetings (uid, key, title, organizer, attendees, starts_at, ends_at, ics, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (
                uid, request.key, request.title, request.organizer.model_dump_json(),
                json.dumps([a.model_dump() for a in request.attendees]), iso(request.starts_at), iso(ends), ics,
                iso(utcnow()),
            ),
        )  # fmt: skip
        return Meeting(
            uid=uid, key=request.key, title=request.title, organizer=request.organizer, attendees=request.attendees,
            starts_at=request.starts_at, ends_at=ends, ics=ics,
        ), True  # fmt: skip

    def _book(self, request: MeetingRequest) -> tuple[Meeting, bool]:
        with self.store.transaction() as conn:
            return self.book_now(conn, request)

    async def book(self, request: MeetingRequest) -> tuple[Meeting, bool]:
        return await self.store.run(self._book, request)

    async def book_all(self, requests: list[MeetingRequest]) -> list[tuple[Meeting, bool]]:
        """Book many in one transaction (the health monitor's and the churn prediction's): each meeting, and
        whether it is new."""
        return await self.store.run(self._book_all, requests)

    def _book_all(self, requests: list[MeetingRequest]) -> list[tuple[Meeting, bool]]:
        with self.store.transaction() as conn:
            return [self.book_now(conn, request) for request in requests]

    def _find(self, keys: list[str]) -> dict[str, Meeting]:
        found: dict[str, Meeting] = {}
        for at in range(0, len(keys), 500):  # well under SQLite's limit of bound values
            part = keys[at : at + 500]
            marks = ", ".join("?" for _ in part)
            for row in self.store.query(f"SELECT * FROM meetings WHERE key IN ({marks})", part):
                found[row["key"]] = _meeting(row)
        return found

    async def find(self, keys: list[str]) -> dict[str, Meeting]:
        """The meetings already booked for these keys, by key."""
        return await self.store.run(self._find, keys)

    def _get(self, uid: str) -> Meeting:
        row = self.store.query_one("SELECT * FROM meetings WHERE uid = ? OR key = ?", (uid, uid))
        if row is None:
            raise NotFound(f"No meeting {uid!r}")
        return _meeting(row)

    async def get(self, uid: str) -> Meeting:
        return await self.store.run(self._get, uid)

    def _page(
        self, client_id: str | None, starts_from: datetime | None, limit: int, cursor: str | None
    ) -> tuple[list[Meeting], str | None]:
        after = decode_cursor(cursor, "meetings", str, str) if cursor else None
        rows = self.store.query(
            """
            SELECT * FROM meetings
            WHERE (:client IS NULL OR instr(key, ':' || :client || ':') > 0)
                AND (:starts_from IS NULL OR starts_at >= :starts_from)
                AND (:at IS NULL OR starts_at < :at OR (starts_at = :at AND uid < :uid))
            ORDER BY starts_at DESC, uid DESC LIMIT :limit
            """,
            {
                "client": client_id, "starts_from": iso(starts_from) if starts_from else None,
                "at": after[0] if after else None, "uid": after[1] if after else None, "limit": limit + 1,
            },
        )  # fmt: skip
        meetings = [_meeting(r) for r in rows[:limit]]
        following = (
            encode_cursor("meetings", rows[limit - 1]["starts_at"], rows[limit - 1]["uid"])
            if len(rows) > limit
            else None
        )
        return meetings, following

    async def page(
        self,
        client_id: str | None = None,
        starts_from: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Meeting], str | None]:
        """Meetings booked, latest start first, for one client (its id in the meeting's key) and starting on or after
        `starts_from` if given; and the cursor of the next page (None on the last)."""
        return await self.store.run(self._page, client_id, starts_from, limit, cursor)
