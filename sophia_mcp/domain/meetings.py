"""The `MeetingScheduler` port: meeting requests as standard iCalendar invites (RFC 5545, METHOD:REQUEST).

A request carries a key naming what it is about; booking the same key again returns the meeting already booked."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from sophia_mcp.domain.model import Model


class Attendee(Model):
    email: str
    name: str | None = None


class MeetingRequest(Model):
    key: str = Field(description="What the meeting is about, e.g. health-meeting:{client}:{period}.")
    title: str
    description: str = ""
    organizer: Attendee
    attendees: list[Attendee] = Field(min_length=1)
    starts_at: datetime
    minutes: int = Field(default=30, ge=5, le=480)


class Meeting(Model):
    uid: str
    key: str
    title: str
    organizer: Attendee
    attendees: list[Attendee]
    starts_at: datetime
    ends_at: datetime
    ics: str = Field(description="The invite, as an iCalendar (.ics) text.")
