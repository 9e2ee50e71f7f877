"""The ledger of issues a real tracker is asked to create, by idempotency key: a retry, a re-run or a replica that
finds its key here asks the tracker for the issue instead of creating a second one."""

from __future__ import annotations

from sophia_mcp.domain.issues import Issue
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.store.database import Store


class IssueKeys:
    def __init__(self, store: Store, backend: str) -> None:
        self.store = store
        self.backend = backend

    async def claim(self, key: str) -> tuple[str | None, bool]:
        """(issue id recorded for `key`, whether a create for it was begun before), claiming the key if it is new."""
        return await self.store.run(self._claim, key)

    async def record(self, key: str, issue: Issue | None) -> None:
        """The issue created for `key`; None frees the key (nothing was created)."""
        await self.store.run(self._record, key, issue)

    def _claim(self, key: str) -> tuple[str | None, bool]:
        with self.store.transaction() as conn:
            row = conn.execute("SELECT issue_id FROM issue_keys WHERE key = ?", (key,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO issue_keys (key, backend, created_at) VALUES (?, ?, ?)",
                    (key, self.backend, iso(utcnow())),
                )
                return None, False
            return row["issue_id"], True

    def _record(self, key: str, issue: Issue | None) -> None:
        with self.store.transaction() as conn:
            if issue is None:
                conn.execute("DELETE FROM issue_keys WHERE key = ? AND issue_id IS NULL", (key,))
            else:
                conn.execute(
                    "UPDATE issue_keys SET issue_id = ?, identifier = ? WHERE key = ?",
                    (issue.id, issue.identifier, key),
                )
