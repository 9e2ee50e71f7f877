"""What the churn model reads of every client now: health, its trend, calls, sentiment and competitor mentions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sophia_mcp.domain.times import iso, parse_iso
from sophia_mcp.store.database import Store


def _days(latest: str | None, earliest: str | None) -> float | None:
    if latest is None or earliest is None:
        return None
    return (parse_iso(latest) - parse_iso(earliest)).total_seconds() / 86400


@dataclass
class ClientSignals:
    """Each client's signals since a date, read in a few set-based queries (clients with none are absent)."""

    health: dict[str, float]
    # (client, its first score since then, its latest score, the days between its first and last score since then)
    health_spans: list[tuple[str, float, float, float | None]]
    calls: list[tuple[str, str, float | None]]  # (client, started, the client side's sentiment) of analysed calls
    mentions: dict[str, float]  # competitor mentions on calls since then
    last_call: dict[str, str]  # when each client's latest call started, ever


class ChurnSignals:
    """Reads of the store the churn prediction's features are made from."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def since(self, since: datetime) -> ClientSignals:
        """Every client's signals since `since`."""
        return await self.store.run(self._since, iso(since))

    def _since(self, since: str) -> ClientSignals:
        query = self.store.query
        health = {r[0]: r[1] for r in query("SELECT client_id, score FROM client_health")}
        spans = query(
            """
            SELECT client_id,
                (SELECT score FROM client_health_history h2 WHERE h2.client_id = h.client_id AND h2.as_of >= ?
                 ORDER BY as_of LIMIT 1),
                (SELECT score FROM client_health_history h3 WHERE h3.client_id = h.client_id ORDER BY as_of DESC
                 LIMIT 1),
                max(as_of), min(as_of)
            FROM client_health_history h WHERE as_of >= ? GROUP BY client_id
            """,
            (since, since),
        )
        calls = query(
            "SELECT client_id, started, external_sentiment FROM call_analyses WHERE started >= ? "
            "AND client_id IS NOT NULL",
            (since,),
        )
        mentions = query(
            """
            SELECT k.client_id, SUM(m.mentions) FROM call_mentions m JOIN calls k ON k.id = m.call_id
            WHERE k.started >= ? GROUP BY k.client_id
            """,
            (since,),
        )
        last_call = query("SELECT client_id, max(started) FROM calls GROUP BY client_id")
        return ClientSignals(
            health=health,
            # Days between the first and the last point, from the ISO times in Python (no julianday on PostgreSQL).
            health_spans=[(r[0], r[1], r[2], _days(r[3], r[4])) for r in spans],
            calls=[(r[0], r[1], r[2]) for r in calls],
            mentions={r[0]: r[1] for r in mentions},
            last_call={r[0]: r[1] for r in last_call},
        )
