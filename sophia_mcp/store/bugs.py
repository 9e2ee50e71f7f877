"""Bug reports in the store: each report's channel and reporter, its issue once filed, and the state its channel
last heard, so each change of state is announced once whichever process sees it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime

from sophia_mcp.domain.bugs import BugReport
from sophia_mcp.domain.notify import Alert
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.store.database import Store
from sophia_mcp.store.outbox import Outbox

# The message that tells a report's channel of its issue's new state: from the report and the transition's number.
Announcement = Callable[[BugReport, int], Alert]


def _report(row: sqlite3.Row) -> BugReport:
    return BugReport(
        issue_key=row["issue_key"], reporter=row["reporter"], channel=row["channel"], issue_id=row["issue_id"],
        last_state=row["last_state"], created_at=parse_iso(row["created_at"]),
        updated_at=parse_iso(row["updated_at"]), entry_id=row["entry_id"],
    )  # fmt: skip


class BugReports:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def keep(self, key: str, reporter: str, channel: str) -> None:
        """Keep a report under its issue's key (a report kept already stays as it is)."""
        now = iso(utcnow())
        await self.store.run(
            self.store.execute,
            """
            INSERT INTO bug_reports (issue_key, reporter, channel, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (issue_key) DO NOTHING
            """,
            (key, reporter, channel, now, now),
        )

    async def filed(self, key: str, issue_id: str, state: str) -> None:
        """The report's issue is filed, in `state`, and its channel told so."""
        await self.store.run(
            self.store.execute,
            "UPDATE bug_reports SET issue_id = ?, last_state = ?, updated_at = ? WHERE issue_key = ?",
            (issue_id, state, iso(utcnow()), key),
        )

    def _all(self) -> list[BugReport]:
        rows = self.store.query(
            """
            SELECT b.*, o.id AS entry_id FROM bug_reports b LEFT JOIN outbox o ON o.key = b.issue_key
            ORDER BY b.created_at
            """
        )
        return [_report(r) for r in rows]

    async def all(self) -> list[BugReport]:
        """Every report, oldest first, with the outbox entry that opens its issue."""
        return await self.store.run(self._all)

    def _of_issue(self, issue_id: str) -> BugReport | None:
        row = self.store.query_one(
            """
            SELECT b.*, o.id AS entry_id FROM bug_reports b LEFT JOIN outbox o ON o.key = b.issue_key
            WHERE b.issue_id = ?
            """,
            (issue_id,),
        )
        return None if row is None else _report(row)

    async def of_issue(self, issue_id: str) -> BugReport | None:
        """The report whose issue this is (by the tracker's id), or None when no report filed it."""
        return await self.store.read(self._of_issue, issue_id)

    def _take_transition(
        self, issue_id: str, state: str, when: datetime, announce: Announcement
    ) -> tuple[BugReport, Alert] | None:
        with self.store.transaction() as conn:
            row = conn.execute(
                """
                UPDATE bug_reports SET last_state = ?, updated_at = ? WHERE issue_id = ? AND last_state IS NOT ?
                RETURNING *, NULL AS entry_id
                """,
                (state, iso(when), issue_id, state),
            ).fetchone()
            if row is None:
                return None
            # Its announcements so far: the keys from "bug-state:KEY:" up to "bug-state:KEY;" (';' follows ':').
            told = conn.execute(
                "SELECT count(*) FROM outbox WHERE key >= ? AND key < ?",
                (f"bug-state:{row['issue_key']}:", f"bug-state:{row['issue_key']};"),
            ).fetchone()[0]
            report = _report(row)
            alert = announce(report, int(told) + 1)
            Outbox.keep_within(conn, "alert", [(alert.key, alert.channel, alert.model_dump())])
        return report, alert

    async def take_transition(
        self, issue_id: str, state: str, when: datetime, announce: Announcement
    ) -> tuple[BugReport, Alert] | None:
        """Record that a bug report's issue is now in `state` and keep, in the outbox, the message `announce`
        makes of it (from the report and the number of this transition, 1 for the first change after filing); the
        report and that message, or None if it is no report's issue or the channel already heard this state. One
        transaction: two processes seeing the same change count it once, and a process that dies after it leaves
        the message to the outbox's delivery, never lost."""
        return await self.store.run(self._take_transition, issue_id, state, when, announce)

    def _assign(self, key: str, people: list[str], available: set[str]) -> str | None:
        with self.store.transaction() as conn:
            row = conn.execute("SELECT assignee FROM bug_assignments WHERE issue_key = ?", (key,)).fetchone()
            if row is not None:
                return str(row["assignee"]) if row["assignee"] else None
            chosen = None
            if available:
                # One atomic step of the turn (two processes never take the same one), then the first one
                # available from there on.
                turn = conn.execute(
                    """
                    INSERT INTO bug_rotation (name, turn) VALUES (?, 1) ON CONFLICT (name) DO UPDATE
                    SET turn = bug_rotation.turn + 1 RETURNING turn
                    """,
                    ("\n".join(people),),
                ).fetchone()[0]
                start = int(turn) - 1
                chosen = next(p for i in range(len(people)) if (p := people[(start + i) % len(people)]) in available)
            conn.execute(
                "INSERT INTO bug_assignments (issue_key, assignee, created_at) VALUES (?, ?, ?)",
                (key, chosen, iso(utcnow())),
            )
            return chosen

    async def assign(self, key: str, people: list[str], available: set[str]) -> str | None:
        """Who the report `key` goes to: the one chosen for it before, else the next of the rotation `people`
        whose turn it is, skipping those not `available` (the turn is kept in the store, per rotation, so
        processes share it and a restart keeps it); None (the team's triage) when no one is available."""
        return await self.store.run(self._assign, key, people, available)

    async def assignee(self, key: str) -> str | None:
        """Who the report `key` was assigned to, if anyone."""
        row = await self.store.read(
            self.store.query_one, "SELECT assignee FROM bug_assignments WHERE issue_key = ?", (key,)
        )
        return str(row["assignee"]) if row and row["assignee"] else None
