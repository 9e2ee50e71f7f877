"""The `Warehouse` port: where analyses and client health are kept for reporting (SQLite or Snowflake)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from sophia_mcp.domain.model import Model
from sophia_mcp.domain.results import HealthScore


class HealthRecord(Model):
    client_id: str
    health: HealthScore
    as_of: datetime
    source_call_id: str | None = None
    run_id: str | None = None


class QueryResult(Model):
    columns: list[str]
    rows: list[list[Any]]


class Column(Model):
    name: str = Field(description="As the warehouse spells it; unquoted names match it in any case.")
    type: str = Field(description="The warehouse's own type name (TEXT, REAL, TIMESTAMP_TZ, ...).")
