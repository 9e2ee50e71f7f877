"""What the demo writes into the store and reads back: its clients, contacts, firms and churn history in one
transaction, and the best-scored leads it shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sophia_mcp.domain.crm import Client, Contact
from sophia_mcp.domain.enrich import Organization
from sophia_mcp.store.clients import LocalCRM
from sophia_mcp.store.database import Store
from sophia_mcp.store.firmographics import save_firmographics

# The lead score inside each enrichment's score JSON, in each engine's own JSON spelling.
SCORE = {"sqlite": "json_extract(score, '$.score')", "postgresql": "(score::json ->> 'score')::float"}


class PastSnapshot(NamedTuple):
    """A former client's features as of a date, with how it ended (renewed or churned)."""

    client_id: str
    as_of: str
    features: str
    outcome: str


class DemoStore:
    """The demo's side of the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _seed(
        self,
        clients: Sequence[Client],
        contacts: Sequence[Contact],
        firms: Sequence[Organization],
        history: Sequence[PastSnapshot],
    ) -> None:
        with self.store.transaction() as conn:
            LocalCRM.save_clients(conn, clients)
            LocalCRM.save_contacts(conn, contacts)
            save_firmographics(conn, firms, source="demo")
            conn.executemany(
                """
                INSERT INTO client_snapshots (client_id, as_of, features, outcome, source)
                VALUES (?, ?, ?, ?, 'demo') ON CONFLICT (client_id, as_of) DO NOTHING
                """,
                history,
            )

    async def seed(
        self,
        clients: Sequence[Client],
        contacts: Sequence[Contact],
        firms: Sequence[Organization],
        history: Sequence[PastSnapshot],
    ) -> None:
        """Keep the demo's clients, contacts, firmographics and churn history, all or none."""
        await self.store.run(self._seed, clients, contacts, firms, history)

    async def best_leads(self, crm: str, limit: int = 5) -> list[tuple[str, str]]:
        """The contacts of `crm` with the highest lead scores, best first: (contact id, the score as JSON) each."""
        rows = await self.store.run(
            self.store.query,
            "SELECT contact_id, score FROM enrichments WHERE crm = ? AND score IS NOT NULL "
            f"ORDER BY {SCORE[self.store.dialect]} DESC, contact_id LIMIT ?",
            (crm, limit),
        )
        return [(r["contact_id"], r["score"]) for r in rows]
