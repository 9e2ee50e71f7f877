"""The `Warehouse` port: where analyses and client health are kept for reporting (SQLite or Snowflake)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sophia_mcp.domain.results import CallAnalysis
from sophia_mcp.domain.warehouse import Column, HealthRecord, QueryResult


class Warehouse(Protocol):
    dialect: str  # sqlglot's name for the SQL it speaks: "sqlite" or "snowflake"

    async def read(
        self, sql: str, params: list[Any], timeout_s: float, max_rows: int | None = None, max_bytes: int | None = None
    ) -> QueryResult:
        """Run one read-only statement (already checked) within `timeout_s`, reading at most `max_rows` rows;
        InvalidInput when it takes longer, when the rows read pass `max_bytes`, or when the warehouse refuses it."""
        ...

    async def columns(self, tables: list[str]) -> dict[str, list[Column]]:
        """The columns of each of `tables` the warehouse holds, in table order, keyed by the name as given
        (any case); a table it does not hold is left out."""
        ...

    async def save_analysis(self, analysis: CallAnalysis) -> None:
        """Insert or replace the analysis of one call."""
        ...

    async def get_analysis(self, call_id: str) -> CallAnalysis | None: ...

    async def client_analyses(self, client_id: str, since: datetime) -> list[CallAnalysis]:
        """Analyses of the client's calls that started at or after `since`, newest first."""
        ...

    async def record_health(self, record: HealthRecord) -> None:
        """Set the client's current health and keep it in the client's history: one row per client and source
        call, so the same source again replaces its row's figures (a record without a source is appended)."""
        ...

    async def get_health(self, client_id: str) -> HealthRecord | None: ...

    async def health_scores(self, client_ids: list[str]) -> dict[str, float]:
        """Current health scores of the clients that have one, by client id (one query for many clients)."""
        ...

    async def all_health_scores(self) -> dict[str, float]:
        """Every client's current health score, by client id, in one query (the health monitor reads them all)."""
        ...
