"""The enrichment ledger: every answer of the enricher about a contact, and what became of it, per CRM.

An answer is kept the moment it arrives (so a crash never spends a credit twice) and reused while fresh; the
outcome (written, unchanged, failed) and its lead score are added when the contact is done.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sophia_mcp.domain.enrich import Person
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.store.database import Store, dumps


@dataclass(frozen=True)
class Answer:
    """What the enricher said about one contact: the person (None: not known), or why it could not say."""

    contact_id: str
    person: Person | None
    error: str | None = None


@dataclass(frozen=True)
class Finished:
    """What became of one contact: its status, the fields written, its lead score (JSON) or its error."""

    contact_id: str
    status: str
    changes: dict[str, Any]
    score: str | None
    error: str | None


def _person(raw: str) -> Person | None:
    value = json.loads(raw)
    return Person.model_validate(value) if value else None


class EnrichmentLedger:
    """The `enrichments` table, keyed by (CRM, contact)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def last_person(self, crm: str, contact_id: str) -> Person | None:
        """The enricher's latest answer about a contact, however old (None: never asked, or not known)."""
        return await self.store.read(self._last_person, crm, contact_id)

    def _last_person(self, crm: str, contact_id: str) -> Person | None:
        row = self.store.query_one(
            "SELECT person FROM enrichments WHERE crm = ? AND contact_id = ? AND person IS NOT NULL", (crm, contact_id)
        )
        return _person(row["person"]) if row else None

    async def fresh(self, crm: str, contact_ids: Sequence[str], since: datetime) -> dict[str, Person | None]:
        """Answers given since `since`, by contact (None: asked, and the enricher did not know the person)."""
        return await self.store.run(self._fresh, crm, list(contact_ids), iso(since))

    def _fresh(self, crm: str, contact_ids: list[str], since: str) -> dict[str, Person | None]:
        known: dict[str, Person | None] = {}
        for start in range(0, len(contact_ids), 500):
            chunk = contact_ids[start : start + 500]
            rows = self.store.query(
                f"""
                SELECT contact_id, person FROM enrichments
                WHERE crm = ? AND person IS NOT NULL AND enriched_at >= ?
                AND contact_id IN ({", ".join("?" for _ in chunk)})
                """,
                [crm, since, *chunk],
            )
            for row in rows:
                known[row["contact_id"]] = _person(row["person"])
        return known

    async def remember(self, crm: str, run_id: str, answers: Sequence[Answer]) -> None:
        """Keep the enricher's answers (clearing what an earlier run made of them)."""
        await self.store.run(self._remember, crm, run_id, list(answers))

    def _remember(self, crm: str, run_id: str, answers: list[Answer]) -> None:
        now = iso(utcnow())
        with self.store.transaction() as conn:
            conn.executemany(
                """
                INSERT INTO enrichments (crm, contact_id, status, person, error, run_id, enriched_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (crm, contact_id) DO UPDATE SET status = excluded.status, person = excluded.person,
                    error = excluded.error, run_id = excluded.run_id, enriched_at = excluded.enriched_at,
                    changes = NULL, score = NULL, finished_at = NULL
                """,
                [
                    (
                        crm,
                        a.contact_id,
                        "failed" if a.error else "enriched",
                        None if a.error else dumps(a.person.model_dump() if a.person else None),
                        a.error,
                        run_id,
                        now,
                    )
                    for a in answers
                ],
            )

    async def finish(self, crm: str, run_id: str, finished: Sequence[Finished]) -> None:
        """Record what became of contacts already in the ledger."""
        await self.store.run(self._finish, crm, run_id, list(finished))

    def _finish(self, crm: str, run_id: str, finished: list[Finished]) -> None:
        now = iso(utcnow())
        with self.store.transaction() as conn:
            conn.executemany(
                """
                UPDATE enrichments SET status = ?, changes = ?, score = ?, error = ?, run_id = ?, finished_at = ?
                WHERE crm = ? AND contact_id = ?
                """,
                [(f.status, dumps(f.changes), f.score, f.error, run_id, now, crm, f.contact_id) for f in finished],
            )
