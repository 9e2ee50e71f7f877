"""The scheduler: workflows on cron or interval schedules, with their runs recorded in the store.

Schedules come from settings (`SOPHIA_SCHEDULES`, synced into the store at start: settings win) or from the
`set_schedule` tool (kept in the store). Each due schedule is claimed with a lease (`services.schedules`), so two
schedulers (two processes, or two loops) never run the same schedule at once; a long run renews its lease.
After downtime a schedule that missed several fire times runs once, not once per miss, and the run records how
many it stood for; the next fire time is counted from now.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.abc
from cronsim import CronSim

from sophia_mcp.app.services import Services
from sophia_mcp.domain.schedules import ScheduleInfo, ScheduleRun, ScheduleTiming
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import NotFound
from sophia_mcp.settings import ScheduleSpec, interval_seconds
from sophia_mcp.store.runs import describe_error
from sophia_mcp.store.schedules import LEASE
from sophia_mcp.workflows import designed
from sophia_mcp.workflows.bugs import notify_status_changes
from sophia_mcp.workflows.churn import predict_churn
from sophia_mcp.workflows.churn import summary as churn_summary
from sophia_mcp.workflows.competitive import competitive_intelligence
from sophia_mcp.workflows.competitive import summary as competitive_summary
from sophia_mcp.workflows.connectors import (
    poll_gong_calls,
    poll_hubspot_contacts,
    poll_slack_bugs,
    scan_watched_folder,
)
from sophia_mcp.workflows.delivery import deliver_pending
from sophia_mcp.workflows.healing import watch
from sophia_mcp.workflows.health_monitor import monitor_health

log = logging.getLogger(__name__)

MAX_SLEEP_S = 30.0
MISSED_COUNTED = 10_000  # past this many missed fire times, a catch-up says "at least"

Workflow = Callable[[Services], Awaitable[dict[str, Any]]]


async def _health_monitor(services: Services) -> dict[str, Any]:
    report = await monitor_health(services)
    return report.model_dump(mode="json", exclude={"worst"})


async def _deliver_outbox(services: Services) -> dict[str, Any]:
    entries = await deliver_pending(services, limit=500)
    delivered = sum(e.status == "delivered" for e in entries)
    return {"tried": len(entries), "delivered": delivered, "still_pending": len(entries) - delivered}


async def _bug_status(services: Services) -> dict[str, Any]:
    return await notify_status_changes(services)


async def _competitive_intel(services: Services) -> dict[str, Any]:
    return competitive_summary(await competitive_intelligence(services))


async def _churn(services: Services) -> dict[str, Any]:
    return churn_summary(await predict_churn(services))


WORKFLOWS: dict[str, Workflow] = {
    "health-monitor": _health_monitor,
    "deliver-outbox": _deliver_outbox,
    "bug-status": _bug_status,
    "competitive-intel": _competitive_intel,
    "churn": _churn,
    # The polling connectors: they keep events in the inbox, which the worker beside the scheduler processes.
    "gong-calls": poll_gong_calls,
    "hubspot-contacts": poll_hubspot_contacts,
    "slack-bugs": poll_slack_bugs,
    "watch-folder": scan_watched_folder,
}


def next_fire(spec: str, after: datetime) -> datetime:
    """The first fire time of `spec` strictly after `after`."""
    kind, _, value = spec.partition(" ")
    if kind == "every":
        return after + timedelta(seconds=interval_seconds(value))
    return next(CronSim(value, after))


def missed_between(spec: str, due: datetime, now: datetime) -> int:
    """Fire times after `due` up to `now`: the runs a catch-up stands for beyond the one that was due."""
    kind, _, value = spec.partition(" ")
    if kind == "every":
        return max(0, int((now - due).total_seconds() // interval_seconds(value)))
    count, at = 0, due
    while count < MISSED_COUNTED:
        at = next_fire(spec, at)
        if at > now:
            break
        count += 1
    return count


def first_fire(spec: ScheduleSpec, now: datetime) -> datetime:
    """When a schedule first runs once a scheduler takes it at `now`: an interval at once, a cron at its next time."""
    return now if spec.every else next_fire(spec.spec, now)


async def sync_schedules(services: Services, specs: list[ScheduleSpec], now: datetime) -> None:
    """Write the schedules from settings into the store (settings win); a changed timing starts afresh."""
    timings = [ScheduleTiming(s.name, s.workflow, s.spec, s.enabled, first_fire(s, now)) for s in specs]
    await services.schedules.sync(timings, now)


async def set_schedule(services: Services, spec: ScheduleSpec, now: datetime) -> None:
    """Add or change one schedule in the store."""
    await sync_schedules(services, [spec], now)


async def list_schedules(
    services: Services, configured: list[ScheduleSpec] | None = None, runs_each: int = 5
) -> list[ScheduleInfo]:
    """Every schedule: those in the store (what a scheduler runs, with their runs) and those `configured` in settings
    that no scheduler has started yet, with the first run it would give them."""
    now = utcnow()
    out = await services.schedules.all(runs_each, now)
    known = {info.name for info in out}
    for spec in configured or []:
        if spec.name not in known:
            out.append(
                ScheduleInfo(
                    name=spec.name, workflow=spec.workflow, spec=spec.spec, enabled=spec.enabled,
                    next_run_at=first_fire(spec, now), last_run_at=None, running=False, recent_runs=[],
                )
            )  # fmt: skip
    return sorted(out, key=lambda info: info.name)


async def get_schedule(services: Services, name: str, configured: list[ScheduleSpec] | None = None) -> ScheduleInfo:
    """One schedule, as `list_schedules` shows it."""
    for info in await list_schedules(services, configured):
        if info.name == name:
            return info
    raise NotFound(f"No schedule {name!r}; list_schedules shows them")


# -- the loop ---------------------------------------------------------------------------------------------


class Scheduler:
    def __init__(
        self, services: Services, owner: str | None = None, finished: Callable[[ScheduleRun], None] | None = None
    ) -> None:
        """`finished` hears of each run as it ends (the CLI prints it)."""
        self.services = services
        self.schedules = services.schedules
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.finished = finished

    async def run_due(self) -> list[ScheduleRun]:
        """Run every schedule that is due now (at once, each at most once) to its end, and return their runs."""
        results: list[int] = []
        async with anyio.create_task_group() as group:
            await self._start_due(group, results)
        return await self.schedules.runs(results)

    async def _start_due(self, group: anyio.abc.TaskGroup, results: list[int]) -> None:
        now = utcnow()
        for name, workflow, spec, due_at in await self.schedules.claim_due(self.owner, now):
            group.start_soon(self._run_one, name, workflow, spec, due_at, now, results)
        # Designed workflows (issue 21) keep their own fire times; each occurrence is claimed once.
        group.start_soon(designed.run_due_logged, self.services, now)

    async def _run_one(
        self, name: str, workflow: str, spec: str, due: datetime, now: datetime, results: list[int]
    ) -> None:
        missed = missed_between(spec, due, now)
        run_id = await self.schedules.begin(name, due, missed)
        results.append(run_id)
        if missed:
            log.info("schedule %s: catching up; this run stands for %d missed ones", name, missed)
        summary, error = None, None
        async with anyio.create_task_group() as group:
            group.start_soon(self._keep_lease, name)
            try:
                summary = await WORKFLOWS[workflow](self.services)
            except Exception as exc:  # a failed run is recorded; the schedule goes on
                error = describe_error(exc)
                log.warning("schedule %s (%s) failed: %s", name, workflow, error)
            group.cancel_scope.cancel()
        ended = utcnow()
        await self.schedules.end(run_id, name, self.owner, summary, error, ended, next_fire(spec, ended))
        if self.finished is not None:
            [run] = await self.schedules.runs([run_id])
            self.finished(run)

    async def _keep_lease(self, name: str) -> None:
        while True:
            await anyio.sleep(LEASE.total_seconds() / 3)
            await self.schedules.renew(name, self.owner)

    async def _watch_runs(self) -> None:
        """The healing watch, every `SOPHIA_HEALING__INTERVAL_S` while the scheduler serves; a failed look is
        logged and the next one tries again."""
        while True:
            try:
                report = await watch(self.services)
                if report.opened or report.closed:
                    log.info("healing: opened %s, closed %s", report.opened, report.closed)
            except Exception as exc:
                log.warning("healing: the watch failed: %s", describe_error(exc))
            await anyio.sleep(self.services.settings.healing.interval_s)

    async def _seconds_to_next(self) -> float:
        soonest = await self.schedules.next_free()
        if soonest is None:
            return MAX_SLEEP_S
        return max(0.05, min(MAX_SLEEP_S, (soonest - utcnow()).total_seconds()))

    async def serve(self, specs: list[ScheduleSpec], stop: anyio.Event | None = None) -> None:
        """Run schedules until `stop` is set (or forever). A long run does not hold up the others: each due
        schedule starts as its own task, and its lease keeps it from starting again until it ends."""
        await sync_schedules(self.services, specs, utcnow())
        stop = stop or anyio.Event()
        results: list[int] = []
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch_runs)
            while not stop.is_set():
                await self._start_due(group, results)
                with anyio.move_on_after(await self._seconds_to_next()):
                    await stop.wait()
            group.cancel_scope.cancel()
