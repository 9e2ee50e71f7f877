"""The outbox table: every side effect is written here first, claimed while it is sent, then marked delivered.

An entry's key says what it is about, so enqueuing the same side effect again (a retry, a re-run, a second
process) finds the existing entry instead of sending twice. A claim is a lease: an entry claimed longer ago than
`CLAIM_LEASE` is taken to belong to a process that died while sending, and may be claimed again.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.outbox import OutboxEntry, OutboxStatus
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.store.database import Store

# A claim older than this is taken to belong to a process that died while sending.
CLAIM_LEASE = timedelta(minutes=5)
# Claiming entries: in one statement on SQLite (its write transactions run one at a time); on PostgreSQL the rows
# are locked first, skipping those another sender holds, and the condition is checked again as each is taken.
CLAIM_HERE = """
    UPDATE outbox SET status = 'sending', claimed_at = ?, claimed_by = ?, claimed_host = ?,
        attempts = attempts + 1
    WHERE id IN ({marks}) AND (status = 'pending' OR (status = 'sending' AND claimed_at < ?)) RETURNING *
"""
CLAIM = """
    UPDATE outbox SET status = 'sending', claimed_at = ?, claimed_by = ?, claimed_host = ?,
        attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM outbox WHERE id IN ({marks}) AND (status = 'pending' OR (status = 'sending' AND claimed_at < ?))
        ORDER BY id{skip_locked}
    ) AND (status = 'pending' OR (status = 'sending' AND claimed_at < ?)) RETURNING *
"""

SETTLED_PER_STATEMENT = 400
# Entries marked delivered, each with its own reference: a few hundred to a statement on SQLite, as a VALUES list;
# on PostgreSQL as two arrays (two parameters, however many entries: psycopg parses a statement of many parameters
# afresh each time, and the server parses and plans the long list).
SETTLED = {
    "sqlite": """
        UPDATE outbox SET status = 'delivered', external_ref = settled.column2, delivered_at = ?, last_error = NULL
        FROM (VALUES {rows}) AS settled WHERE outbox.id = settled.column1
    """,
    "postgresql": """
        UPDATE outbox SET status = 'delivered', external_ref = settled.ref, delivered_at = ?, last_error = NULL
        FROM unnest(?::bigint[], ?::text[]) AS settled (id, ref) WHERE outbox.id = settled.id
    """,
}
SETTLED_PER_ARRAY = 10_000

# What a delivery came to: (entry id, the receiver's reference, error); delivered when the error is None.
Outcome = tuple[int, str | None, str | None]


# What an entry is read from: every column but the claim's bookkeeping.
ENTRY_COLUMNS = (
    "id, key, kind, target, status, attempts, last_error, external_ref, run_id, created_at, delivered_at, payload"
)
_ENTRIES = TypeAdapter(list[OutboxEntry])


def _values(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"], "key": row["key"], "kind": row["kind"], "target": row["target"], "status": row["status"],
        "attempts": row["attempts"], "last_error": row["last_error"], "external_ref": row["external_ref"],
        "run_id": row["run_id"], "created_at": row["created_at"], "delivered_at": row["delivered_at"],
        "payload": json.loads(row["payload"]),
    }  # fmt: skip


def _entry(row: sqlite3.Row) -> OutboxEntry:
    # Validated in one call of pydantic-core, timestamps parsed there: twice as quick as constructing it field by
    # field in Python (a listing builds many of them).
    return OutboxEntry.model_validate(_values(row))


# The newest alert kept under a dedupe key.
LAST_KEPT = "SELECT * FROM outbox WHERE dedupe_key = ? ORDER BY id DESC LIMIT 1"


def _recent(row: sqlite3.Row, now: datetime, window: timedelta | None) -> bool:
    """Whether the alert of `row` was kept within `window` of `now` (None: ever)."""
    return window is None or parse_iso(row["created_at"]) >= now - window


def _entry_list(rows: Iterable[sqlite3.Row]) -> list[OutboxEntry]:
    """Many entries validated in one call of pydantic-core, not one call each."""
    return _ENTRIES.validate_python([_values(row) for row in rows])


class Outbox:
    """The `outbox` table: side effects kept, claimed and marked; `workflows.delivery` sends them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _enqueue(self, alert: Alert, run_id: str | None) -> tuple[OutboxEntry, bool]:
        with self.store.transaction() as conn:
            cursor = conn.execute(
                """
                INSERT INTO outbox (key, kind, target, payload, run_id, created_at)
                VALUES (?, 'alert', ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING
                """,
                (alert.key, alert.channel, alert.model_dump_json(), run_id, iso(utcnow())),
            )
            row = conn.execute("SELECT * FROM outbox WHERE key = ?", (alert.key,)).fetchone()
        return _entry(row), cursor.rowcount == 1

    async def enqueue(self, alert: Alert, run_id: str | None = None) -> tuple[OutboxEntry, bool]:
        """Keep the alert for delivery; returns the entry and whether it is new (False: already known)."""
        return await self.store.run(self._enqueue, alert, run_id)

    def _kept_within(self, key: str, now: datetime, window: timedelta | None) -> OutboxEntry | None:
        row = self.store.query_one(LAST_KEPT, (key,))
        return _entry(row) if row is not None and _recent(row, now, window) else None

    def _enqueue_within(self, alert: Alert, window: timedelta | None) -> tuple[OutboxEntry, bool]:
        now = utcnow()
        with self.store.transaction() as conn:
            row = conn.execute(LAST_KEPT, (alert.key,)).fetchone()
            if row is not None and _recent(row, now, window):
                return _entry(row), False
            stamped = alert.model_copy(update={"key": f"{alert.key}@{iso(now)}"})
            conn.execute(
                """
                INSERT INTO outbox (key, kind, target, payload, created_at, dedupe_key)
                VALUES (?, 'alert', ?, ?, ?, ?)
                """,
                (stamped.key, alert.channel, stamped.model_dump_json(), iso(now), alert.key),
            )
            row = conn.execute("SELECT * FROM outbox WHERE key = ?", (stamped.key,)).fetchone()
        return _entry(row), True

    async def enqueue_within(self, alert: Alert, window: timedelta | None) -> tuple[OutboxEntry, bool]:
        """Keep the alert unless one with the same key was kept within `window` (None: ever); then that one is
        returned with False. Past the window the same key may alert again. A repeat is answered by a read here, with
        no trip to a worker thread and no wait for the write lock; a new one is kept (checked again) in a thread."""
        kept = await self.store.read(self._kept_within, alert.key, utcnow(), window)
        if kept is not None:
            return kept, False
        return await self.store.run(self._enqueue_within, alert, window)

    def _enqueue_many(
        self, kind: str, items: Sequence[tuple[str, str, dict[str, Any]]], run_id: str | None
    ) -> list[tuple[int, bool]]:
        with self.store.transaction() as conn:
            return self._keep(conn, kind, items, run_id, None)[0]

    @classmethod
    def keep_within(
        cls,
        conn: sqlite3.Connection,
        kind: str,
        items: Sequence[tuple[str, str, dict[str, Any]]],
        run_id: str | None = None,
    ) -> list[tuple[int, bool]]:
        """`enqueue_many` inside a repository's own write transaction: the side effects are kept with the change
        that calls for them, or not at all. One that holds the write lock (`transaction()`, not `shared`): the keys
        found absent stay absent until the plain insert of the new ones."""  # fmt: skip
        return cls._keep(conn, kind, items, run_id, None)[0]

    @classmethod
    def _keep(
        cls,
        conn: sqlite3.Connection,
        kind: str,
        items: Sequence[tuple[str, str, dict[str, Any]]],
        run_id: str | None,
        claimed: datetime | None,
    ) -> tuple[list[tuple[int, bool]], list[OutboxEntry]]:
        """Keep what is not kept yet: (entry id, new) of each item, and the new entries when they are kept claimed
        by this process at `claimed` (None: kept pending, and no entry built)."""
        now = iso(utcnow())
        keys = list({key: None for key, _, _ in items})
        # Inside the write lock: the keys read here are all that exist until the insert below.
        before = cls._ids_of(conn, keys)
        fresh: dict[str, tuple[str, str, dict[str, Any]]] = {}
        for key, target, payload in items:
            if key not in before and key not in fresh:
                fresh[key] = (key, target, payload)
        # No key among them is kept yet (read above, under the lock): a plain insert, which PostgreSQL takes by COPY
        # rather than as one statement of a few hundred rows of literals to parse (its payloads carry invites).
        # Pending (as the table's defaults leave an entry), or claimed as `claim` leaves it.
        state = ("pending", 0, None, None, None) if claimed is None else (
            "sending", 1, iso(claimed), os.getpid(), socket.gethostname())  # fmt: skip
        conn.executemany(
            """
            INSERT INTO outbox (key, kind, target, payload, run_id, created_at, status, attempts, claimed_at,
                claimed_by, claimed_host)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [(key, kind, target, json.dumps(payload), run_id, now, *state) for key, target, payload in fresh.values()],
        )
        ids = {**before, **cls._ids_of(conn, list(fresh))}
        seen: set[str] = set()
        out = []
        for key, _, _ in items:
            out.append((ids[key], key not in before and key not in seen))
            seen.add(key)
        if claimed is None:
            return out, []
        # Built from the values just written, not validated again: pydantic would walk every payload (invites).
        created = parse_iso(now)
        entries = [
            OutboxEntry.model_construct(
                id=ids[key], key=key, kind=kind, target=target, status="sending", attempts=1, last_error=None,
                external_ref=None, run_id=run_id, created_at=created, delivered_at=None, payload=payload,
            )
            for key, target, payload in fresh.values()
        ]  # fmt: skip
        return out, entries

    @staticmethod
    def _ids_of(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            rows = conn.execute(f"SELECT key, id FROM outbox WHERE key IN ({', '.join('?' * len(chunk))})", chunk)
            found.update((r["key"], int(r["id"])) for r in rows)
        return found

    async def enqueue_many(
        self, kind: str, items: Sequence[tuple[str, str, dict[str, Any]]], run_id: str | None = None
    ) -> list[tuple[int, bool]]:
        """Keep many side effects of one kind, (key, target, payload) each, in one transaction: (entry id, new)
        for each; a key already kept is not kept again."""
        return await self.store.run(self._enqueue_many, kind, items, run_id)

    def _enqueue_claimed(
        self, kind: str, items: Sequence[tuple[str, str, dict[str, Any]]], run_id: str | None
    ) -> tuple[list[tuple[int, bool]], list[OutboxEntry]]:
        with self.store.transaction() as conn:
            return self._keep(conn, kind, items, run_id, utcnow())

    async def enqueue_claimed(
        self, kind: str, items: Sequence[tuple[str, str, dict[str, Any]]], run_id: str | None = None
    ) -> tuple[list[tuple[int, bool]], list[OutboxEntry]]:
        """As `enqueue_many`, the new entries kept already claimed by this process, as `claim` leaves them, for a
        sender that sends them at once (`send_claimed`): one write an entry, not a second to claim it and a read of
        what was just written. (entry id, new) of each item, and the new entries."""
        return await self.store.run(self._enqueue_claimed, kind, items, run_id)

    def _claim(self, entry_ids: Sequence[int]) -> list[OutboxEntry]:
        now = utcnow()
        claimed = []
        shape, repeat = (CLAIM, 1) if self.store.skip_locked else (CLAIM_HERE, 0)
        with self.store.transaction(shared=True) as conn:
            for start in range(0, len(entry_ids), 500):  # one statement a chunk, not one an entry
                chunk = list(entry_ids[start : start + 500])
                marks = ", ".join("?" * len(chunk))
                rows = conn.execute(
                    shape.format(marks=marks, skip_locked=self.store.skip_locked),
                    (iso(now), os.getpid(), socket.gethostname(), *chunk, *[iso(now - CLAIM_LEASE)] * (1 + repeat)),
                ).fetchall()
                claimed += _entry_list(rows)
        return claimed

    async def claim(self, entry_ids: Sequence[int]) -> list[OutboxEntry]:
        """Mark these entries as being sent by this process, those that are pending (or whose sender died);
        return them."""
        return await self.store.run(self._claim, entry_ids)

    def _finish(self, outcomes: Sequence[Outcome]) -> list[OutboxEntry]:
        done = []
        with self.store.transaction() as conn:
            for entry_id, ref, error in outcomes:
                if error is None:
                    row = conn.execute(
                        """
                        UPDATE outbox SET status = 'delivered', external_ref = ?, delivered_at = ?, last_error = NULL
                        WHERE id = ? RETURNING *
                        """,
                        (ref, iso(utcnow()), entry_id),
                    ).fetchone()
                else:
                    row = conn.execute(
                        """
                        UPDATE outbox SET status = 'pending', last_error = ?, claimed_at = NULL WHERE id = ? RETURNING *
                        """,
                        (error, entry_id),
                    ).fetchone()
                done.append(_entry(row))
        return done

    async def finish(self, outcomes: Sequence[Outcome]) -> list[OutboxEntry]:
        """Record each (entry id, receiver's reference, error): delivered, or pending again with the error."""
        return await self.store.run(self._finish, outcomes)

    def _settle(self, outcomes: Sequence[Outcome]) -> None:
        now = iso(utcnow())
        delivered = [(entry_id, ref) for entry_id, ref, error in outcomes if error is None]
        arrays = self.store.dialect == "postgresql"
        with self.store.transaction() as conn:
            # Not a statement an entry: on PostgreSQL each costs its parse and plan (3,000 a health-monitor pass at 10k
            # clients).
            step = SETTLED_PER_ARRAY if arrays else SETTLED_PER_STATEMENT
            for start in range(0, len(delivered), step):
                chunk = delivered[start : start + step]
                if arrays:
                    conn.execute(SETTLED["postgresql"], [now, [i for i, _ in chunk], [ref for _, ref in chunk]])
                else:
                    rows = ", ".join("(?, ?)" for _ in chunk)
                    conn.execute(SETTLED["sqlite"].format(rows=rows), [now, *(value for row in chunk for value in row)])
            conn.executemany(
                "UPDATE outbox SET status = 'pending', last_error = ?, claimed_at = NULL WHERE id = ?",
                [(error, entry_id) for entry_id, _, error in outcomes if error is not None],
            )

    async def settle(self, outcomes: Sequence[Outcome]) -> None:
        """Record each outcome as `finish` does, without reading the entries back (for many at a time)."""
        await self.store.run(self._settle, outcomes)

    def _states(self, keys: Sequence[str]) -> dict[str, tuple[int, OutboxStatus, str | None]]:
        found: dict[str, tuple[int, OutboxStatus, str | None]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            rows = self.store.query(f"SELECT key, id, status, external_ref FROM outbox WHERE key IN ({marks})", chunk)
            found.update((r["key"], (int(r["id"]), r["status"], r["external_ref"])) for r in rows)
        return found

    async def states(self, keys: Sequence[str]) -> dict[str, tuple[int, OutboxStatus, str | None]]:
        """(id, status, receiver's reference) of the entries kept under these keys, by key; no payload is read."""
        return await self.store.run(self._states, keys)

    def _due(self, limit: int) -> list[int]:
        rows = self.store.query(
            """
            SELECT id FROM outbox WHERE status = 'pending' OR (status = 'sending' AND claimed_at < ?)
            ORDER BY id LIMIT ?
            """,
            (iso(utcnow() - CLAIM_LEASE), limit),
        )
        return [int(row["id"]) for row in rows]

    async def due(self, limit: int = 100) -> list[int]:
        """The ids of entries to send (oldest first): those pending, and any whose sender died mid-send."""
        return await self.store.run(self._due, limit)

    def _entries(self, entry_ids: Sequence[int]) -> list[OutboxEntry]:
        out = []
        for start in range(0, len(entry_ids), 500):
            chunk = list(entry_ids[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            out += _entry_list(self.store.query(f"SELECT * FROM outbox WHERE id IN ({marks})", chunk))
        return out

    async def entries(self, entry_ids: Sequence[int]) -> list[OutboxEntry]:
        """These entries as they are now (in no particular order)."""
        return await self.store.run(self._entries, entry_ids)

    async def get(self, entry_id: int) -> OutboxEntry:
        """One entry; LookupError when there is none with this id."""
        row = await self.store.read(self.store.query_one, "SELECT * FROM outbox WHERE id = ?", (entry_id,))
        if row is None:
            raise LookupError(entry_id)
        return _entry(row)

    async def list(
        self,
        status: OutboxStatus | None = None,
        limit: int = 50,
        target: str | None = None,
        before: int | None = None,
        kind: str | None = None,
    ) -> list[OutboxEntry]:
        """Newest first, of one `kind` (alert, issue) or all; `before` an entry id, to page back."""
        # By status, or none, the page is read along an index: quick enough to read here.
        read = self.store.read if target is None else self.store.run
        rows = await read(
            self.store.query,
            f"""
            SELECT {ENTRY_COLUMNS} FROM outbox
            WHERE (:status IS NULL OR status = :status) AND (:target IS NULL OR target = :target)
                AND (:before IS NULL OR id < :before) AND (:kind IS NULL OR kind = :kind)
            ORDER BY id DESC LIMIT :limit
            """,
            {"status": status, "limit": limit, "target": target, "before": before, "kind": kind},
        )
        return _entry_list(rows)
