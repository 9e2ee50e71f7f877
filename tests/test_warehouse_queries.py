"""The composite server's warehouse tools: named metrics, and read-only SQL that refuses every write, DDL,
multi-statement and escape attempt in a corpus while running the reads, within bounds of time and memory."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from mcp import Client

from sophia_mcp.servers.composite import create_server
from sophia_mcp.store import Store
from sophia_mcp.workflows import analytics
from tests.conftest import make_settings
from tests.mcp_helpers import newest_call_ids, structured, text_of

pytestmark = pytest.mark.anyio

REFUSED = [
    # writes
    "INSERT INTO clients (id, name, updated_at) VALUES ('x', 'x', 'x')",
    "INSERT OR REPLACE INTO clients (id, name, updated_at) VALUES ('x', 'x', 'x')",
    "REPLACE INTO clients (id, name, updated_at) VALUES ('x', 'x', 'x')",
    "UPDATE clients SET name = 'pwned'",
    "DELETE FROM clients",
    "DELETE FROM client_health WHERE 1 = 1",
    "INSERT INTO outbox (key) SELECT id FROM clients",
    # DDL and database commands
    "CREATE TABLE t (x INT)",
    "CREATE TABLE t AS SELECT * FROM clients",
    "CREATE INDEX i ON clients (name)",
    "CREATE VIEW v AS SELECT * FROM clients",
    "CREATE TRIGGER tr AFTER INSERT ON clients BEGIN DELETE FROM clients; END",
    "DROP TABLE clients",
    "DROP INDEX clients_name",
    "ALTER TABLE clients ADD COLUMN x TEXT",
    "ALTER TABLE clients RENAME TO c2",
    "TRUNCATE TABLE clients",
    "VACUUM",
    "REINDEX clients",
    "ANALYZE",
    "ATTACH DATABASE '/tmp/other.db' AS other",
    "DETACH DATABASE other",
    "PRAGMA writable_schema = 1",
    "PRAGMA query_only = 0",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s1",
    "EXPLAIN SELECT * FROM clients",
    # several statements
    "SELECT 1; SELECT 2",
    "SELECT * FROM clients; DROP TABLE clients",
    "SELECT * FROM clients; DELETE FROM clients; --",
    # injection and escapes
    "SELECT * FROM clients WHERE id = ''; DROP TABLE clients; --'",
    "SELECT * INTO backup FROM clients",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT readfile('/etc/passwd')",
    "SELECT writefile('/tmp/x', 'y')",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM sqlite_schema",
    "SELECT * FROM clients UNION SELECT name, sql, 1, 1, 1, 1, 1, 1, 1, 1, 1 FROM sqlite_master",
    "SELECT (SELECT group_concat(sql) FROM sqlite_master)",
    "SELECT * FROM pragma_table_info('clients')",
    "SELECT * FROM json_each('[1, 2]')",
    "SELECT * FROM main.clients",
    "SELECT * FROM outbox",
    "SELECT * FROM workflow_runs",
    "SELECT * FROM clients WHERE id IN (SELECT key FROM outbox)",
    "WITH x AS (SELECT * FROM vectors) SELECT * FROM x",
    # not SQL
    "",
    "   ;  ",
    "SELEC * FROM clients",
    "DROP",
]

READS = [
    ("SELECT count(*) AS n FROM clients", ["n"]),
    ("SELECT segment, count(*) AS n FROM clients GROUP BY segment ORDER BY n DESC", ["segment", "n"]),
    ("WITH big AS (SELECT * FROM clients WHERE arr > 0) SELECT name FROM big ORDER BY name", ["name"]),
    (
        "SELECT c.name, count(k.id) AS calls FROM clients c JOIN calls k ON k.client_id = c.id GROUP BY c.name",
        ["name", "calls"],
    ),
    ("SELECT id FROM clients UNION SELECT client_id FROM calls", ["id"]),
    ("SELECT name FROM clients WHERE name = 'a'' OR 1=1 --'", ["name"]),  # a quote inside a string stays a string
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def fingerprint(data_dir: Path) -> tuple[object, ...]:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        tables = conn.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in analytics.ALLOWED_TABLES]
        names = conn.execute("SELECT group_concat(name) FROM clients").fetchone()
    return tuple(tables), tuple(counts), names


async def test_every_write_ddl_and_escape_is_refused_and_nothing_changes(data_dir: Path) -> None:
    assert len(REFUSED) >= 40
    before = fingerprint(data_dir)
    async with Client(create_server(make_settings(data_dir))) as client:
        answers = {sql: await client.call_tool("query_warehouse", {"sql": sql}) for sql in REFUSED}
    ran = [sql for sql, result in answers.items() if not result.is_error]
    assert ran == [], f"these ran: {ran}"
    assert all("Traceback" not in text_of(r) for r in answers.values())
    assert fingerprint(data_dir) == before


async def test_what_sqlite_refuses_answers_what_to_fix(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        answer = await client.call_tool("query_warehouse", {"sql": "SELECT no_such_column FROM clients"})
    assert answer.is_error and "SQLite refused the query: no such column: no_such_column" in text_of(answer)


async def test_reads_run_capped_at_the_limit(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        results = [structured(await client.call_tool("query_warehouse", {"sql": sql})) for sql, _ in READS]
        capped = structured(await client.call_tool("query_warehouse", {"sql": "SELECT id FROM calls", "limit": 5}))
    for (_, columns), result in zip(READS, results, strict=True):
        assert result["columns"] == columns
    assert results[0]["rows"][0][0] > 0 and results[5]["rows"] == []
    assert len(capped["rows"]) == 5 and capped["truncated"]


async def test_a_query_that_runs_too_long_is_stopped(data_dir: Path) -> None:
    forever = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    async with Client(create_server(make_settings(data_dir, analytics={"timeout_s": 0.3}))) as client:
        result = await client.call_tool("query_warehouse", {"sql": forever})
        after = structured(await client.call_tool("query_warehouse", {"sql": "SELECT count(*) FROM clients"}))
    assert result.is_error and "ran past its 0.3 s" in text_of(result)
    assert after["rows"][0][0] > 0


def signalling_runs(monkeypatch: pytest.MonkeyPatch, marker: str) -> threading.Event:
    """An event set in the worker thread as it starts the store call whose arguments hold `marker`."""
    started = threading.Event()
    run = Store.run

    async def spy(self: Store, fn: Callable[..., Any], *args: Any) -> Any:
        if marker not in repr((fn, args)):
            return await run(self, fn, *args)

        def signalled(*inner: Any) -> Any:
            started.set()
            return fn(*inner)

        return await run(self, signalled, *args)

    monkeypatch.setattr(Store, "run", spy)
    return started


async def test_a_slow_query_is_interrupted_and_does_not_hold_up_a_write(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Work inside each row, not many rows: a progress handler counting steps let such a query run 18 s past 5 s.
    slow = (
        "WITH RECURSIVE r(n, s) AS (SELECT 1, 'x' UNION ALL SELECT n + 1, substr(s || s, 1, 100000) FROM r) "
        "SELECT count(*) FROM r WHERE instr(s, 'y') = 0 AND n > -424242"
    )
    started = signalling_runs(monkeypatch, "-424242")
    done: dict[str, Any] = {}
    async with Client(create_server(make_settings(data_dir, analytics={"timeout_s": 3}))) as client:

        async def query() -> None:
            done["query"] = await client.call_tool("query_warehouse", {"sql": slow})

        async with anyio.create_task_group() as group:
            group.start_soon(query)
            assert await anyio.to_thread.run_sync(started.wait, 60)
            sent = await client.call_tool("alerts_send_alert", {"text": "Acme at risk", "topic": "health"})
            running_when_sent = "query" not in done
    assert structured(sent)["entry"]["status"] in {"delivered", "pending"}
    assert running_when_sent, text_of(done["query"])
    assert done["query"].is_error and "ran past its 3 s and was stopped; narrow it" in text_of(done["query"])


async def test_a_memory_bomb_is_stopped_and_the_server_lives_on(data_dir: Path) -> None:
    doubling = (
        "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < 64000000) "
        "SELECT max(length(s)) FROM r"
    )
    text = "SELECT length(group_concat(a.raw || b.raw)) FROM calls a, calls b"  # ~0.5 GB of text, once
    async with Client(create_server(make_settings(data_dir))) as client:
        answers = [await client.call_tool("query_warehouse", {"sql": sql}) for sql in (doubling, text)]
        sent = structured(await client.call_tool("alerts_send_alert", {"text": "still here", "topic": "health"}))
        after = structured(await client.call_tool("query_warehouse", {"sql": "SELECT count(*) FROM calls"}))
    for answer in answers:
        assert answer.is_error and "built a text, blob or row over 256 KB" in text_of(answer), text_of(answer)
    assert sent["entry"]["id"] and after["rows"][0][0] > 0


async def test_sqlite_heap_limit_stops_many_large_values_at_once(data_dir: Path) -> None:
    # Values of 32 MB each may be built here; eleven of them at once pass the 256 MB SQLite may hold.
    many = (
        "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r WHERE length(s) < 30000000) "
        "SELECT " + ", ".join(f"s || '{i}'" for i in range(11)) + " FROM r WHERE length(s) > 30000000"
    )
    settings = make_settings(data_dir, analytics={"max_value_kb": 64 * 1024})
    async with Client(create_server(settings)) as client:
        answer = await client.call_tool("query_warehouse", {"sql": many})
        sent = structured(await client.call_tool("alerts_send_alert", {"text": "still here", "topic": "health"}))
    assert answer.is_error and "needed more memory than queries may use" in text_of(answer), text_of(answer)
    assert sent["entry"]["id"]


async def test_rows_stop_at_the_result_size(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir, max_result_kb=16))) as client:
        answer = await client.call_tool("query_warehouse", {"sql": "SELECT raw FROM calls", "limit": 200})
    assert answer.is_error and "The result passed 16 KB" in text_of(answer)


def structured_count(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        return int(conn.execute("SELECT count(*) FROM clients").fetchone()[0])


async def test_metrics_after_calls_are_analysed(data_dir: Path) -> None:
    settings = make_settings(data_dir, health={"threshold": 100})  # every analysed client is "at risk"
    async with Client(create_server(settings)) as client:
        for call_id in newest_call_ids(data_dir, 8):
            structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
        at_risk = structured(await client.call_tool("run_metric", {"name": "at_risk_clients"}))
        trend = structured(await client.call_tool("run_metric", {"name": "health_trend", "days": 3650}))
        revenue = structured(await client.call_tool("run_metric", {"name": "revenue_by_segment"}))
        mentions = structured(await client.call_tool("run_metric", {"name": "competitor_mentions", "days": 3650}))
        unknown = await client.call_tool("run_metric", {"name": "vibes"})
    assert at_risk["columns"][:2] == ["client_id", "name"] and at_risk["rows"]
    health = [r[at_risk["columns"].index("health")] for r in at_risk["rows"]]
    assert health == sorted(health) and all(h < 100 for h in health)
    assert trend["rows"] and trend["columns"] == ["day", "clients", "avg_health", "under_threshold"]
    assert revenue["columns"] == ["segment", "clients", "arr", "avg_health", "arr_at_risk"]
    assert sum(r[1] for r in revenue["rows"]) == structured_count(data_dir)
    assert mentions["columns"] == ["competitor", "mentions", "calls", "clients"]
    assert unknown.is_error and "name" in text_of(unknown)
