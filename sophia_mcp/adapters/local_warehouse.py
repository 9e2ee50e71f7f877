"""The `Warehouse` port on the local store: its SQLite file, or its PostgreSQL database. Queries come in SQLite's
dialect on either (the local warehouse speaks one); on PostgreSQL sqlglot writes them out in its spelling."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from datetime import datetime
from functools import lru_cache
from typing import Any

from sophia_mcp.adapters.warehouse_sql import (
    ALL_SCORES,
    ANALYSES_OF_CLIENT_SINCE,
    ANALYSIS_OF_CALL,
    HEALTH_OF_CLIENT,
    scores_of_clients,
)
from sophia_mcp.domain.results import CallAnalysis, HealthScore
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.domain.warehouse import Column, HealthRecord, QueryResult
from sophia_mcp.errors import InvalidInput
from sophia_mcp.store.database import OutsideQueryFailed, Store, dumps

# One row per client and source call (a record without one is appended): a re-analysis replaces its figures.
RECORD_HEALTH_HISTORY = """
INSERT INTO client_health_history (client_id, score, components, explanation, as_of, source_call_id, run_id,
                                   recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (client_id, source_call_id) DO UPDATE SET
    score = excluded.score, components = excluded.components, explanation = excluded.explanation,
    as_of = excluded.as_of, run_id = excluded.run_id, recorded_at = excluded.recorded_at
"""


def _health_from_row(row: sqlite3.Row) -> HealthRecord:
    return HealthRecord(
        client_id=row["client_id"],
        health=HealthScore(
            score=row["score"], components=json.loads(row["components"]), explanation=row["explanation"]
        ),
        as_of=parse_iso(row["as_of"]),
        source_call_id=row["source_call_id"],
        run_id=row["run_id"],
    )


def _id_and_score(row: sqlite3.Row) -> tuple[str, float]:
    return row[0], float(row[1])


def _size(value: object) -> int:
    return len(value) if isinstance(value, str | bytes) else 8


# The columns of the tables asked for, as each engine lists them.
COLUMNS_OF = {
    "sqlite": "SELECT m.name AS tbl, p.name, p.type FROM sqlite_master m JOIN pragma_table_info(m.name) p "
    "WHERE m.type = 'table' AND lower(m.name) IN ({marks}) ORDER BY m.name, p.cid",
    "postgresql": "SELECT table_name AS tbl, column_name AS name, upper(data_type) AS type "
    "FROM information_schema.columns WHERE table_schema = current_schema() AND lower(table_name) IN ({marks}) "
    "ORDER BY table_name, ordinal_position",
}
# A `%s` placeholder outside quotes (sqlglot's PostgreSQL spelling of `?`), or a quoted text or name to step over.
_PG_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|%s")


@lru_cache(maxsize=256)
def in_postgres(sql: str) -> str:
    """A checked statement in SQLite's dialect, written out in PostgreSQL's (with `?` placeholders, as the store's
    connections take them)."""
    import sqlglot  # loaded already: the statement was checked with it

    written = sqlglot.transpile(sql, read="sqlite", write="postgres")[0]
    return _PG_PLACEHOLDER.sub(lambda m: "?" if m.group(0) == "%s" else m.group(0), written)


def _refusal(exc: sqlite3.Error | OutsideQueryFailed, timeout_s: float, max_value_bytes: int) -> InvalidInput:
    """What to tell the author of a query the store's engine stopped or refused."""
    name = "" if isinstance(exc, OutsideQueryFailed) else getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_INTERRUPT" or (isinstance(exc, OutsideQueryFailed) and exc.stopped):
        return InvalidInput(
            f"The query ran past its {timeout_s:g} s and was stopped; narrow it (a WHERE, fewer joins) or aggregate "
            "first"
        )
    if name == "SQLITE_TOOBIG":
        return InvalidInput(
            f"The query built a text, blob or row over {max_value_bytes // 1024} KB "
            "(SOPHIA_ANALYTICS__MAX_VALUE_KB) and was stopped; select less of it (substr, length) or aggregate"
        )
    if isinstance(exc, OutsideQueryFailed):
        return InvalidInput(str(exc))  # already in the engine's words
    return InvalidInput(f"SQLite refused the query: {str(exc)[:300]}")


class LocalWarehouse:
    name = "local"
    dialect = "sqlite"

    def __init__(self, store: Store, max_value_bytes: int) -> None:
        self.store = store
        self.max_value_bytes = max_value_bytes

    def _read(
        self, sql: str, params: list[Any], timeout_s: float, max_rows: int | None, max_bytes: int | None
    ) -> QueryResult:
        rows: list[list[Any]] = []
        size = 0
        if self.store.dialect == "postgresql":
            sql = in_postgres(sql)
        try:
            with self.store.untrusted_reader(timeout_s, self.max_value_bytes) as conn:
                with closing(conn.execute(sql, params)) as cursor:
                    columns = [d[0] for d in cursor.description or []]
                    # Row by row up to the cap, never fetchall: what is read is bounded by rows and by bytes.
                    while max_rows is None or len(rows) < max_rows:
                        batch = cursor.fetchmany(50 if max_rows is None else min(50, max_rows - len(rows)))
                        if not batch:
                            break
                        for row in batch:
                            size += sum(_size(v) for v in row)
                            if max_bytes is not None and size > max_bytes:
                                raise InvalidInput(
                                    f"The result passed {max_bytes // 1024} KB (SOPHIA_MAX_RESULT_KB); ask for "
                                    "fewer rows (limit) or columns, or less of each long text (substr)"
                                )
                            rows.append(list(row))
        except (sqlite3.Error, OutsideQueryFailed) as exc:
            raise _refusal(exc, timeout_s, self.max_value_bytes) from None
        except MemoryError:  # SQLite's hard heap limit, which bounds every query together
            raise InvalidInput(
                "The query needed more memory than queries may use; select fewer or shorter values, or aggregate"
            ) from None
        return QueryResult(columns=columns, rows=rows)

    async def read(
        self, sql: str, params: list[Any], timeout_s: float, max_rows: int | None = None, max_bytes: int | None = None
    ) -> QueryResult:
        return await self.store.run(self._read, sql, params, timeout_s, max_rows, max_bytes)

    def _save_analysis(self, analysis: CallAnalysis) -> None:
        mentions: dict[str, int] = {}
        for mention in analysis.competitor_mentions:
            mentions[mention.competitor] = mentions.get(mention.competitor, 0) + 1
        with self.store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO call_analyses (call_id, client_id, started, analyst, external_sentiment,
                                           internal_ratio, analysis, analyzed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (call_id) DO UPDATE SET
                    client_id = excluded.client_id, started = excluded.started, analyst = excluded.analyst,
                    external_sentiment = excluded.external_sentiment, internal_ratio = excluded.internal_ratio,
                    analysis = excluded.analysis, analyzed_at = excluded.analyzed_at
                """,
                (
                    analysis.call_id,
                    analysis.client_id,
                    iso(analysis.started),
                    analysis.analyst,
                    analysis.sentiment.external,
                    analysis.talk.internal_ratio,
                    analysis.model_dump_json(),
                    iso(utcnow()),
                ),
            )
            # The analyst's reading of competitor mentions supersedes the one made at import.
            conn.execute("DELETE FROM call_mentions WHERE call_id = ?", (analysis.call_id,))
            conn.executemany(
                "INSERT INTO call_mentions (call_id, competitor, mentions) VALUES (?, ?, ?)",
                [(analysis.call_id, name, n) for name, n in sorted(mentions.items())],
            )

    async def columns(self, tables: list[str]) -> dict[str, list[Column]]:
        wanted = {t.casefold(): t for t in tables}
        marks = ", ".join("?" * len(wanted))
        rows = await self.store.read(self.store.query, COLUMNS_OF[self.store.dialect].format(marks=marks), list(wanted))
        found: dict[str, list[Column]] = {}
        for row in rows:
            found.setdefault(wanted[row["tbl"].casefold()], []).append(Column(name=row["name"], type=row["type"]))
        return {t: found[t] for t in tables if t in found}

    async def save_analysis(self, analysis: CallAnalysis) -> None:
        await self.store.run(self._save_analysis, analysis)

    async def get_analysis(self, call_id: str) -> CallAnalysis | None:
        row = await self.store.read(self.store.query_one, ANALYSIS_OF_CALL, (call_id,))
        return CallAnalysis.model_validate_json(row["analysis"]) if row else None

    async def client_analyses(self, client_id: str, since: datetime) -> list[CallAnalysis]:
        rows = await self.store.run(self.store.query, ANALYSES_OF_CLIENT_SINCE, (client_id, iso(since)))
        return [CallAnalysis.model_validate_json(r["analysis"]) for r in rows]

    def _record_health(self, record: HealthRecord) -> None:
        now = iso(utcnow())
        values = (
            record.client_id,
            record.health.score,
            dumps([c.model_dump() for c in record.health.components]),
            record.health.explanation,
            iso(record.as_of),
            record.source_call_id,
            record.run_id,
            now,
        )
        with self.store.transaction() as conn:
            conn.execute(
                """
                INSERT INTO client_health (client_id, score, components, explanation, as_of, source_call_id,
                                           run_id, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (client_id) DO UPDATE SET
                    score = excluded.score, components = excluded.components,
                    explanation = excluded.explanation, as_of = excluded.as_of,
                    source_call_id = excluded.source_call_id, run_id = excluded.run_id,
                    updated_at = excluded.updated_at
                """,
                values,
            )
            conn.execute(RECORD_HEALTH_HISTORY, values)

    async def record_health(self, record: HealthRecord) -> None:
        await self.store.run(self._record_health, record)

    async def health_scores(self, client_ids: list[str]) -> dict[str, float]:
        scores: dict[str, float] = {}
        for start in range(0, len(client_ids), 500):
            chunk = client_ids[start : start + 500]
            rows = await self.store.read(self.store.query, scores_of_clients(len(chunk)), chunk, keys=len(chunk))
            scores.update((row[0], float(row[1])) for row in rows)
        return scores

    async def all_health_scores(self) -> dict[str, float]:
        return dict(await self.store.run(self.store.query_values, ALL_SCORES, (), _id_and_score))

    async def get_health(self, client_id: str) -> HealthRecord | None:
        row = await self.store.read(self.store.query_one, HEALTH_OF_CLIENT, (client_id,))
        return _health_from_row(row) if row else None
