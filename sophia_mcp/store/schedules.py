"""The `schedules` and `schedule_runs` tables: what runs when, who holds a schedule now (a lease), and each run.

Each due schedule is claimed with a lease in one transaction, so two schedulers (two processes, or two loops)
never run the same schedule at once; a long run renews its lease.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sophia_mcp.domain.schedules import ScheduleInfo, ScheduleRun, ScheduleTiming
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.store.database import Store, dumps

LEASE = timedelta(minutes=10)


class DueSchedule(NamedTuple):
    """A schedule claimed to run now."""

    name: str
    workflow: str
    spec: str
    due_at: datetime


def _run(row: sqlite3.Row) -> ScheduleRun:
    return ScheduleRun(
        id=row["id"], schedule=row["schedule"], due_at=parse_iso(row["due_at"]), missed=row["missed"],
        started_at=parse_iso(row["started_at"]),
        finished_at=parse_iso(row["finished_at"]) if row["finished_at"] else None, status=row["status"],
        summary=json.loads(row["summary"]) if row["summary"] else None, error=row["error"],
    )  # fmt: skip


class Schedules:
    """The schedules a scheduler runs, their leases and their runs."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _sync(self, timings: Sequence[ScheduleTiming], now: datetime) -> None:
        with self.store.transaction() as conn:
            for t in timings:
                row = conn.execute("SELECT spec FROM schedules WHERE name = ?", (t.name,)).fetchone()
                if row is None:
                    conn.execute(
                        """
                        INSERT INTO schedules (name, workflow, spec, enabled, next_run_at, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                        (t.name, t.workflow, t.spec, int(t.enabled), iso(t.first_run_at), iso(now)),
                    )
                else:
                    conn.execute(
                        """
                        UPDATE schedules SET workflow = ?, enabled = ?, updated_at = ?,
                            next_run_at = CASE WHEN spec = ? THEN next_run_at ELSE ? END, spec = ?
                        WHERE name = ?
                        """,
                        (t.workflow, int(t.enabled), iso(now), t.spec, iso(t.first_run_at), t.spec, t.name),
                    )

    async def sync(self, timings: Sequence[ScheduleTiming], now: datetime) -> None:
        """Write these schedules (they win over what is kept); a changed timing starts afresh at its first run."""
        await self.store.run(self._sync, timings, now)

    def _claim_due(self, owner: str, now: datetime) -> list[DueSchedule]:
        # Rows another scheduler is leasing this moment are skipped, not waited for (PostgreSQL; SQLite's write
        # transactions run one at a time), and the lease is checked again on the row as it is taken.
        with self.store.transaction(shared=True) as conn:
            rows = conn.execute(
                f"""
                UPDATE schedules SET lease_owner = ?, lease_until = ?
                WHERE name IN (
                    SELECT name FROM schedules
                    WHERE enabled = 1 AND next_run_at <= ? AND (lease_until IS NULL OR lease_until < ?)
                    {self.store.skip_locked}
                ) AND (lease_until IS NULL OR lease_until < ?)
                RETURNING name, workflow, spec, next_run_at
                """,
                (owner, iso(now + LEASE), iso(now), iso(now), iso(now)),
            ).fetchall()
        return [DueSchedule(r["name"], r["workflow"], r["spec"], parse_iso(r["next_run_at"])) for r in rows]

    async def claim_due(self, owner: str, now: datetime) -> list[DueSchedule]:
        """Lease to `owner` every enabled schedule that is due at `now` and not held by another."""
        return await self.store.run(self._claim_due, owner, now)

    def _begin(self, name: str, due: datetime, missed: int) -> int:
        with self.store.transaction() as conn:
            row = conn.execute(
                """
                INSERT INTO schedule_runs (schedule, due_at, missed, started_at, status)
                VALUES (?, ?, ?, ?, 'running') RETURNING id
                """,
                (name, iso(due), missed, iso(utcnow())),
            ).fetchone()
            return int(row["id"])

    async def begin(self, name: str, due: datetime, missed: int) -> int:
        """Record a run of the schedule, due at `due` and standing for `missed` more; returns its id."""
        return await self.store.run(self._begin, name, due, missed)

    def _renew(self, name: str, owner: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE schedules SET lease_until = ? WHERE name = ? AND lease_owner = ?",
                (iso(utcnow() + LEASE), name, owner),
            )

    async def renew(self, name: str, owner: str) -> None:
        """Extend `owner`'s lease of a schedule whose run goes on."""
        await self.store.run(self._renew, name, owner)

    def _end(
        self,
        run_id: int,
        name: str,
        owner: str,
        summary: dict[str, Any] | None,
        error: str | None,
        now: datetime,
        next_run_at: datetime,
    ) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE schedule_runs SET status = ?, finished_at = ?, summary = ?, error = ? WHERE id = ?",
                ("failed" if error else "succeeded", iso(now), None if summary is None else dumps(summary), error,
                 run_id),
            )  # fmt: skip
            conn.execute(
                """
                UPDATE schedules SET last_run_at = ?, next_run_at = ?, lease_owner = NULL, lease_until = NULL
                WHERE name = ? AND lease_owner = ?
                """,
                (iso(now), iso(next_run_at), name, owner),
            )

    async def end(
        self,
        run_id: int,
        name: str,
        owner: str,
        summary: dict[str, Any] | None,
        error: str | None,
        now: datetime,
        next_run_at: datetime,
    ) -> None:
        """Record the run's end at `now` (failed if there is an error) and give up the lease, the schedule next
        due at `next_run_at`."""
        await self.store.run(self._end, run_id, name, owner, summary, error, now, next_run_at)

    def _all(self, runs_each: int, now: datetime) -> list[ScheduleInfo]:
        out = []
        for row in self.store.query("SELECT * FROM schedules ORDER BY name"):
            runs = self.store.query(
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
        return out

    async def all(self, runs_each: int = 5, now: datetime | None = None) -> list[ScheduleInfo]:
        """Every schedule kept, by name, with its `runs_each` latest runs; running if a lease holds it at `now`."""
        return await self.store.run(self._all, runs_each, now or utcnow())

    def _runs(self, run_ids: Sequence[int]) -> list[ScheduleRun]:
        marks = ", ".join("?" for _ in run_ids)
        return [
            _run(r) for r in self.store.query(f"SELECT * FROM schedule_runs WHERE id IN ({marks}) ORDER BY id", run_ids)
        ]

    async def runs(self, run_ids: Sequence[int]) -> list[ScheduleRun]:
        """These runs, in the order they started."""
        return await self.store.run(self._runs, list(run_ids))

    def _next_free(self) -> datetime | None:
        row = self.store.query_one("SELECT min(next_run_at) FROM schedules WHERE enabled = 1 AND lease_until IS NULL")
        return None if row is None or row[0] is None else parse_iso(row[0])

    async def next_free(self) -> datetime | None:
        """When the soonest enabled schedule that no scheduler holds is due; None when there is none."""
        return await self.store.run(self._next_free)
