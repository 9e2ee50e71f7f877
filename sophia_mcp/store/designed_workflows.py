"""The `designed_workflows` and `designed_workflow_versions` tables: each designed workflow's deployed spec,
its version history, and the next fire time of a schedule-triggered one (claimed by moving it, so two schedulers
never run the same occurrence)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from sophia_mcp.domain.designed import DesignedRuns, DesignedWorkflow, WorkflowSpec
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.store.database import Store

RUN_PREFIX = "designed:"  # a designed workflow's runs are recorded as the workflow designed:{name}


def _workflow(row: sqlite3.Row) -> DesignedWorkflow:
    return DesignedWorkflow(
        name=row["name"], version=row["version"], enabled=bool(row["enabled"]), request=row["request"],
        spec=WorkflowSpec.model_validate_json(row["spec"]), deployed_at=row["deployed_at"], next_at=row["next_at"],
    )  # fmt: skip


class DesignedWorkflows:
    """Repository of deployed designed workflows."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _deploy(self, spec: WorkflowSpec, request: str, next_at: datetime | None) -> DesignedWorkflow:
        now = iso(utcnow())
        body = spec.model_dump_json()
        with self.store.transaction() as conn:
            row = conn.execute(
                """
                INSERT INTO designed_workflows (name, version, enabled, request, spec, event_kind, next_at, deployed_at)
                VALUES (?, 1, 1, ?, ?, ?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET version = designed_workflows.version + 1, enabled = 1,
                    request = excluded.request, spec = excluded.spec, event_kind = excluded.event_kind,
                    next_at = excluded.next_at, deployed_at = excluded.deployed_at
                RETURNING *
                """,
                (spec.name, request, body, spec.trigger.event, iso(next_at) if next_at else None, now),
            ).fetchone()
            conn.execute(
                "INSERT INTO designed_workflow_versions (workflow_id, version, spec, deployed_at) VALUES (?, ?, ?, ?)",
                (row["id"], row["version"], body, now),
            )
        return _workflow(row)

    async def deploy(self, spec: WorkflowSpec, request: str, next_at: datetime | None) -> DesignedWorkflow:
        """Deploy `spec`: version 1 when new, else the next version, enabled again."""
        return await self.store.run(self._deploy, spec, request, next_at)

    async def get(self, name: str) -> DesignedWorkflow | None:
        row = await self.store.read(self.store.query_one, "SELECT * FROM designed_workflows WHERE name = ?", (name,))
        return _workflow(row) if row is not None else None

    async def all(self) -> list[DesignedWorkflow]:
        rows = await self.store.run(self.store.query, "SELECT * FROM designed_workflows ORDER BY name")
        return [_workflow(r) for r in rows]

    def _disable(self, name: str) -> DesignedWorkflow | None:
        with self.store.transaction() as conn:
            row = conn.execute(
                "UPDATE designed_workflows SET enabled = 0 WHERE name = ? RETURNING *", (name,)
            ).fetchone()
        return _workflow(row) if row is not None else None

    async def disable(self, name: str) -> DesignedWorkflow | None:
        return await self.store.run(self._disable, name)

    async def for_event(self, kind: str) -> list[DesignedWorkflow]:
        rows = await self.store.run(
            self.store.query,
            "SELECT * FROM designed_workflows WHERE enabled = 1 AND event_kind = ? ORDER BY name",
            (kind,),
        )
        return [_workflow(r) for r in rows]

    async def due(self, now: datetime) -> list[DesignedWorkflow]:
        rows = await self.store.run(
            self.store.query,
            "SELECT * FROM designed_workflows WHERE enabled = 1 AND next_at IS NOT NULL AND next_at <= ? ORDER BY name",
            (iso(now),),
        )
        return [_workflow(r) for r in rows]

    def _claim(self, name: str, due: str, following: datetime) -> bool:
        with self.store.transaction() as conn:
            row = conn.execute(
                "UPDATE designed_workflows SET next_at = ? WHERE name = ? AND next_at = ? AND enabled = 1 RETURNING id",
                (iso(following), name, due),
            ).fetchone()
        return row is not None

    async def claim(self, name: str, due: str, following: datetime) -> bool:
        """Move a due workflow's fire time from `due` to `following`; False when another scheduler did first."""
        return await self.store.run(self._claim, name, due, following)

    def _runs(self) -> list[DesignedRuns]:
        # A range on the indexed name rather than LIKE (which SQLite's index serves only case-sensitively); the
        # version is in each run's input, read here so the query is the same on either engine.
        rows = self.store.query(
            "SELECT workflow, input, status, started_at FROM workflow_runs WHERE workflow >= ? AND workflow < ? "
            "ORDER BY workflow, started_at",
            (RUN_PREFIX, RUN_PREFIX[:-1] + chr(ord(RUN_PREFIX[-1]) + 1)),
        )
        found: dict[tuple[str, int], DesignedRuns] = {}
        for row in rows:
            version = int(json.loads(row["input"] or "{}").get("version") or 0)
            name = row["workflow"].removeprefix(RUN_PREFIX)
            runs = found.setdefault((name, version), DesignedRuns(
                name=name, version=version, runs=0, succeeded=0, failed=0, running=0, last_started_at=None,
                last_status=None,
            ))  # fmt: skip
            runs.runs += 1
            setattr(runs, row["status"], getattr(runs, row["status"]) + 1)
            runs.last_started_at, runs.last_status = row["started_at"], row["status"]
        return [found[k] for k in sorted(found)]

    async def runs(self) -> list[DesignedRuns]:
        """Each designed workflow's runs by name and version (oldest version first)."""
        return await self.store.run(self._runs)
