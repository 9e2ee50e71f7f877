"""The `MeetingScheduler` port: meeting requests as standard iCalendar invites (RFC 5545, METHOD:REQUEST).

A request carries a key naming what it is about; booking the same key again returns the meeting already booked."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sophia_mcp.domain.meetings import Meeting, MeetingRequest


class MeetingScheduler(Protocol):
    name: str

    async def book(self, request: MeetingRequest) -> tuple[Meeting, bool]:
        """The meeting for the request's key: booked now (True) or earlier (False)."""
        ...

    async def book_all(self, requests: list[MeetingRequest]) -> list[tuple[Meeting, bool]]:
        """Each request's meeting, in order, and whether it was booked now (the health monitor books many)."""
        ...

    async def booked(self, keys: list[str]) -> set[str]:
        """Which of these request keys have a meeting booked."""
        ...

    async def get(self, uid: str) -> Meeting:
        """NotFound when there is none."""
        ...

    async def page(
        self,
        client_id: str | None = None,
        starts_from: datetime | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Meeting], str | None]:
        """Meetings booked, latest start first (one client's, starting on or after `starts_from`), and the next
        page's cursor (None on the last)."""
        ...
