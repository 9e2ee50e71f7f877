"""The warehouse as evidence: named, parameterised metrics, and read-only SQL checked before it runs.

Metrics are written once in SQLite's dialect; sqlglot writes them out in the warehouse's (Snowflake's). A query
from a model is checked by `sql_guard` (one SELECT over the allowed tables, with the functions an analyst needs),
capped at a row limit and run read-only within the bounds of `settings.analytics` (time, value size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from pydantic import Field

from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.model import Model
from sophia_mcp.services import Services
from sophia_mcp.store import iso, utcnow

ALLOWED_TABLES = ("clients", "contacts", "calls", "call_analyses", "call_mentions", "client_health",
                  "client_health_history")  # fmt: skip
ROW_LIMIT = 200


class MetricArgs(Model):
    threshold: float | None = Field(default=None, ge=0, le=100, description="Health threshold; default the setting.")
    days: int = Field(default=90, ge=1, le=3650, description="How far back.")
    client_id: str | None = Field(default=None, max_length=100, description="One client only (where it applies).")


@dataclass(frozen=True)
class Metric:
    description: str
    sql: str  # SQLite dialect, `?` parameters
    params: Callable[[MetricArgs, float], list[Any]]


def _since(args: MetricArgs) -> str:
    return iso(utcnow() - timedelta(days=args.days))


METRICS: dict[str, Metric] = {
    "at_risk_clients": Metric(
        "Clients whose current health is under the threshold, lowest first, with segment, ARR and CSM.",
        """
        SELECT c.id AS client_id, c.name, c.segment, c.arr, c.csm_name, h.score AS health, h.as_of
        FROM client_health h JOIN clients c ON c.id = h.client_id
        WHERE h.score < ? ORDER BY h.score
        """,
        lambda a, t: [t],
    ),
    "client_health": Metric(
        "Every client with a health score, lowest first, with segment, ARR and CSM.",
        """
        SELECT c.id AS client_id, c.name, c.segment, c.arr, c.csm_name, h.score AS health, h.as_of
        FROM client_health h JOIN clients c ON c.id = h.client_id ORDER BY h.score
        """,
        lambda a, t: [],
    ),
    "health_trend": Metric(
        "Health by day over the last `days`: clients scored, average health, how many under the threshold "
        "(one client with `client_id`).",
        """
        SELECT DATE(as_of) AS day, COUNT(DISTINCT client_id) AS clients, AVG(score) AS avg_health,
            SUM(CASE WHEN score < ? THEN 1 ELSE 0 END) AS under_threshold
        FROM client_health_history WHERE as_of >= ? AND (? IS NULL OR client_id = ?)
        GROUP BY DATE(as_of) ORDER BY day
        """,
        lambda a, t: [t, _since(a), a.client_id, a.client_id],
    ),
    "revenue_by_segment": Metric(
        "ARR by segment: clients, ARR, average health and the ARR of clients under the threshold.",
        """
        SELECT COALESCE(c.segment, 'unknown') AS segment, COUNT(*) AS clients, SUM(c.arr) AS arr,
            AVG(h.score) AS avg_health, SUM(CASE WHEN h.score < ? THEN c.arr ELSE 0 END) AS arr_at_risk
        FROM clients c LEFT JOIN client_health h ON h.client_id = c.id
        GROUP BY COALESCE(c.segment, 'unknown') ORDER BY arr DESC
        """,
        lambda a, t: [t],
    ),
    "competitor_mentions": Metric(
        "Competitors named on calls in the last `days`: mentions, calls and clients.",
        """
        SELECT m.competitor, SUM(m.mentions) AS mentions, COUNT(*) AS calls, COUNT(DISTINCT k.client_id) AS clients
        FROM call_mentions m JOIN calls k ON k.id = m.call_id
        WHERE k.started >= ? AND (? IS NULL OR k.client_id = ?)
        GROUP BY m.competitor ORDER BY mentions DESC
        """,
        lambda a, t: [_since(a), a.client_id, a.client_id],
    ),
}


# The metrics `client_id` narrows to one client.
PER_CLIENT = ("health_trend", "competitor_mentions")


class TableResult(Model):
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool = Field(description="True when more rows matched than were returned.")
    sql: str = Field(description="What ran.")


async def _read(services: Services, sql: str, params: list[Any], limit: int) -> TableResult:
    settings = services.settings
    result = await services.warehouse.read(
        sql, params, settings.analytics.timeout_s, max_rows=limit + 1, max_bytes=settings.max_result_kb * 1024
    )
    return TableResult(columns=result.columns, rows=result.rows[:limit], truncated=len(result.rows) > limit, sql=sql)


@lru_cache(maxsize=64)
def _metric_sql(name: str, dialect: str, limit: int) -> str:
    """A metric's statement, checked and capped, in the warehouse's dialect (parsed once, not per call)."""
    from sophia_mcp.analysis.sql_guard import check_select, limited  # sqlglot: paid on first use, not at start

    return limited(check_select(METRICS[name].sql, ALLOWED_TABLES), limit, dialect)


@lru_cache(maxsize=8)
def _client_sql(dialect: str) -> str:
    from sophia_mcp.analysis.sql_guard import check_select, limited

    return limited(check_select("SELECT id FROM clients WHERE id = ?", ALLOWED_TABLES), 1, dialect)


async def run_metric(
    services: Services, name: str, args: MetricArgs | None = None, limit: int = ROW_LIMIT
) -> TableResult:
    """A named metric; one narrowed to a client the warehouse does not know is NotFound, not an empty table."""
    metric = METRICS.get(name)
    if metric is None:
        raise InvalidInput(f"No metric {name!r}; the metrics are {', '.join(METRICS)}")
    args = args or MetricArgs()
    if args.client_id is not None and name in PER_CLIENT:
        known = await _read(services, _client_sql(services.warehouse.dialect), [args.client_id], 1)
        if not known.rows:
            raise NotFound(f"No client {args.client_id!r} in the warehouse; list_clients gives client ids")
    threshold = args.threshold if args.threshold is not None else services.settings.health.threshold
    sql = _metric_sql(name, services.warehouse.dialect, limit)
    return await _read(services, sql, metric.params(args, threshold), limit)


async def query_warehouse(services: Services, sql: str, limit: int = ROW_LIMIT) -> TableResult:
    """A model's or a person's SELECT, checked, capped and run read-only with a timeout."""
    return await _read(services, _checked(sql, services.warehouse.dialect, limit), [], limit)


@lru_cache(maxsize=256)
def _checked(sql: str, dialect: str, limit: int) -> str:
    """A query's checked, capped statement; a query asked again (models repeat themselves) is not parsed again."""
    from sophia_mcp.analysis.sql_guard import check_select, limited

    return limited(check_select(sql, ALLOWED_TABLES, dialect), limit, dialect)
