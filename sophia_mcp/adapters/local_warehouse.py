"""The `Warehouse` port on the local SQLite store."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from functools import partial
from typing import Any

from sophia_mcp.adapters.warehouse_sql import (
    ANALYSES_OF_CLIENT_SINCE,
    ANALYSIS_OF_CALL,
    APPEND_HEALTH_HISTORY,
    HEALTH_OF_CLIENT,
    scores_of_clients,
)
from sophia_mcp.analysis.results import CallAnalysis, HealthScore
from sophia_mcp.errors import InvalidInput
from sophia_mcp.ports.warehouse import HealthRecord, QueryResult
from sophia_mcp.store import Store, dumps, iso, parse_iso, utcnow


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


class LocalWarehouse:
    name = "local"
    dialect = "sqlite"

    def __init__(self, store: Store) -> None:
        self.store = store

    async def read(self, sql: str, params: list[Any], timeout_s: float) -> QueryResult:
        answer = await self.store.run(partial(self.store.query_within, timeout_s, sql, params, read_only=True))
        if answer is None:
            raise InvalidInput(
                f"The query ran past its {timeout_s:g} s; narrow it (a WHERE, fewer joins) or aggregate first"
            )
        columns, rows = answer
        return QueryResult(columns=columns, rows=[list(r) for r in rows])

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
            conn.execute(APPEND_HEALTH_HISTORY, values)

    async def record_health(self, record: HealthRecord) -> None:
        await self.store.run(self._record_health, record)

    async def health_scores(self, client_ids: list[str]) -> dict[str, float]:
        scores: dict[str, float] = {}
        for start in range(0, len(client_ids), 500):
            chunk = client_ids[start : start + 500]
            rows = await self.store.read(self.store.query, scores_of_clients(len(chunk)), chunk, keys=len(chunk))
            scores.update((row[0], float(row[1])) for row in rows)
        return scores

    async def get_health(self, client_id: str) -> HealthRecord | None:
        row = await self.store.read(self.store.query_one, HEALTH_OF_CLIENT, (client_id,))
        return _health_from_row(row) if row else None
