"""The warehouse as evidence: named, parameterised metrics, and read-only SQL checked before it runs.

Metrics are written once in SQLite's dialect; sqlglot writes them out in the warehouse's (Snowflake's). A query
from a model is checked by `sql_guard` (one SELECT over the allowed tables, with the functions an analyst needs),
capped at a row limit and run read-only within the bounds of `settings.analytics` (time, value size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from pydantic import Field

from sophia_mcp.adapters import warehouse_sql
from sophia_mcp.app.services import Services
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.errors import InvalidInput, NotFound

# The tables a query may read, what each holds, and a word on the columns whose meaning their name does not say.
TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "clients": ("The client companies (CRM accounts).", {
        "segment": "SMB, Mid-Market or Enterprise", "arr": "annual recurring revenue, USD",
        "csm_name": "the client's customer success manager",
    }),
    "contacts": ("People at the clients.", {
        "client_id": "clients.id", "lead_score": "0-100, from enrichment", "lead_grade": "A-D, from the lead score",
    }),
    "calls": ("Recorded calls (Gong).", {
        "started": "ISO 8601 UTC text (SQLite) or TIMESTAMP_TZ", "client_id": "clients.id",
        "raw": "the provider's JSON of the call (long: select parts of it)",
    }),
    "call_analyses": ("One analysis per analysed call.", {
        "client_id": "clients.id", "external_sentiment": "-1..1, the client side's mean sentiment",
        "internal_ratio": "0..1, our side's share of the talk time",
        "analysis": "JSON of the whole analysis: sentiment, risk factors, competitor mentions, talk",
    }),
    "call_mentions": ("Competitors named on each call.", {
        "competitor": "the competitor's configured name", "mentions": "sentences naming it on the call",
    }),
    "client_health": ("Each client's current health, as of its newest analysed call.", {
        "score": "0-100; under the health threshold a client is at risk",
        "components": "JSON: sentiment, risk, engagement and competition scores with weights",
        "source_call_id": "the newest analysed call the score is as of",
    }),
    "client_health_history": ("Each client's health as of each newest analysed call: one row per client and "
                              "source call.", {
        "score": "0-100", "as_of": "when the source call started", "source_call_id": "calls.id",
    }),
}  # fmt: skip
ALLOWED_TABLES = tuple(TABLES)
ROW_LIMIT = 200


class MetricArgs(Model):
    threshold: float | None = Field(default=None, ge=0, le=100, description="Health threshold; default the setting.")
    days: int = Field(default=90, ge=1, le=3650, description="How far back.")
    client_id: str | None = Field(default=None, max_length=100, description="One client only (where it applies).")
    since: datetime | None = Field(default=None, description="From when (instead of `days` back from now).")
    until: datetime | None = Field(default=None, description="Up to when, excluded; default now.")


@dataclass(frozen=True)
class Metric:
    description: str
    sql: str  # SQLite dialect, `?` parameters
    params: Callable[[MetricArgs, float], list[Any]]


def _since(args: MetricArgs) -> str:
    return iso(args.since or utcnow() - timedelta(days=args.days))


def _until(args: MetricArgs) -> str | None:
    return iso(args.until) if args.until else None


METRICS: dict[str, Metric] = {
    "at_risk_clients": Metric(
        "Clients whose current health is under the threshold, lowest first, with segment, ARR and CSM.",
        warehouse_sql.AT_RISK_CLIENTS,
        lambda a, t: [t, a.client_id, a.client_id],
    ),
    "client_health": Metric(
        "Every client with a health score (one client with `client_id`), lowest first, with segment, ARR and CSM.",
        warehouse_sql.CLIENT_HEALTH,
        lambda a, t: [a.client_id, a.client_id],
    ),
    "health_trend": Metric(
        "Health by day over the last `days`, newest day first: clients scored, average health, how many under the "
        "threshold (one client with `client_id`).",
        warehouse_sql.HEALTH_TREND,
        lambda a, t: [t, _since(a), _until(a), _until(a), a.client_id, a.client_id],
    ),
    "revenue_by_segment": Metric(
        "ARR by segment: clients, ARR, average health and the ARR of clients under the threshold.",
        warehouse_sql.REVENUE_BY_SEGMENT,
        lambda a, t: [t],
    ),
    "competitor_mentions": Metric(
        "Competitors named on calls in the last `days`: mentions, calls and clients.",
        warehouse_sql.COMPETITOR_MENTIONS,
        lambda a, t: [_since(a), _until(a), _until(a), a.client_id, a.client_id],
    ),
}


# The metrics `client_id` narrows to one client.
PER_CLIENT = ("health_trend", "competitor_mentions")


class ColumnInfo(Model):
    name: str
    type: str
    note: str | None = Field(default=None, description="What the column holds, where its name does not say.")


class TableInfo(Model):
    name: str
    description: str
    columns: list[ColumnInfo]


class MetricInfo(Model):
    name: str
    description: str


class WarehouseSchema(Model):
    dialect: Literal["sqlite", "snowflake"] = Field(description="The SQL query_warehouse takes.")
    tables: list[TableInfo] = Field(description="The tables a query may read that this warehouse holds.")
    metrics: list[MetricInfo] = Field(description="The named metrics run_metric runs.")
    row_limit: int = Field(description="The most rows a query returns.")
    timeout_s: float = Field(description="A query running longer is stopped.")


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


def _guarded(sql: str, limit: int, dialect: str, written_in: str = "sqlite") -> str:
    """`sql` (written in `written_in`) checked by the SQL guard and capped at `limit` rows, in `dialect`."""
    # sqlglot is the heaviest import of a server: it loads with the first statement checked, not at every start.
    from sophia_mcp.analysis.sql_guard import check_select, limited

    return limited(check_select(sql, ALLOWED_TABLES, written_in), limit, dialect)


@lru_cache(maxsize=64)
def _metric_sql(name: str, dialect: str, limit: int) -> str:
    """A metric's statement, checked and capped, in the warehouse's dialect (parsed once, not per call)."""
    return _guarded(METRICS[name].sql, limit, dialect)


@lru_cache(maxsize=8)
def _client_sql(dialect: str) -> str:
    return _guarded(warehouse_sql.CLIENT_BY_ID, 1, dialect)


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


async def describe_warehouse(services: Services) -> WarehouseSchema:
    """The tables a query may read, with their columns as the warehouse holds them, and the named metrics."""
    held = await services.warehouse.columns(list(TABLES))
    tables = [
        TableInfo(
            name=name, description=description,
            columns=[ColumnInfo(name=c.name, type=c.type, note=notes.get(c.name.casefold())) for c in held[name]],
        )
        for name, (description, notes) in TABLES.items()
        if name in held
    ]  # fmt: skip
    return WarehouseSchema(
        dialect="snowflake" if services.warehouse.dialect == "snowflake" else "sqlite",
        tables=tables,
        metrics=[MetricInfo(name=n, description=m.description) for n, m in METRICS.items()],
        row_limit=ROW_LIMIT,
        timeout_s=services.settings.analytics.timeout_s,
    )


async def query_warehouse(services: Services, sql: str, limit: int = ROW_LIMIT) -> TableResult:
    """A model's or a person's SELECT, checked, capped and run read-only with a timeout."""
    return await _read(services, _checked(sql, services.warehouse.dialect, limit), [], limit)


@lru_cache(maxsize=256)
def _checked(sql: str, dialect: str, limit: int) -> str:
    """A query's checked, capped statement; a query asked again (models repeat themselves) is not parsed again."""
    return _guarded(sql, limit, dialect, written_in=dialect)
