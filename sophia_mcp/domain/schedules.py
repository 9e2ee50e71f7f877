"""Schedules of workflows and their runs, as the scheduler keeps them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from pydantic import Field

from sophia_mcp.domain.model import Model


class ScheduleTiming(NamedTuple):
    """A schedule as settings or a tool give it, with when it first runs if it is new or its timing changed."""

    name: str
    workflow: str
    spec: str
    enabled: bool
    first_run_at: datetime


class ScheduleRun(Model):
    id: int
    schedule: str
    due_at: datetime
    missed: int = Field(description="Fire times this run stood for beyond its own (after downtime).")
    started_at: datetime
    finished_at: datetime | None
    status: str
    summary: dict[str, Any] | None
    error: str | None


class ScheduleInfo(Model):
    name: str
    workflow: str
    spec: str = Field(description="'cron <expression>' (UTC) or 'every <interval>'.")
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    running: bool = Field(description="A scheduler holds it now.")
    recent_runs: list[ScheduleRun]
