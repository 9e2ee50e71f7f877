"""The churn model's history: each client's features as of a week, with how it ended once known."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from sophia_mcp.domain.times import iso
from sophia_mcp.errors import NotFound
from sophia_mcp.store.database import Store

Outcome = Literal["renewed", "churned"]


class Snapshots:
    """`client_snapshots`: features kept as JSON text, labelled with an outcome when a client renews or churns."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def labelled(self) -> list[tuple[str, Outcome]]:
        """Every snapshot with a known outcome, oldest first: (features as JSON, outcome)."""
        rows = await self.store.run(
            self.store.query, "SELECT features, outcome FROM client_snapshots WHERE outcome IS NOT NULL ORDER BY id"
        )
        return [(r[0], r[1]) for r in rows]

    async def keep(self, as_of: datetime, features: Mapping[str, str]) -> None:
        """Keep each client's features (JSON) as of `as_of`, replacing those not labelled yet."""
        await self.store.run(self._keep, iso(as_of), dict(features))

    def _keep(self, as_of: str, features: dict[str, str]) -> None:
        with self.store.transaction() as conn:
            conn.executemany(
                """
                INSERT INTO client_snapshots (client_id, as_of, features, source) VALUES (?, ?, ?, 'weekly')
                ON CONFLICT (client_id, as_of) DO UPDATE SET features = excluded.features
                WHERE client_snapshots.outcome IS NULL
                """,
                [(client_id, as_of, f) for client_id, f in features.items()],
            )

    async def label(self, client_id: str, outcome: Outcome, since: datetime) -> int:
        """Label the client's snapshots since `since` with how it ended; returns how many were labelled."""
        return await self.store.run(self._label, client_id, outcome, iso(since))

    def _label(self, client_id: str, outcome: Outcome, since: str) -> int:
        with self.store.transaction() as conn:
            if conn.execute("SELECT 1 FROM clients WHERE id = ?", (client_id,)).fetchone() is None:
                raise NotFound(f"No client {client_id!r}")
            return conn.execute(
                "UPDATE client_snapshots SET outcome = ? WHERE client_id = ? AND as_of >= ?",
                (outcome, client_id, since),
            ).rowcount
