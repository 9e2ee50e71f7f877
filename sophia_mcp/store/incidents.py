"""The healing watch's tables: each step's outcome in order (`step_outcomes`, written by the run ledger) and the
incidents it opens (`incidents`), one open incident per workflow, step and cause (its key while open)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sophia_mcp.domain.incidents import Diagnosis, Incident, IncidentStatus, Remediation
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.store.database import Store, dumps

# How many recent outcomes one look reads: the windows of every busy step fit in it.
RECENT = 5000


@dataclass
class Failures:
    """One cause's failures of a step in its window: the service they named, newest first."""

    service: str | None = None
    errors: list[str] = field(default_factory=list)
    seen: list[datetime] = field(default_factory=list)


@dataclass
class StepWindow:
    """A step's last runs (at most the window's size) and its failures among them, by cause."""

    workflow: str
    step: str
    runs: int = 0
    failures: dict[str, Failures] = field(default_factory=dict)


def _incident(row: sqlite3.Row) -> Incident:
    return Incident(
        id=row["id"], workflow=row["workflow"], step=row["step"], cause=row["cause"], service=row["service"],
        status=row["status"], error_rate=row["error_rate"],
        diagnosis=Diagnosis.model_validate_json(row["diagnosis"]),
        remediations=[Remediation.model_validate(r) for r in json.loads(row["remediations"])],
        issue_key=row["issue_key"], summary=row["summary"], opened_at=parse_iso(row["opened_at"]),
        updated_at=parse_iso(row["updated_at"]), closed_at=parse_iso(row["closed_at"]) if row["closed_at"] else None,
    )  # fmt: skip


def open_key(workflow: str, step: str, cause: str) -> str:
    """The key of the one open incident of a step and cause (a closed one is renamed, so another may open)."""
    return f"{workflow}/{step}/{cause}"


class Incidents:
    """The `incidents` and `step_outcomes` tables."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _windows(self, size: int) -> list[StepWindow]:
        rows = self.store.query(
            "SELECT workflow, step, cause, service, error, at FROM step_outcomes ORDER BY id DESC LIMIT ?", (RECENT,)
        )
        windows: dict[tuple[str, str], StepWindow] = {}
        for row in rows:
            window = windows.setdefault((row["workflow"], row["step"]), StepWindow(row["workflow"], row["step"]))
            if window.runs >= size:
                continue
            window.runs += 1
            if row["cause"] is not None:
                failures = window.failures.setdefault(row["cause"], Failures(service=row["service"]))
                failures.service = failures.service or row["service"]
                failures.errors.append(row["error"] or "")
                failures.seen.append(parse_iso(row["at"]))
        return list(windows.values())

    async def windows(self, size: int) -> list[StepWindow]:
        """Each step's last `size` outcomes (steps seen among the most recent outcomes), with its failures by cause."""
        return await self.store.run(self._windows, size)

    def _open(self, incident: Incident) -> tuple[Incident, bool]:
        key = open_key(incident.workflow, incident.step, incident.cause)
        with self.store.transaction() as conn:
            created = conn.execute(
                """
                INSERT INTO incidents (key, workflow, step, cause, service, status, error_rate, diagnosis,
                    remediations, issue_key, opened_at, updated_at)
                VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING id
                """,
                (
                    key, incident.workflow, incident.step, incident.cause, incident.service, incident.error_rate,
                    incident.diagnosis.model_dump_json(), dumps([r.model_dump(mode="json") for r in
                    incident.remediations]), incident.issue_key, iso(incident.opened_at), iso(incident.updated_at),
                ),
            ).fetchone()  # fmt: skip
            row = conn.execute("SELECT * FROM incidents WHERE key = ?", (key,)).fetchone()
        return _incident(row), created is not None

    async def open(self, incident: Incident) -> tuple[Incident, bool]:
        """Open this incident unless its step and cause has one open already: (the open one, whether it is new)."""
        return await self.store.run(self._open, incident)

    def _save(self, incident: Incident) -> None:
        closed = incident.status == "closed"
        with self.store.transaction() as conn:
            conn.execute(
                """
                UPDATE incidents SET status = ?, error_rate = ?, diagnosis = ?, remediations = ?, issue_key = ?,
                    summary = ?, updated_at = ?, closed_at = ?, key = ? WHERE id = ?
                """,
                (
                    incident.status, incident.error_rate, incident.diagnosis.model_dump_json(),
                    dumps([r.model_dump(mode="json") for r in incident.remediations]), incident.issue_key,
                    incident.summary, iso(utcnow()), iso(incident.closed_at) if incident.closed_at else None,
                    f"{open_key(incident.workflow, incident.step, incident.cause)}#{incident.id}" if closed
                    else open_key(incident.workflow, incident.step, incident.cause), incident.id,
                ),
            )  # fmt: skip

    async def save(self, incident: Incident) -> None:
        """Write an incident as it is now (closing one frees its step and cause for a later incident)."""
        await self.store.run(self._save, incident)

    def _list(self, status: IncidentStatus | None, limit: int) -> list[Incident]:
        if status is None:
            rows = self.store.query("SELECT * FROM incidents ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.store.query(
                "SELECT * FROM incidents WHERE status = ? ORDER BY id DESC LIMIT ?", (status, limit)
            )
        return [_incident(row) for row in rows]

    async def list(self, status: IncidentStatus | None = None, limit: int = 100) -> list[Incident]:
        """Incidents, newest first, optionally only those open or closed."""
        return await self.store.run(self._list, status, limit)

    def active(self, action: str) -> set[str]:
        """The targets of this remediation on every open incident (blocking: a small read, where switches look)."""
        rows = self.store.query("SELECT remediations FROM incidents WHERE status = 'open'")
        return {
            r["target"]
            for row in rows
            for r in json.loads(row["remediations"])
            if r["action"] == action and r.get("ended_at") is None
        }

    async def active_targets(self, action: str) -> set[str]:
        """`active`, read here: the open incidents are few, found along their status index."""
        return await self.store.read(self.active, action)


def ended(remediations: Sequence[Remediation], at: datetime) -> list[Remediation]:
    """These remediations marked ended at `at` (those ended already keep their time)."""
    return [r if r.ended_at else r.model_copy(update={"ended_at": at}) for r in remediations]
