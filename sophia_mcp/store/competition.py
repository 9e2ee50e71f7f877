"""What the calls say about competitors, and the insights kept about them, for competitive intelligence."""

from __future__ import annotations

from datetime import date, datetime

from sophia_mcp.domain.results import CallAnalysis
from sophia_mcp.domain.times import iso
from sophia_mcp.store.database import Store


class Competition:
    """Competitor mentions on stored calls, and the knowledge base's daily competitor insights."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def mentions(
        self, competitor: str, start: datetime, end: datetime, quotes: int
    ) -> tuple[int, int, list[tuple[str, CallAnalysis]]]:
        """Mentions and clients of `competitor` on calls started in [start, end), and the analyses of up to
        `quotes` of those calls, newest first, with their titles."""
        return await self.store.run(self._mentions, competitor, iso(start), iso(end), quotes)

    def _mentions(
        self, competitor: str, start: str, end: str, quotes: int
    ) -> tuple[int, int, list[tuple[str, CallAnalysis]]]:
        row = self.store.query_one(
            """
            SELECT COALESCE(SUM(m.mentions), 0), COUNT(DISTINCT k.client_id) FROM call_mentions m
            JOIN calls k ON k.id = m.call_id WHERE m.competitor = ? AND k.started >= ? AND k.started < ?
            """,
            (competitor, start, end),
        )
        rows = self.store.query(
            """
            SELECT k.title, a.analysis FROM call_mentions m JOIN calls k ON k.id = m.call_id
            JOIN call_analyses a ON a.call_id = k.id
            WHERE m.competitor = ? AND k.started >= ? AND k.started < ? ORDER BY k.started DESC LIMIT ?
            """,
            (competitor, start, end, quotes),
        )
        analyses = [(title, CallAnalysis.model_validate_json(raw)) for title, raw in rows]
        return (int(row[0]), int(row[1]), analyses) if row else (0, 0, analyses)

    async def previous_insight(self, slug: str, day: date) -> str | None:
        """The id of the latest insight about a competitor before `day` (insights are `intel-{slug}-{day}`)."""
        row = await self.store.run(
            self.store.query_one,
            "SELECT id FROM documents WHERE type = 'competitor_insight' AND id LIKE ? AND id < ? "
            "ORDER BY id DESC LIMIT 1",
            (f"intel-{slug}-%", f"intel-{slug}-{day.isoformat()}"),
        )
        return str(row[0]) if row else None
