"""The first free slot of a calendar in working hours: weekdays, between two local hours, clear of what is busy."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Busy = tuple[datetime, datetime]  # start (inclusive), end (exclusive), time-zone aware

STEP = timedelta(minutes=30)  # slots start on the hour and the half hour


def first_free_slot(
    busy: Sequence[Busy],
    earliest: datetime,
    minutes: int,
    zone: ZoneInfo,
    start_hour: int,
    end_hour: int,
    days: int,
) -> datetime | None:
    """The first start at or after `earliest` (aware) of a `minutes` long meeting that fits the working hours of a
    weekday in `zone` and overlaps nothing busy, looking `days` days ahead; in UTC. None when there is none."""
    length = timedelta(minutes=minutes)
    for start in _working_starts(earliest, length, zone, start_hour, end_hour, days):
        end = start + length
        if not any(b_start < end and start < b_end for b_start, b_end in busy):
            return start.astimezone(UTC)
    return None


def _working_starts(
    earliest: datetime, length: timedelta, zone: ZoneInfo, start_hour: int, end_hour: int, days: int
) -> Iterator[datetime]:
    first_day = earliest.astimezone(zone).date()
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        start, closing = _local(day, start_hour, zone), _local(day, end_hour, zone)
        while start + length <= closing:
            if start >= earliest:
                yield start
            start += STEP


def _local(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """`hour` o'clock of `day` in `zone`; 24 is the next midnight."""
    return datetime.combine(day, time(0), zone) + timedelta(hours=hour)
