"""The `health_alert_state` table: each client's last health alert, so the next is raised only on a change."""

from __future__ import annotations

import json
from datetime import datetime

from sophia_mcp.domain.health_alerts import LastAlert
from sophia_mcp.domain.results import HealthScore
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.store.database import Store


class HealthAlertLedger:
    """One row per client that has had a health alert."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _last(self, client_id: str) -> LastAlert | None:
        row = self.store.query_one("SELECT * FROM health_alert_state WHERE client_id = ?", (client_id,))
        if row is None:
            return None
        return LastAlert(
            key=row["alert_key"], score=row["score"], components=json.loads(row["components"]),
            call_id=row["call_id"], call_started=parse_iso(row["call_started"]),
            recovered_score=row["recovered_score"],
        )  # fmt: skip

    async def last(self, client_id: str) -> LastAlert | None:
        """The client's last health alert, or None when it has had none."""
        return await self.store.run(self._last, client_id)

    def _alerted(self, client_id: str, key: str, health: HealthScore, call_id: str, started: datetime) -> None:
        components = json.dumps({c.name: c.score for c in health.components})
        with self.store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO health_alert_state (client_id, alert_key, score, components, call_id, call_started,
                                                recovered_score, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, NULL, ?)
                ON CONFLICT (client_id) DO UPDATE SET
                    alert_key = excluded.alert_key, score = excluded.score, components = excluded.components,
                    call_id = excluded.call_id, call_started = excluded.call_started, recovered_score = NULL,
                    updated_at = excluded.updated_at
                """,
                (client_id, key, health.score, components, call_id, iso(started), iso(utcnow())),
            )

    async def alerted(self, client_id: str, key: str, health: HealthScore, call_id: str, started: datetime) -> None:
        """Record the alert `key` raised for the client at `health`, as of the call `call_id` (started `started`)."""
        await self.store.run(self._alerted, client_id, key, health, call_id, started)

    def _recovered(self, client_id: str, score: float) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE health_alert_state SET updated_at = ?, recovered_score = "
                "CASE WHEN coalesce(recovered_score, 0) > ? THEN coalesce(recovered_score, 0) ELSE ? END "
                "WHERE client_id = ?",
                (iso(utcnow()), score, score, client_id),
            )

    async def recovered(self, client_id: str, score: float) -> None:
        """The client is at or above the threshold again: its next fall under it alerts."""
        await self.store.run(self._recovered, client_id, score)
