"""The `inbox` table: events from outside, kept once, claimed with a lease while a worker acts on them.

`record` keeps a batch of events in one transaction and says which were new; an event already kept (the same
source and id) only counts one more delivery. A worker `claim`s due events with a lease: one claimed by a worker
that died is due again once its lease runs out, so nothing is lost and, the actions being idempotent, nothing is
done twice. `connector_cursors` beside it holds how far each polling connector has read.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sophia_mcp.domain.inbox import InboxEvent, InboxStatus, Incoming
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.store.database import Store, dumps
from sophia_mcp.store.runs import process_alive

LISTED = ("id", "source", "event_id", "kind", "via", "status", "attempts", "deliveries", "received_at", "next_at",
          "finished_at", "last_error", "result", "payload")  # fmt: skip


def worker_name() -> str:
    """A worker's name in the claims it makes: its host and process (so a restart on the same host can tell the
    claims of a process that died), and a token of its own."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _died_here(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid))


def _event(row: sqlite3.Row) -> InboxEvent:
    # Constructed, not validated: every row was written from a checked event (a listing builds many).
    return InboxEvent.model_construct(
        id=row["id"], source=row["source"], event_id=row["event_id"], kind=row["kind"], via=row["via"],
        status=row["status"], attempts=row["attempts"], deliveries=row["deliveries"],
        received_at=parse_iso(row["received_at"]), next_at=parse_iso(row["next_at"]),
        finished_at=parse_iso(row["finished_at"]) if row["finished_at"] else None, last_error=row["last_error"],
        result=json.loads(row["result"]) if row["result"] else None, payload=json.loads(row["payload"]),
    )  # fmt: skip


class Inbox:
    """Events kept, claimed, finished, retried or given up on; `workflows.events` processes them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _record(self, events: Sequence[Incoming]) -> list[bool]:
        now = iso(utcnow())
        fresh: list[bool] = []
        with self.store.transaction() as conn:
            for e in events:
                cursor = conn.execute(
                    """
                    INSERT INTO inbox (source, event_id, kind, via, payload, received_at, next_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (source, event_id) DO UPDATE SET deliveries = inbox.deliveries + 1
                    RETURNING deliveries
                    """,
                    (e.source, e.event_id, e.kind, e.via, dumps(e.payload), now, now),
                )
                fresh.append(cursor.fetchone()[0] == 1)
        return fresh

    async def record(self, events: Sequence[Incoming]) -> list[bool]:
        """Keep the events in one transaction; for each, whether it is new (False: kept before, now delivered
        once more). Once this returns the events are safe: the provider may be answered."""
        return await self.store.run(self._record, list(events))

    def _claim(self, owner: str, now: datetime, limit: int, lease: timedelta) -> list[InboxEvent]:
        # Events another worker is claiming this moment are skipped, not waited for (PostgreSQL).
        with self.store.transaction(shared=True) as conn:
            rows = conn.execute(
                f"""
                UPDATE inbox SET status = 'working', claimed_by = ?, claimed_until = ?, attempts = attempts + 1
                WHERE id IN (
                    SELECT id FROM inbox WHERE status IN ('pending', 'working') AND next_at <= ?
                        AND (status = 'pending' OR claimed_until < ?)
                    ORDER BY next_at, id LIMIT ?{self.store.skip_locked}
                ) RETURNING *
                """,
                (owner, iso(now + lease), iso(now), iso(now), limit),
            ).fetchall()
        return sorted((_event(row) for row in rows), key=lambda e: e.id)

    async def claim(self, owner: str, limit: int, lease: timedelta, now: datetime | None = None) -> list[InboxEvent]:
        """Up to `limit` due events, oldest first, held by `owner` for `lease` (one attempt more each)."""
        return await self.store.run(self._claim, owner, now or utcnow(), limit, lease)

    def _finish(self, event_id: int, owner: str, status: InboxStatus, result: dict[str, Any] | None) -> bool:
        with self.store.transaction() as conn:
            cursor = conn.execute(
                """
                UPDATE inbox SET status = ?, result = ?, last_error = NULL, finished_at = ?, claimed_by = NULL,
                    claimed_until = NULL
                WHERE id = ? AND status = 'working' AND claimed_by = ?
                """,
                (status, dumps(result) if result is not None else None, iso(utcnow()), event_id, owner),
            )
        return cursor.rowcount == 1

    async def finish(
        self, event_id: int, owner: str, result: dict[str, Any] | None, status: InboxStatus = "done"
    ) -> bool:
        """Mark an event `owner` holds done (or ignored: nothing to do); False if its lease was lost."""
        return await self.store.run(self._finish, event_id, owner, status, result)

    def _fail(self, event_id: int, owner: str, error: str, retry_at: datetime | None) -> bool:
        with self.store.transaction() as conn:
            cursor = conn.execute(
                """
                UPDATE inbox SET status = ?, last_error = ?, next_at = coalesce(?, next_at), claimed_by = NULL,
                    claimed_until = NULL, finished_at = ?
                WHERE id = ? AND status = 'working' AND claimed_by = ?
                """,
                (
                    "pending" if retry_at else "dead", error, iso(retry_at) if retry_at else None,
                    None if retry_at else iso(utcnow()), event_id, owner,
                ),
            )  # fmt: skip
        return cursor.rowcount == 1

    async def fail(self, event_id: int, owner: str, error: str, retry_at: datetime | None) -> bool:
        """An attempt failed: due again at `retry_at`, or dead (given up, kept) when it is None."""
        return await self.store.run(self._fail, event_id, owner, error, retry_at)

    def release_abandoned(self) -> int:
        """Make the events held by a worker of this host whose process has died due at once, rather than when its
        lease runs out; how many. Blocking: called once, as a process's services start."""
        owners = [r["claimed_by"] for r in self.store.query(
            "SELECT DISTINCT claimed_by FROM inbox WHERE status = 'working' AND claimed_by IS NOT NULL"
        )]  # fmt: skip
        dead = [owner for owner in owners if _died_here(owner)]
        if not dead:
            return 0
        with self.store.transaction() as conn:
            cursor = conn.executemany(
                "UPDATE inbox SET status = 'pending', claimed_by = NULL, claimed_until = NULL "
                "WHERE status = 'working' AND claimed_by = ?",
                [(owner,) for owner in dead],
            )
        return cursor.rowcount

    def _requeue(self, event_ids: Sequence[int]) -> int:
        now = iso(utcnow())
        with self.store.transaction() as conn:
            marks = ", ".join("?" * len(event_ids))
            cursor = conn.execute(
                f"""
                UPDATE inbox SET status = 'pending', next_at = ?, attempts = 0, finished_at = NULL
                WHERE id IN ({marks}) AND status = 'dead'
                """,
                (now, *event_ids),
            )
        return cursor.rowcount

    async def requeue(self, event_ids: Sequence[int]) -> int:
        """Give dead events a fresh set of attempts, due now; how many were dead."""
        return await self.store.run(self._requeue, list(event_ids)) if event_ids else 0

    def _list(self, status: str | None, source: str | None, before: int | None, limit: int) -> list[InboxEvent]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("status", status), ("source", source)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("id < ?")
            params.append(before)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.store.query(
            f"SELECT {', '.join(LISTED)} FROM inbox {clause} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [_event(row) for row in rows]

    async def list(
        self, status: str | None = None, source: str | None = None, before: int | None = None, limit: int = 50
    ) -> list[InboxEvent]:
        """The newest events first (ids below `before`, when given), of a status and a source when given."""
        return await self.store.read(self._list, status, source, before, limit, keys=limit)

    def _get(self, event_id: int) -> InboxEvent | None:
        row = self.store.query_one(f"SELECT {', '.join(LISTED)} FROM inbox WHERE id = ?", (event_id,))
        return _event(row) if row is not None else None

    async def get(self, event_id: int) -> InboxEvent | None:
        return await self.store.read(self._get, event_id)

    def _counts(self) -> dict[str, int]:
        rows = self.store.query("SELECT status, count(*) AS n FROM inbox GROUP BY status")
        return {row["status"]: row["n"] for row in rows}

    async def counts(self) -> dict[str, int]:
        """How many events are in each status."""
        return await self.store.read(self._counts)

    def _next_due(self) -> datetime | None:
        row = self.store.query_one(
            """
            SELECT min(
                CASE WHEN status = 'working' AND claimed_until > next_at THEN claimed_until ELSE next_at END
            ) AS at
            FROM inbox WHERE status IN ('pending', 'working')
            """
        )
        return parse_iso(row["at"]) if row is not None and row["at"] else None

    async def next_due(self) -> datetime | None:
        """When the next event falls due (a pending one, or a lease that runs out); None when none waits."""
        return await self.store.read(self._next_due)


class ConnectorCursors:
    """How far each polling connector has read: moved only once what it covers is in the inbox."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _get(self, name: str) -> str | None:
        row = self.store.query_one("SELECT position FROM connector_cursors WHERE name = ?", (name,))
        return str(row["position"]) if row is not None else None

    async def get(self, name: str) -> str | None:
        return await self.store.read(self._get, name)

    def _set(self, name: str, position: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO connector_cursors (name, position, updated_at) VALUES (?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at
                """,
                (name, position, iso(utcnow())),
            )

    async def set(self, name: str, position: str) -> None:
        await self.store.run(self._set, name, position)

    def _record_then_move(self, inbox: Inbox, events: Sequence[Incoming], name: str, position: str) -> list[bool]:
        fresh = inbox._record(events)
        self._set(name, position)
        return fresh

    async def record_then_move(self, inbox: Inbox, events: Sequence[Incoming], name: str, position: str) -> list[bool]:
        """Keep what a poll found, then move its cursor past it: a crash between the two re-reads (and the inbox
        keeps a re-read event once), it never skips."""
        return await self.store.run(self._record_then_move, inbox, list(events), name, position)
