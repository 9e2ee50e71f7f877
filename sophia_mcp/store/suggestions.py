"""Short keyed reads for completions of ids the store keeps for other owners (alerts, issues)."""

from __future__ import annotations

from sophia_mcp.store.database import Store


class Suggestions:
    """Ids a client may be typing, read from the store (completers run in a worker thread: these block)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def alert_ids(self, typed: str) -> list[str]:
        """Ids of the latest 200 outbox entries that start with what was typed, newest first."""
        rows = self.store.query("SELECT id FROM outbox ORDER BY id DESC LIMIT 200")
        return [str(r["id"]) for r in rows if str(r["id"]).startswith(typed)]

    def issue_identifiers(self, typed: str, limit: int) -> list[str]:
        """Identifiers of issues the store knows that start with what was typed (case aside), newest first."""
        rows = self.store.query(
            "SELECT identifier FROM issue_keys WHERE identifier LIKE ? ORDER BY created_at DESC LIMIT ?",
            (f"{typed.upper()}%", limit),
        )
        return [r["identifier"] for r in rows]
