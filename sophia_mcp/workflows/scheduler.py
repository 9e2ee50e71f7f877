"""The scheduler: workflows on cron or interval schedules, with their runs recorded in the store.

Schedules come from settings (`SOPHIA_SCHEDULES`, synced into the store at start: settings win) or from the
`set_schedule` tool (kept in the store). Each due schedule is claimed with a lease in one transaction, so two
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
from pydantic import Field

from sophia_mcp.app.services import Services
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.errors import NotFound
from sophia_mcp.runs import describe_error
from sophia_mcp.settings import ScheduleSpec, interval_seconds
from sophia_mcp.store.database import Store, dumps

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
MAX_SLEEP_S = 30.0
MISSED_COUNTED = 10_000  # past this many missed fire times, a catch-up says "at least"

Workflow = Callable[[Services], Awaitable[dict[str, Any]]]


async def _health_monitor(services: Services) -> dict[str, Any]:
    from sophia_mcp.workflows.health_monitor import monitor_health

    report = await monitor_health(services)
    return report.model_dump(mode="json", exclude={"worst"})


async def _deliver_outbox(services: Services) -> dict[str, Any]:
    entries = await services.outbox.deliver_pending(limit=500)
    delivered = sum(e.status == "delivered" for e in entries)
    return {"tried": len(entries), "delivered": delivered, "still_pending": len(entries) - delivered}


async def _bug_status(services: Services) -> dict[str, Any]:
    from sophia_mcp.workflows.bugs import notify_status_changes

    return await notify_status_changes(services)


async def _competitive_intel(services: Services) -> dict[str, Any]:
    from sophia_mcp.workflows.competitive import competitive_intelligence, summary

    return summary(await competitive_intelligence(services))


async def _churn(services: Services) -> dict[str, Any]:
    from sophia_mcp.workflows.churn import predict_churn, summary

    return summary(await predict_churn(services))


WORKFLOWS: dict[str, Workflow] = {
    "health-monitor": _health_monitor,
    "deliver-outbox": _deliver_outbox,
    "bug-status": _bug_status,
    "competitive-intel": _competitive_intel,
    "churn": _churn,
}


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


def next_fire(spec: str, after: datetime) -> datetime:
    """The first fire time of `spec` strictly after `after`."""
    kind, _, value = spec.partition(" ")
    if kind == "every":
        return after + timedelta(seconds=interval_seconds(value))
    from cronsim import CronSim

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


# -- the store's side --------------------------------------------------------------------------------------


def first_fire(spec: ScheduleSpec, now: datetime) -> datetime:
    """When a schedule first runs once a scheduler takes it at `now`: an interval at once, a cron at its next time."""
    return now if spec.every else next_fire(spec.spec, now)


def sync_schedules(store: Store, specs: list[ScheduleSpec], now: datetime) -> None:
    """Write the schedules from settings into the store (settings win); a changed timing starts afresh."""
    with store.transaction() as conn:
        for spec in specs:
            row = conn.execute("SELECT spec FROM schedules WHERE name = ?", (spec.name,)).fetchone()
            first = first_fire(spec, now)
            if row is None:
                conn.execute(
                    """
                    INSERT INTO schedules (name, workflow, spec, enabled, next_run_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                    (spec.name, spec.workflow, spec.spec, int(spec.enabled), iso(first), iso(now)),
                )
            else:
                conn.execute(
                    """
                    UPDATE schedules SET workflow = ?, enabled = ?, updated_at = ?,
                        next_run_at = CASE WHEN spec = ? THEN next_run_at ELSE ? END, spec = ?
                    WHERE name = ?
                    """,
                    (spec.workflow, int(spec.enabled), iso(now), spec.spec, iso(first), spec.spec, spec.name),
                )


def set_schedule(store: Store, spec: ScheduleSpec, now: datetime) -> None:
    sync_schedules(store, [spec], now)


def _claim_due(store: Store, owner: str, now: datetime) -> list[tuple[str, str, str, datetime]]:
    """Lease every enabled schedule that is due and not held: (name, workflow, spec, due at) each."""
    with store.transaction() as conn:
        rows = conn.execute(
            """
            UPDATE schedules SET lease_owner = ?, lease_until = ?
            WHERE enabled = 1 AND next_run_at <= ? AND (lease_until IS NULL OR lease_until < ?)
            RETURNING name, workflow, spec, next_run_at
            """,
            (owner, iso(now + LEASE), iso(now), iso(now)),
        ).fetchall()
    return [(r["name"], r["workflow"], r["spec"], parse_iso(r["next_run_at"])) for r in rows]


def _begin(store: Store, name: str, due: datetime, missed: int) -> int:
    with store.transaction() as conn:
        cursor = conn.execute(
            """
            INSERT INTO schedule_runs (schedule, due_at, missed, started_at, status) VALUES (?, ?, ?, ?, 'running')
            """,
            (name, iso(due), missed, iso(utcnow())),
        )
        return int(cursor.lastrowid or 0)


def _renew(store: Store, name: str, owner: str) -> None:
    with store.transaction() as conn:
        conn.execute(
            "UPDATE schedules SET lease_until = ? WHERE name = ? AND lease_owner = ?",
            (iso(utcnow() + LEASE), name, owner),
        )


def _end(
    store: Store, run: int, name: str, owner: str, spec: str, summary: dict[str, Any] | None, error: str | None
) -> None:
    now = utcnow()
    with store.transaction() as conn:
        conn.execute(
            "UPDATE schedule_runs SET status = ?, finished_at = ?, summary = ?, error = ? WHERE id = ?",
            ("failed" if error else "succeeded", iso(now), None if summary is None else dumps(summary), error, run),
        )
        conn.execute(
            """
            UPDATE schedules SET last_run_at = ?, next_run_at = ?, lease_owner = NULL, lease_until = NULL
            WHERE name = ? AND lease_owner = ?
            """,
            (iso(now), iso(next_fire(spec, now)), name, owner),
        )


def list_schedules(
    store: Store, configured: list[ScheduleSpec] | None = None, runs_each: int = 5
) -> list[ScheduleInfo]:
    """Every schedule: those in the store (what a scheduler runs, with their runs) and those `configured` in settings
    that no scheduler has started yet, with the first run it would give them."""
    now = utcnow()
    out = []
    for row in store.query("SELECT * FROM schedules ORDER BY name"):
        runs = store.query(
            "SELECT * FROM schedule_runs WHERE schedule = ? ORDER BY id DESC LIMIT ?", (row["name"], runs_each)
        )
        out.append(
            ScheduleInfo(
                name=row["name"], workflow=row["workflow"], spec=row["spec"], enabled=bool(row["enabled"]),
                next_run_at=parse_iso(row["next_run_at"]),
                last_run_at=parse_iso(row["last_run_at"]) if row["last_run_at"] else None,
                running=bool(row["lease_until"]) and parse_iso(row["lease_until"]) > now,
                recent_runs=[_run(r) for r in runs],
            )
        )  # fmt: skip
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


def _run(row: Any) -> ScheduleRun:
    import json

    return ScheduleRun(
        id=row["id"], schedule=row["schedule"], due_at=parse_iso(row["due_at"]), missed=row["missed"],
        started_at=parse_iso(row["started_at"]),
        finished_at=parse_iso(row["finished_at"]) if row["finished_at"] else None, status=row["status"],
        summary=json.loads(row["summary"]) if row["summary"] else None, error=row["error"],
    )  # fmt: skip


def get_schedule(store: Store, name: str, configured: list[ScheduleSpec] | None = None) -> ScheduleInfo:
    for info in list_schedules(store, configured):
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
        self.store = services.store
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.finished = finished

    async def run_due(self) -> list[ScheduleRun]:
        """Run every schedule that is due now (at once, each at most once) to its end, and return their runs."""
        results: list[int] = []
        async with anyio.create_task_group() as group:
            await self._start_due(group, results)
        rows = await self.store.run(
            self.store.query,
            f"SELECT * FROM schedule_runs WHERE id IN ({', '.join('?' for _ in results)}) ORDER BY id",
            results,
        )
        return [_run(r) for r in rows]

    async def _start_due(self, group: anyio.abc.TaskGroup, results: list[int]) -> None:
        now = utcnow()
        for name, workflow, spec, due_at in await self.store.run(_claim_due, self.store, self.owner, now):
            group.start_soon(self._run_one, name, workflow, spec, due_at, now, results)

    async def _run_one(
        self, name: str, workflow: str, spec: str, due: datetime, now: datetime, results: list[int]
    ) -> None:
        missed = missed_between(spec, due, now)
        run_id = await self.store.run(_begin, self.store, name, due, missed)
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
        await self.store.run(_end, self.store, run_id, name, self.owner, spec, summary, error)
        if self.finished is not None:
            row = await self.store.run(self.store.query_one, "SELECT * FROM schedule_runs WHERE id = ?", (run_id,))
            self.finished(_run(row))

    async def _keep_lease(self, name: str) -> None:
        while True:
            await anyio.sleep(LEASE.total_seconds() / 3)
            await self.store.run(_renew, self.store, name, self.owner)

    async def _seconds_to_next(self) -> float:
        row = await self.store.run(
            self.store.query_one, "SELECT min(next_run_at) FROM schedules WHERE enabled = 1 AND lease_until IS NULL"
        )
        if row is None or row[0] is None:
            return MAX_SLEEP_S
        return max(0.05, min(MAX_SLEEP_S, (parse_iso(row[0]) - utcnow()).total_seconds()))

    async def serve(self, specs: list[ScheduleSpec], stop: anyio.Event | None = None) -> None:
        """Run schedules until `stop` is set (or forever). A long run does not hold up the others: each due
        schedule starts as its own task, and its lease keeps it from starting again until it ends."""
        await self.store.run(sync_schedules, self.store, specs, utcnow())
        stop = stop or anyio.Event()
        results: list[int] = []
        async with anyio.create_task_group() as group:
            while not stop.is_set():
                await self._start_due(group, results)
                with anyio.move_on_after(await self._seconds_to_next()):
                    await stop.wait()
            group.cancel_scope.cancel()
