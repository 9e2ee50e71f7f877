"""The `MeetingScheduler` port in the store: each meeting request becomes an iCalendar invite (icalendar), kept
with its attendees; the notification that asks for the meeting carries the invite as an .ics attachment.

The invite's UID comes from the request's key, so sending it again (to another calendar, or after a retry)
updates one event instead of adding another.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta

from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.meetings import Attendee, Meeting, MeetingRequest
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.errors import NotFound
from sophia_mcp.store.database import Store

PRODID = "-//sophia-mcp//meetings//EN"
CHUNK = 500  # keys bound in one IN (...) list
TEXT_SPECIAL = re.compile(r"[\\;,\r\n]")  # what RFC 5545 escapes in a TEXT value
FOLD_OCTETS = 75  # a content line and its fold stay under this many octets (icalendar's limit)
TAIL = "STATUS:CONFIRMED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"  # how every invite ends


def invite(request: MeetingRequest, uid: str, stamp: datetime | None = None, method: str | None = "REQUEST") -> str:
    """The request as an RFC 5545 calendar with one VEVENT and METHOD:REQUEST, as icalendar writes it (`method`
    None: a calendar object to store in a calendar, which RFC 4791 says carries no METHOD).

    Written line by line rather than through icalendar's component tree, which costs a millisecond an invite
    (seconds for a monitor's first pass over many clients); values are escaped by icalendar's own `vText` and
    `param_value`, and the tests read every invite back with icalendar. The lines every invite shares, and the
    times (a batch's invites share their start and stamp), are written once."""
    starts = _utc(request.starts_at)
    lines = [
        _head(method), _fold(f"SUMMARY:{_text(request.title)}"),
        _when(starts, request.minutes, _utc(stamp or utcnow())), _fold(f"UID:{_text(uid)}"), "SEQUENCE:0",
    ]  # fmt: skip
    for person in request.attendees:
        name = f"CN={_param(person.name)};" if person.name else ""
        lines.append(
            _fold(f"ATTENDEE;{name}PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:{person.email}")
        )
    if request.description:
        lines.append(_fold(f"DESCRIPTION:{_text(request.description)}"))
    name = f";CN={_param(request.organizer.name)}" if request.organizer.name else ""
    lines += [_fold(f"ORGANIZER{name}:mailto:{request.organizer.email}"), TAIL]
    return "\r\n".join(lines)


@functools.lru_cache(maxsize=8)
def _head(method: str | None) -> str:
    """The lines every invite of this METHOD (None: none) opens with."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{_text(PRODID)}", *([f"METHOD:{method}"] if method else [])]
    return "\r\n".join(map(_fold, [*lines, "BEGIN:VEVENT"]))


@functools.lru_cache(maxsize=256)  # a batch's invites share their start, length and stamp
def _when(starts: datetime, minutes: int, stamp: datetime) -> str:
    # Three lines far under the fold.
    return (
        f"DTSTART:{starts:%Y%m%dT%H%M%SZ}\r\nDTEND:{starts + timedelta(minutes=minutes):%Y%m%dT%H%M%SZ}\r\n"
        f"DTSTAMP:{stamp:%Y%m%dT%H%M%SZ}"
    )


# A batch's meetings mostly start at one time: stored as text once.
_iso = functools.lru_cache(maxsize=64)(iso)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _text(value: str) -> str:
    # Most titles and descriptions hold nothing TEXT escapes: those are written as they are.
    if not TEXT_SPECIAL.search(value):
        return value
    # icalendar is heavy to import and only booking needs it: loaded then, not at every server's start.
    from icalendar.prop import vText

    return vText(value).to_ical().decode()


@functools.lru_cache(maxsize=1024)  # an organizer's or a CSM's name, over and over
def _param(value: str) -> str:
    # icalendar quotes a CN holding a space or an apostrophe as well as RFC 5545's own ,;: characters.
    from icalendar.parser import param_value  # loaded with the first invite, as in `_text`

    return param_value(value, always_quote=any(c in value for c in " '"))


def _fold(line: str, limit: int = FOLD_OCTETS) -> str:
    """RFC 5545 folding as icalendar does it: a line of `limit` octets or more continues on lines starting with a
    space, never splitting a character or a backslash or caret escape."""
    if line.isascii():
        if len(line) < limit:
            return line  # most lines: nothing to fold
        parts, at, run = [], 0, limit - 1
        while len(line) - at > run:
            cut = at + run - (line[at + run - 1] in "\\^")
            parts.append(line[at:cut])
            at = cut
        parts.append(line[at:])
        return "\r\n ".join(parts)
    current: list[str] = []
    parts, size = [], 0
    for char in line:
        width = len(char.encode())
        if current and size + width >= limit:
            carried = current.pop() if len(current) > 1 and current[-1] in "\\^" else ""
            parts.append("".join(current))
            current, size = ([carried], len(carried)) if carried else ([], 0)
        current.append(char)
        size += width
    parts.append("".join(current))
    return "\r\n ".join(parts)


def meeting_uid(key: str) -> str:
    """The invite's UID for a request's key: the same key is always the same event."""
    return hashlib.sha256(key.encode()).hexdigest()[:32] + "@sophia-mcp"


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
        """Book inside the caller's transaction."""
        return self.book_many(conn, [request])[0]

    def book_many(self, conn: sqlite3.Connection, requests: list[MeetingRequest]) -> list[tuple[Meeting, bool]]:
        """Book many inside the caller's transaction: the meetings already booked are read in a few queries, each
        new one's invite is rendered once and all are inserted together."""
        known: dict[str, Meeting] = {}
        keys = list({r.key: None for r in requests})
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            rows = conn.execute(f"SELECT * FROM meetings WHERE key IN ({', '.join('?' * len(chunk))})", chunk)
            known.update((row["key"], _meeting(row)) for row in rows)
        stamp, now, out, rows_new = utcnow(), iso(utcnow()), [], []
        for request in requests:
            if request.key in known:
                out.append((known[request.key], False))
                continue
            uid, ends = meeting_uid(request.key), request.starts_at + timedelta(minutes=request.minutes)
            meeting = Meeting(
                uid=uid, key=request.key, title=request.title, organizer=request.organizer,
                attendees=request.attendees, starts_at=request.starts_at, ends_at=ends,
                ics=invite(request, uid, stamp),
            )  # fmt: skip
            known[request.key] = meeting
            out.append((meeting, True))
            rows_new.append(
                (
                    uid, request.key, request.title, request.organizer.model_dump_json(),
                    json.dumps([a.model_dump() for a in request.attendees]), _iso(request.starts_at), _iso(ends),
                    meeting.ics, now,
                )
            )  # fmt: skip
        conn.executemany(
            """
            INSERT INTO meetings (uid, key, title, organizer, attendees, starts_at, ends_at, ics, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            rows_new,
        )
        return out

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
            return self.book_many(conn, requests)

    def _booked(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            marks = ", ".join("?" * len(chunk))
            found.update(r[0] for r in self.store.query(f"SELECT key FROM meetings WHERE key IN ({marks})", chunk))
        return found

    async def booked(self, keys: list[str]) -> set[str]:
        """Which of these request keys have a meeting booked (read along the key's index, no invite loaded)."""
        return await self.store.run(self._booked, keys)

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
