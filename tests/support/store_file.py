"""Reading and seeding the store's own file with SQL, the way an operator with sqlite3 would: no product code."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def newest_call_ids(data_dir: Path, n: int = 5) -> list[str]:
    """The ids of the `n` most recent calls in the store."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return [r[0] for r in conn.execute("SELECT id FROM calls ORDER BY started DESC LIMIT ?", (n,))]


def outbox_rows(data_dir: Path) -> list[tuple[str, str]]:
    """Every outbox entry's key and status, oldest first."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT key, status FROM outbox ORDER BY id")]


def set_health(data_dir: Path, scores: dict[str, float]) -> None:
    """Health as call analysis leaves it: some clients under the threshold (70), the rest above."""
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM clients ORDER BY id")]
        # The first clients (by id) get the given scores, in order; the rest are healthy.
        given = dict(zip(ids, scores.values(), strict=False))
        for client_id in ids:
            score = given.get(client_id, 85.0)
            conn.execute(
                """
                INSERT OR REPLACE INTO client_health (client_id, score, components, explanation, as_of, updated_at)
                VALUES (?, ?, '[]', 'seeded', '2026-11-20T00:00:00Z', '2026-11-20T00:00:00Z')
                """,
                (client_id, score),
            )
