"""Reading and seeding the store with SQL, the way an operator would: sqlite3 on its file, or psycopg on its
PostgreSQL database. No product code. The helpers take a data dir (its SQLite file) or a `StoreSQL` (either)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest


class StoreSQL:
    """Statements on a test's store, written once for both engines with `?` placeholders: on the SQLite file under
    `data_dir`, or on the PostgreSQL database at `url` when one is given. Each write commits."""

    def __init__(self, data_dir: Path, url: str | None = None) -> None:
        self.data_dir = data_dir
        self.url = url
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = None

    @property
    def engine(self) -> str:
        return "sqlite" if self.url is None else "postgresql"

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row `sql` returns, as tuples."""
        if self.url is None:
            with closing(sqlite3.connect(self.data_dir / "sophia.db")) as conn:
                return [tuple(row) for row in conn.execute(sql, params)]
        return list(self._postgres().execute(_pg_spelling(sql), params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        """The first row `sql` returns (there must be one)."""
        found = self.rows(sql, params)
        assert found, f"no row for {sql}"
        return found[0]

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row `sql` returns."""
        return self.one(sql, params)[0]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement and commit it."""
        self.execute_many(sql, [params])

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each of `rows`, in one transaction."""
        if self.url is None:
            with closing(sqlite3.connect(self.data_dir / "sophia.db")) as conn, conn:
                conn.executemany(sql, rows)
            return
        conn = self._postgres()
        with conn.transaction(), conn.cursor() as cursor:
            cursor.executemany(_pg_spelling(sql), rows)

    def _postgres(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._pg is None:
            assert self.url is not None
            self._pg = psycopg.connect(self.url, autocommit=True)
        return self._pg

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None


def _pg_spelling(sql: str) -> str:
    # psycopg's placeholders are `%s`, and a literal `%` (a LIKE pattern) is written twice.
    return sql.replace("%", "%%").replace("?", "%s")


def _sql(store: Path | StoreSQL) -> StoreSQL:
    return store if isinstance(store, StoreSQL) else StoreSQL(store)


def newest_call_ids(store: Path | StoreSQL, n: int = 5) -> list[str]:
    """The ids of the `n` most recent calls in the store."""
    return [r[0] for r in _sql(store).rows("SELECT id FROM calls ORDER BY started DESC LIMIT ?", (n,))]


def outbox_rows(store: Path | StoreSQL) -> list[tuple[str, str]]:
    """Every outbox entry's key and status, oldest first."""
    return [(r[0], r[1]) for r in _sql(store).rows("SELECT key, status FROM outbox ORDER BY id")]


def set_health(store: Path | StoreSQL, scores: dict[str, float]) -> None:
    """Health as call analysis leaves it: some clients under the threshold (70), the rest above."""
    sql = _sql(store)
    ids = [r[0] for r in sql.rows("SELECT id FROM clients ORDER BY id")]
    # The first clients (by id) get the given scores, in order; the rest are healthy.
    given = dict(zip(ids, scores.values(), strict=False))
    sql.execute_many(
        """
        INSERT INTO client_health (client_id, score, components, explanation, as_of, updated_at)
        VALUES (?, ?, '[]', 'seeded', '2026-11-20T00:00:00Z', '2026-11-20T00:00:00Z')
        ON CONFLICT (client_id) DO UPDATE SET score = excluded.score, components = excluded.components,
            explanation = excluded.explanation, as_of = excluded.as_of, source_call_id = NULL, run_id = NULL,
            updated_at = excluded.updated_at
        """,
        [(client_id, given.get(client_id, 85.0)) for client_id in ids],
    )


# A test of a `demo_store` module that is about SQLite itself (its file, a trigger, a script of its own) runs on
# SQLite alone: `@sqlite_only` with a comment saying why.
sqlite_only = pytest.mark.parametrize("demo_store", ["sqlite"], indirect=True)
