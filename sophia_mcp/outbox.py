"""The outbox: every side effect is written here first, then delivered, then marked delivered.

An entry's key says what it is about, so enqueuing the same side effect again (a retry, a re-run, a second
process) finds the existing entry instead of sending twice. A delivery that fails leaves the entry pending with
its error, to be sent by a later `deliver_pending`. Each kind of entry (an alert, an issue) has its sender.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import Field

from sophia_mcp.domain.issues import IssueDraft
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.ports.issues import IssueTracker
from sophia_mcp.runs import describe_error
from sophia_mcp.store.database import Store

log = logging.getLogger(__name__)

OutboxStatus = Literal["pending", "sending", "delivered", "failed"]

# A claim older than this is taken to belong to a process that died while sending.
CLAIM_LEASE = timedelta(minutes=5)


class Sender(Protocol):
    """Delivers one kind of entry: `send` returns the receiver's reference; `already_sent` finds an earlier
    delivery whose answer was lost (None when there was none, or when sending is idempotent by itself)."""

    async def send(self, payload: dict[str, Any]) -> str: ...

    async def already_sent(self, payload: dict[str, Any]) -> str | None: ...


class OutboxEntry(Model):
    id: int
    key: str
    kind: str = Field(description="alert or issue.")
    target: str = Field(description="Where it goes: a channel, or a team.")
    status: OutboxStatus
    attempts: int
    last_error: str | None
    external_ref: str | None = Field(description="The receiver's reference: a Slack ts, an issue identifier.")
    run_id: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="What is sent: the alert (title, text, ...) or the issue draft.")

    @property
    def alert(self) -> Alert:
        return Alert.model_validate(self.payload)

    @property
    def title(self) -> str:
        return str(self.payload.get("title") or (self.payload.get("draft") or {}).get("title") or "")


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
        payload=json.loads(row["payload"]),
    )


class AlertSender:
    """Alerts go through the notifier (Slack, or the local outbox itself)."""

    def __init__(self, notifier: Any) -> None:
        self.notifier = notifier

    async def send(self, payload: dict[str, Any]) -> str:
        return str(await self.notifier.send(Alert.model_validate(payload)))

    async def already_sent(self, payload: dict[str, Any]) -> str | None:
        found = await self.notifier.already_sent(Alert.model_validate(payload))
        return None if found is None else str(found)


class IssueSender:
    """Issues go to the tracker, whose create is idempotent by the entry's key: a lost answer needs no lookup."""

    def __init__(self, tracker: IssueTracker) -> None:
        self.tracker = tracker

    async def send(self, payload: dict[str, Any]) -> str:
        issue, _ = await self.tracker.create(IssueDraft.model_validate(payload["draft"]), payload["key"])
        return issue.identifier

    async def already_sent(self, payload: dict[str, Any]) -> str | None:
        return None


class Outbox:
    def __init__(self, store: Store, senders: Mapping[str, Sender] | None = None) -> None:
        self.store = store
        self.senders: dict[str, Sender] = dict(senders or {})

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

    def _claim(self, entry_ids: Sequence[int]) -> list[OutboxEntry]:
        """Mark these entries as being sent, those that are pending (or whose sender died); return them."""
        now = utcnow()
        claimed = []
        with self.store.transaction() as conn:
            for entry_id in entry_ids:
                row = conn.execute(
                    """
                    UPDATE outbox SET status = 'sending', claimed_at = ?, claimed_by = ?, attempts = attempts + 1
                    WHERE id = ? AND (status = 'pending' OR (status = 'sending' AND claimed_at < ?)) RETURNING *
                    """,
                    (iso(now), os.getpid(), entry_id, iso(now - CLAIM_LEASE)),
                ).fetchone()
                if row is not None:
                    claimed.append(_entry(row))
        return claimed

    def _finish(self, outcomes: Sequence[tuple[int, str | None, str | None]]) -> list[OutboxEntry]:
        """Record each (entry id, receiver's reference, error): delivered, or pending again with the error."""
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

    def _enqueue_many(
        self, kind: str, items: Sequence[tuple[str, str, dict[str, Any]]], run_id: str | None
    ) -> list[tuple[int, bool]]:
        now = iso(utcnow())
        out = []
        with self.store.transaction() as conn:
            for key, target, payload in items:
                cursor = conn.execute(
                    """
                    INSERT INTO outbox (key, kind, target, payload, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (key) DO NOTHING RETURNING id
                    """,
                    (key, kind, target, json.dumps(payload), run_id, now),
                )
                inserted = cursor.fetchone()
                if inserted is not None:
                    out.append((int(inserted[0]), True))
                else:
                    out.append((int(conn.execute("SELECT id FROM outbox WHERE key = ?", (key,)).fetchone()[0]), False))
        return out

    async def enqueue_many(
        self, kind: str, items: Sequence[tuple[str, str, dict[str, Any]]], run_id: str | None = None
    ) -> list[tuple[int, bool]]:
        """Keep many side effects of one kind, (key, target, payload) each, in one transaction: (entry id, new)
        for each; a key already kept is not kept again."""
        return await self.store.run(self._enqueue_many, kind, items, run_id)

    async def _send(self, entry: OutboxEntry) -> tuple[int, str | None, str | None]:
        sender = self.senders.get(entry.kind)
        if sender is None:
            return entry.id, None, f"nothing here delivers {entry.kind!r} entries"
        try:
            # A second attempt may follow one whose answer was lost after it went through: look before sending.
            earlier = await sender.already_sent(entry.payload) if entry.attempts > 1 else None
            return entry.id, earlier or await sender.send(entry.payload), None
        except Exception as exc:
            log.warning("Delivery of outbox entry %s (%s) failed: %s", entry.id, entry.kind, describe_error(exc))
            return entry.id, None, describe_error(exc)

    async def deliver(self, entry_id: int) -> OutboxEntry:
        """Send one entry unless it is delivered or another process is sending it; never raises on send failure."""
        claimed = await self.store.run(self._claim, [entry_id])
        if not claimed:
            return await self.get(entry_id)
        return (await self.store.run(self._finish, [await self._send(claimed[0])]))[0]

    async def deliver_all(
        self, entry_ids: Sequence[int], concurrency: int = 4, batch: int = 200
    ) -> dict[int, OutboxEntry]:
        """Send these entries: claimed and recorded a batch at a time, sent a few at a time (each service's own
        limits pace them further). Entries delivered already, or being sent by another process, are left alone.
        Returns every entry as it is afterwards, by id."""
        import anyio

        slots = anyio.Semaphore(concurrency)

        async def one(entry: OutboxEntry, outcomes: list[tuple[int, str | None, str | None]]) -> None:
            async with slots:
                outcomes.append(await self._send(entry))

        for start in range(0, len(entry_ids), batch):
            claimed = await self.store.run(self._claim, entry_ids[start : start + batch])
            outcomes: list[tuple[int, str | None, str | None]] = []
            async with anyio.create_task_group() as group:
                for entry in claimed:
                    group.start_soon(one, entry, outcomes)
            await self.store.run(self._finish, outcomes)
        return {e.id: e for e in await self.entries(entry_ids)}

    async def deliver_pending(self, limit: int = 100) -> list[OutboxEntry]:
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
        return [await self.deliver(row["id"]) for row in rows]

    def _entries(self, entry_ids: Sequence[int]) -> list[OutboxEntry]:
        out = []
        for start in range(0, len(entry_ids), 500):
            chunk = list(entry_ids[start : start + 500])
            marks = ", ".join("?" for _ in chunk)
            out += [_entry(r) for r in self.store.query(f"SELECT * FROM outbox WHERE id IN ({marks})", chunk)]
        return out

    async def entries(self, entry_ids: Sequence[int]) -> list[OutboxEntry]:
        """These entries as they are now (in no particular order)."""
        return await self.store.run(self._entries, entry_ids)

    async def get(self, entry_id: int) -> OutboxEntry:
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
            """
            SELECT * FROM outbox WHERE (:status IS NULL OR status = :status) AND (:target IS NULL OR target = :target)
                AND (:before IS NULL OR id < :before) AND (:kind IS NULL OR kind = :kind)
            ORDER BY id DESC LIMIT :limit
            """,
            {"status": status, "limit": limit, "target": target, "before": before, "kind": kind},
        )
        return [_entry(r) for r in rows]
