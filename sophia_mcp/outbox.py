"""The outbox: every side effect is written here first, then delivered, then marked delivered.

An entry's key says what it is about, so enqueuing the same alert again (a retry, a re-run, a second
process) finds the existing entry instead of sending twice. A delivery that fails leaves the entry
pending with its error, to be sent by a later `deliver_pending`.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from sophia_mcp.ports.notify import Alert, Notifier
from sophia_mcp.runs import describe_error
from sophia_mcp.store import Store, iso, parse_iso, utcnow

log = logging.getLogger(__name__)

OutboxStatus = Literal["pending", "sending", "delivered", "failed"]

# A claim older than this is taken to belong to a process that died while sending.
CLAIM_LEASE = timedelta(minutes=5)


class OutboxEntry(BaseModel):
    id: int
    key: str
    kind: str
    target: str
    status: OutboxStatus
    attempts: int
    last_error: str | None
    external_ref: str | None
    run_id: str | None
    created_at: datetime
    delivered_at: datetime | None
    alert: Alert


def _entry(row: sqlite3.Row) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"],
        key=row["key"],
        kind=row["kind"],
        target=row["target"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        external_ref=row["external_ref"],
        run_id=row["run_id"],
        created_at=parse_iso(row["created_at"]),
        delivered_at=parse_iso(row["delivered_at"]) if row["delivered_at"] else None,
        alert=Alert.model_validate_json(row["payload"]),
    )


class Outbox:
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

    def _enqueue_within(self, alert: Alert, window: timedelta | None) -> tuple[OutboxEntry, bool]:
        now = utcnow()
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM outbox WHERE dedupe_key = ? ORDER BY id DESC LIMIT 1", (alert.key,)
            ).fetchone()
            if row is not None and (window is None or parse_iso(row["created_at"]) >= now - window):
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
        returned with False. Past the window the same key may alert again."""
        return await self.store.run(self._enqueue_within, alert, window)

    def _claim(self, entry_id: int) -> OutboxEntry | None:
        now = utcnow()
        with self.store.transaction() as conn:
            claimed = conn.execute(
                """
                UPDATE outbox SET status = 'sending', claimed_at = ?, attempts = attempts + 1
                WHERE id = ? AND (status = 'pending' OR (status = 'sending' AND claimed_at < ?))
                """,
                (iso(now), entry_id, iso(now - CLAIM_LEASE)),
            ).rowcount
            row = conn.execute("SELECT * FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row) if claimed else None

    def _finish(self, entry_id: int, ref: str | None, error: str | None) -> OutboxEntry:
        with self.store.transaction() as conn:
            if error is None:
                conn.execute(
                    """
                    UPDATE outbox SET status = 'delivered', external_ref = ?, delivered_at = ?, last_error = NULL
                    WHERE id = ?
                    """,
                    (ref, iso(utcnow()), entry_id),
                )
            else:
                conn.execute(
                    "UPDATE outbox SET status = 'pending', last_error = ?, claimed_at = NULL WHERE id = ?",
                    (error, entry_id),
                )
            row = conn.execute("SELECT * FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        return _entry(row)

    async def deliver(self, entry_id: int, notifier: Notifier) -> OutboxEntry:
        """Send one entry unless it is delivered or another process is sending it; never raises on send failure."""
        entry = await self.store.run(self._claim, entry_id)
        if entry is None:
            return await self.get(entry_id)
        try:
            # A second attempt may follow one whose answer was lost after it went through: look before sending.
            earlier = await notifier.already_sent(entry.alert) if entry.attempts > 1 else None
            ref = earlier or await notifier.send(entry.alert)
        except Exception as exc:
            log.warning("Delivery of outbox entry %s via %s failed: %s", entry_id, notifier.name, describe_error(exc))
            return await self.store.run(self._finish, entry_id, None, describe_error(exc))
        return await self.store.run(self._finish, entry_id, ref, None)

    async def deliver_pending(self, notifier: Notifier, limit: int = 100) -> list[OutboxEntry]:
        """Try every pending entry (oldest first), and any whose sender died mid-send."""
        stale = iso(utcnow() - CLAIM_LEASE)
        rows = await self.store.run(
            self.store.query,
            """
            SELECT id FROM outbox WHERE status = 'pending' OR (status = 'sending' AND claimed_at < ?)
            ORDER BY id LIMIT ?
            """,
            (stale, limit),
        )
        return [await self.deliver(row["id"], notifier) for row in rows]

    async def get(self, entry_id: int) -> OutboxEntry:
        row = await self.store.run(self.store.query_one, "SELECT * FROM outbox WHERE id = ?", (entry_id,))
        if row is None:
            raise LookupError(entry_id)
        return _entry(row)

    async def list(
        self, status: OutboxStatus | None = None, limit: int = 50, target: str | None = None, before: int | None = None
    ) -> list[OutboxEntry]:
        """Newest first; `before` an entry id, to page back."""
        rows = await self.store.run(
            self.store.query,
            """
            SELECT * FROM outbox WHERE (:status IS NULL OR status = :status) AND (:target IS NULL OR target = :target)
                AND (:before IS NULL OR id < :before)
            ORDER BY id DESC LIMIT :limit
            """,
            {"status": status, "limit": limit, "target": target, "before": before},
        )
        return [_entry(r) for r in rows]
