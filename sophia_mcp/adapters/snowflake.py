"""The `Warehouse` port on Snowflake, through snowflake-connector-python.

One connection, opened on first use and reused (a login costs about a second); the connector is synchronous, so
every statement runs in a worker thread, one at a time. Values are always bound (qmark style, server side), never
formatted into SQL. The tables are created if missing; upserts are MERGE statements. The analysis is kept as JSON
text beside the columns reports filter on.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import anyio.to_thread
import snowflake.connector

from sophia_mcp.adapters.warehouse_sql import (
    ALL_SCORES,
    ANALYSES_OF_CLIENT_SINCE,
    ANALYSIS_OF_CALL,
    HEALTH_OF_CLIENT,
    scores_of_clients,
)
from sophia_mcp.domain.results import CallAnalysis, HealthScore
from sophia_mcp.domain.times import utcnow
from sophia_mcp.domain.warehouse import Column, HealthRecord, QueryResult
from sophia_mcp.errors import ConfigurationError, InvalidInput, ServiceUnavailable
from sophia_mcp.settings import SnowflakeSettings

TABLES = [
    """CREATE TABLE IF NOT EXISTS CALL_ANALYSES (
        CALL_ID VARCHAR PRIMARY KEY, CLIENT_ID VARCHAR, STARTED TIMESTAMP_TZ, ANALYST VARCHAR,
        EXTERNAL_SENTIMENT FLOAT, INTERNAL_RATIO FLOAT, ANALYSIS VARCHAR, ANALYZED_AT TIMESTAMP_TZ)""",
    """CREATE TABLE IF NOT EXISTS CLIENT_HEALTH (
        CLIENT_ID VARCHAR PRIMARY KEY, SCORE FLOAT, COMPONENTS VARCHAR, EXPLANATION VARCHAR, AS_OF TIMESTAMP_TZ,
        SOURCE_CALL_ID VARCHAR, RUN_ID VARCHAR, UPDATED_AT TIMESTAMP_TZ)""",
    """CREATE TABLE IF NOT EXISTS CLIENT_HEALTH_HISTORY (
        CLIENT_ID VARCHAR, SCORE FLOAT, COMPONENTS VARCHAR, EXPLANATION VARCHAR, AS_OF TIMESTAMP_TZ,
        SOURCE_CALL_ID VARCHAR, RUN_ID VARCHAR, RECORDED_AT TIMESTAMP_TZ)""",
]

UPSERT_ANALYSIS = """
MERGE INTO CALL_ANALYSES t USING (
    SELECT ? AS CALL_ID, ? AS CLIENT_ID, CAST(? AS TIMESTAMP_TZ) AS STARTED, ? AS ANALYST,
           CAST(? AS FLOAT) AS EXTERNAL_SENTIMENT, CAST(? AS FLOAT) AS INTERNAL_RATIO, ? AS ANALYSIS,
           CAST(? AS TIMESTAMP_TZ) AS ANALYZED_AT) s
ON t.CALL_ID = s.CALL_ID
WHEN MATCHED THEN UPDATE SET CLIENT_ID = s.CLIENT_ID, STARTED = s.STARTED, ANALYST = s.ANALYST,
    EXTERNAL_SENTIMENT = s.EXTERNAL_SENTIMENT, INTERNAL_RATIO = s.INTERNAL_RATIO, ANALYSIS = s.ANALYSIS,
    ANALYZED_AT = s.ANALYZED_AT
WHEN NOT MATCHED THEN INSERT (CALL_ID, CLIENT_ID, STARTED, ANALYST, EXTERNAL_SENTIMENT, INTERNAL_RATIO, ANALYSIS,
    ANALYZED_AT) VALUES (s.CALL_ID, s.CLIENT_ID, s.STARTED, s.ANALYST, s.EXTERNAL_SENTIMENT, s.INTERNAL_RATIO,
    s.ANALYSIS, s.ANALYZED_AT)
"""

UPSERT_HEALTH = """
MERGE INTO CLIENT_HEALTH t USING (
    SELECT ? AS CLIENT_ID, CAST(? AS FLOAT) AS SCORE, ? AS COMPONENTS, ? AS EXPLANATION,
           CAST(? AS TIMESTAMP_TZ) AS AS_OF, ? AS SOURCE_CALL_ID, ? AS RUN_ID, CAST(? AS TIMESTAMP_TZ) AS UPDATED_AT) s
ON t.CLIENT_ID = s.CLIENT_ID
WHEN MATCHED THEN UPDATE SET SCORE = s.SCORE, COMPONENTS = s.COMPONENTS, EXPLANATION = s.EXPLANATION,
    AS_OF = s.AS_OF, SOURCE_CALL_ID = s.SOURCE_CALL_ID, RUN_ID = s.RUN_ID, UPDATED_AT = s.UPDATED_AT
WHEN NOT MATCHED THEN INSERT (CLIENT_ID, SCORE, COMPONENTS, EXPLANATION, AS_OF, SOURCE_CALL_ID, RUN_ID, UPDATED_AT)
    VALUES (s.CLIENT_ID, s.SCORE, s.COMPONENTS, s.EXPLANATION, s.AS_OF, s.SOURCE_CALL_ID, s.RUN_ID, s.UPDATED_AT)
"""


COLUMNS_OF_TABLES = (
    "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = CURRENT_SCHEMA() "
    "AND TABLE_NAME IN ({}) ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
REFUSAL_CHARS = 500  # Snowflake's message quotes the query's line: enough to point at the mistake, not an echo

# One row per client and source call, as in the local store: a re-analysis replaces its figures. A record without
# a source call matches none and is appended.
RECORD_HEALTH_HISTORY = """
MERGE INTO CLIENT_HEALTH_HISTORY t USING (
    SELECT ? AS CLIENT_ID, CAST(? AS FLOAT) AS SCORE, ? AS COMPONENTS, ? AS EXPLANATION,
           CAST(? AS TIMESTAMP_TZ) AS AS_OF, ? AS SOURCE_CALL_ID, ? AS RUN_ID, CAST(? AS TIMESTAMP_TZ) AS RECORDED_AT) s
ON t.CLIENT_ID = s.CLIENT_ID AND t.SOURCE_CALL_ID = s.SOURCE_CALL_ID
WHEN MATCHED THEN UPDATE SET SCORE = s.SCORE, COMPONENTS = s.COMPONENTS, EXPLANATION = s.EXPLANATION,
    AS_OF = s.AS_OF, RUN_ID = s.RUN_ID, RECORDED_AT = s.RECORDED_AT
WHEN NOT MATCHED THEN INSERT (CLIENT_ID, SCORE, COMPONENTS, EXPLANATION, AS_OF, SOURCE_CALL_ID, RUN_ID, RECORDED_AT)
    VALUES (s.CLIENT_ID, s.SCORE, s.COMPONENTS, s.EXPLANATION, s.AS_OF, s.SOURCE_CALL_ID, s.RUN_ID, s.RECORDED_AT)
"""

# Rows appended before the MERGE above, for the same client and source call: all but the newest go (at login).
DEDUPLICATE_HEALTH_HISTORY = """
DELETE FROM CLIENT_HEALTH_HISTORY h USING (
    SELECT CLIENT_ID, SOURCE_CALL_ID, MAX(RECORDED_AT) AS NEWEST FROM CLIENT_HEALTH_HISTORY
    WHERE SOURCE_CALL_ID IS NOT NULL GROUP BY CLIENT_ID, SOURCE_CALL_ID HAVING COUNT(*) > 1) d
WHERE h.CLIENT_ID = d.CLIENT_ID AND h.SOURCE_CALL_ID = d.SOURCE_CALL_ID AND h.RECORDED_AT < d.NEWEST
"""


def _ts(value: datetime) -> str:
    return value.isoformat()


class SnowflakeWarehouse:
    name = "snowflake"
    dialect = "snowflake"

    def __init__(self, settings: SnowflakeSettings) -> None:
        missing = [n for n in ("account", "user", "warehouse", "database") if not getattr(settings, n)]
        if settings.password is None and settings.private_key_file is None:
            missing.append("password or private_key_file")
        if missing:
            raise ConfigurationError(
                "The snowflake warehouse needs SOPHIA_SNOWFLAKE__"
                + ", SOPHIA_SNOWFLAKE__".join(m.upper().replace(" OR ", " or SOPHIA_SNOWFLAKE__") for m in missing)
            )
        self.settings = settings
        self._conn: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        if self._conn is None:
            s = self.settings
            options: dict[str, Any] = {
                "account": s.account,
                "user": s.user,
                "warehouse": s.warehouse,
                "database": s.database,
                "schema": s.schema_ or "PUBLIC",
                "role": s.role,
                "paramstyle": "qmark",
                "login_timeout": int(s.timeout_s),
                "network_timeout": int(s.timeout_s),
                "session_parameters": {
                    "QUERY_TAG": "sophia-mcp",
                    "STATEMENT_TIMEOUT_IN_SECONDS": s.query_timeout_s,
                },
            }
            if s.private_key_file is not None:
                options["private_key_file"] = str(s.private_key_file)
                options["authenticator"] = "SNOWFLAKE_JWT"
                if s.private_key_file_pwd is not None:
                    options["private_key_file_pwd"] = s.private_key_file_pwd.get_secret_value()
            else:
                assert s.password is not None
                options["password"] = s.password.get_secret_value()
            try:
                conn = snowflake.connector.connect(**{k: v for k, v in options.items() if v is not None})
                cursor = conn.cursor()
                if s.schema_:
                    cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{s.schema_.replace(chr(34), "")}"')
                    cursor.execute(f'USE SCHEMA "{s.schema_.replace(chr(34), "")}"')
                for ddl in TABLES:
                    cursor.execute(ddl)
                cursor.execute(DEDUPLICATE_HEALTH_HISTORY)
            except snowflake.connector.errors.Error as exc:
                raise ServiceUnavailable(f"Snowflake: {type(exc).__name__}: {exc.msg or exc}") from None
            self._conn = conn
        return self._conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                cursor = self._connect().cursor()
                cursor.execute(sql, params, timeout=self.settings.query_timeout_s)
                return list(cursor.fetchall()) if cursor.description else []
            except snowflake.connector.errors.Error as exc:
                raise ServiceUnavailable(f"Snowflake: {type(exc).__name__}: {exc.msg or exc}") from None

    def _read(
        self, sql: str, params: list[Any], timeout_s: float, max_rows: int | None, max_bytes: int | None
    ) -> QueryResult:
        with self._lock:
            try:
                cursor = self._connect().cursor()
                cursor.execute(sql, params, timeout=max(1, int(timeout_s)))
                columns = [d[0] for d in cursor.description or []]
                rows: list[list[Any]] = []
                size = 0
                # Up to the cap, never fetchall: what is read is bounded by rows and by bytes.
                while max_rows is None or len(rows) < max_rows:
                    batch = cursor.fetchmany(100 if max_rows is None else min(100, max_rows - len(rows)))
                    if not batch:
                        break
                    for row in batch:
                        size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
                        if max_bytes is not None and size > max_bytes:
                            raise InvalidInput(
                                f"The result passed {max_bytes // 1024} KB (SOPHIA_MAX_RESULT_KB); ask for fewer "
                                "rows (limit) or columns, or less of each long text (SUBSTR)"
                            )
                        rows.append(list(row))
                cursor.close()
                return QueryResult(columns=columns, rows=rows)
            except snowflake.connector.errors.ProgrammingError as exc:
                # raw_msg: Snowflake's own words, without the error number and query id the connector prefixes.
                said = (exc.raw_msg or exc.msg or str(exc)).strip()
                raise InvalidInput(f"Snowflake refused the query: {said[:REFUSAL_CHARS]}") from None
            except snowflake.connector.errors.Error as exc:
                raise ServiceUnavailable(f"Snowflake: {type(exc).__name__}: {exc.msg or exc}") from None

    async def read(
        self, sql: str, params: list[Any], timeout_s: float, max_rows: int | None = None, max_bytes: int | None = None
    ) -> QueryResult:
        return await anyio.to_thread.run_sync(self._read, sql, params, timeout_s, max_rows, max_bytes)

    async def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        return await anyio.to_thread.run_sync(self._run, sql, params)

    async def columns(self, tables: list[str]) -> dict[str, list[Column]]:
        wanted = {t.upper(): t for t in tables}
        rows = await self._query(COLUMNS_OF_TABLES.format(", ".join("?" * len(wanted))), *wanted)
        found: dict[str, list[Column]] = {}
        for table, name, type_ in rows:
            found.setdefault(wanted[str(table).upper()], []).append(Column(name=str(name), type=str(type_)))
        return {t: found[t] for t in tables if t in found}

    async def save_analysis(self, analysis: CallAnalysis) -> None:
        await self._query(
            UPSERT_ANALYSIS,
            analysis.call_id,
            analysis.client_id,
            _ts(analysis.started),
            analysis.analyst,
            analysis.sentiment.external,
            analysis.talk.internal_ratio,
            analysis.model_dump_json(),
            _ts(utcnow()),
        )

    async def get_analysis(self, call_id: str) -> CallAnalysis | None:
        rows = await self._query(ANALYSIS_OF_CALL, call_id)
        return CallAnalysis.model_validate_json(rows[0][0]) if rows else None

    async def client_analyses(self, client_id: str, since: datetime) -> list[CallAnalysis]:
        rows = await self._query(ANALYSES_OF_CLIENT_SINCE, client_id, _ts(since))
        return [CallAnalysis.model_validate_json(r[0]) for r in rows]

    async def record_health(self, record: HealthRecord) -> None:
        values = (
            record.client_id,
            record.health.score,
            json.dumps([c.model_dump() for c in record.health.components]),
            record.health.explanation,
            _ts(record.as_of),
            record.source_call_id,
            record.run_id,
            _ts(utcnow()),
        )
        await self._query(UPSERT_HEALTH, *values)
        await self._query(RECORD_HEALTH_HISTORY, *values)

    async def health_scores(self, client_ids: list[str]) -> dict[str, float]:
        scores: dict[str, float] = {}
        for start in range(0, len(client_ids), 500):
            chunk = client_ids[start : start + 500]
            rows = await self._query(scores_of_clients(len(chunk)), *chunk)
            scores.update((str(row[0]), float(row[1])) for row in rows)
        return scores

    async def all_health_scores(self) -> dict[str, float]:
        return {str(row[0]): float(row[1]) for row in await self._query(ALL_SCORES)}

    async def get_health(self, client_id: str) -> HealthRecord | None:
        rows = await self._query(HEALTH_OF_CLIENT, client_id)
        if not rows:
            return None
        client, score, components, explanation, as_of, source, run = rows[0]
        return HealthRecord(
            client_id=client,
            health=HealthScore(score=score, components=json.loads(components), explanation=explanation),
            as_of=as_of if isinstance(as_of, datetime) else datetime.fromisoformat(str(as_of)),
            source_call_id=source,
            run_id=run,
        )

    async def check(self) -> str:
        """Log in, create the tables if missing, and run a query, for `doctor`."""
        await self._query("SELECT 1")
        return f"Snowflake {self.settings.account} / {self.settings.database} answers"

    async def aclose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
