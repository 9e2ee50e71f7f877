"""The composite server's warehouse tools: named metrics, and read-only SQL that refuses every write, DDL,
multi-statement and escape attempt in a corpus while running the reads, within bounds of time and memory."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import fakesnow
import pytest
from mcp import Client

from sophia_mcp.servers.composite import create_server
from sophia_mcp.store.database import Store
from sophia_mcp.workflows import analytics
from tests.support.results import structured, text_of
from tests.support.settings import SNOWFLAKE, make_settings
from tests.support.store_file import newest_call_ids

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

# Issue 14: a name is a CTE only inside the query its WITH heads, a function runs only if it is on the list, and
# a table is named only one way. Every one of these reads (or tries to read) something off the list.
ESCAPES = [
    # the tester's own: a CTE named like a table, then the table itself outside the CTE's scope
    "SELECT * FROM (WITH outbox AS (SELECT 1 AS x) SELECT x FROM outbox) a, outbox o",
    "SELECT * FROM (WITH sqlite_master AS (SELECT 1 AS x) SELECT x FROM sqlite_master) a, sqlite_master m",
    "SELECT * FROM (WITH workflow_runs AS (SELECT 1 AS x) SELECT x FROM workflow_runs) a, workflow_runs w",
    "SELECT * FROM (WITH enrichments AS (SELECT 1 AS x) SELECT x FROM enrichments) a, enrichments e",
    # scopes: nested CTEs, siblings, subqueries in every clause, set operations
    "WITH a AS (WITH outbox AS (SELECT 1 AS x) SELECT x FROM outbox) SELECT * FROM a, outbox",
    "WITH a AS (SELECT * FROM outbox), outbox AS (SELECT 1 AS x) SELECT * FROM a",
    "WITH outbox AS (SELECT * FROM outbox) SELECT * FROM outbox",
    "WITH RECURSIVE outbox(k) AS (SELECT key FROM outbox UNION ALL SELECT k FROM outbox WHERE 0) SELECT * FROM outbox",
    "SELECT * FROM clients WHERE id IN (WITH outbox AS (SELECT id FROM clients) SELECT id FROM outbox) "
    "OR id IN (SELECT payload FROM outbox)",
    "SELECT (WITH outbox AS (SELECT 1 AS x) SELECT x FROM outbox), (SELECT group_concat(payload) FROM outbox) "
    "FROM clients",
    "SELECT name FROM clients ORDER BY (WITH outbox AS (SELECT 1 AS x) SELECT x FROM outbox), "
    "(SELECT count(*) FROM outbox)",
    "SELECT segment FROM clients GROUP BY segment HAVING (SELECT count(*) FROM enrichments) > 0",
    "SELECT c.name FROM clients c JOIN calls k ON k.client_id = c.id AND EXISTS (SELECT 1 FROM outbox)",
    "SELECT x FROM (WITH outbox AS (SELECT 1 AS x) SELECT x FROM outbox) UNION SELECT key FROM outbox",
    "SELECT name, row_number() OVER (ORDER BY (SELECT count(*) FROM outbox)) FROM clients",
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM enrichments) THEN 1 END",
    "SELECT * FROM (VALUES ((SELECT key FROM outbox)))",
    "SELECT * FROM clients NATURAL JOIN outbox",
    "SELECT clients.* FROM outbox AS clients",
    "WITH c AS (SELECT 1) SELECT * FROM outbox AS c",
    "SELECT * FROM (SELECT * FROM clients) AS outbox, outbox",
    # names: quoted, cased, schema-qualified, the schema tables
    'SELECT * FROM (WITH "OutBox" AS (SELECT 1 AS x) SELECT x FROM "OutBox") a, OUTBOX o',
    'SELECT * FROM "outbox"',
    "SELECT * FROM [outbox]",
    "SELECT * FROM `outbox`",
    "SELECT * FROM OutBox",
    "SELECT * FROM main.outbox",
    'SELECT * FROM "main"."clients"',
    "SELECT * FROM temp.sqlite_temp_master",
    "SELECT * FROM sqlite_temp_master",
    "SELECT * FROM main.sqlite_master",
    "SELECT * FROM clients WHERE name IN (SELECT name FROM sqlite_schema)",
    "SELECT * FROM sqlite_sequence",
    # `x IN table` names a table with no FROM
    "SELECT 1 FROM clients WHERE id IN outbox",
    "SELECT 'x' IN main.outbox",
    # table-valued and pragma functions
    "SELECT * FROM pragma_table_info('outbox')",
    "SELECT (SELECT group_concat(name) FROM pragma_table_list)",
    "SELECT * FROM clients WHERE 'outbox' IN (SELECT name FROM pragma_table_list())",
    "SELECT * FROM json_tree('[1]')",
    # functions off the list: escapes, the connection's state, and large values from small input
    "SELECT LOAD_EXTENSION('/tmp/evil.so')",
    "SELECT \"load_extension\"('/tmp/evil.so')",
    "SELECT sqlite_version()",
    "SELECT sqlite_offset(name) FROM clients",
    "SELECT changes(), last_insert_rowid()",
    "SELECT zeroblob(1000000000)",
    "SELECT length(randomblob(1000000000))",
    "SELECT printf('%.*c', 1000000000, 'x')",
    "SELECT format('%1000000000d', 1)",
    "SELECT hex(randomblob(100000000))",
    "SELECT char(65, 66)",
    "SELECT likelihood(1, 0.5)",
    # nesting past what can be checked
    "SELECT " + "(" * 300 + "1" + ")" * 300,
]

SECRETS = ("SECRET-OUTBOX", "SECRET-PERSON", "SECRET-INPUT")

# Analytics over the allowed tables that must run: joins, CTEs, windows, aggregates, CASE, dates, JSON.
ANALYTICS = [
    "SELECT c.segment, count(DISTINCT k.id) AS calls, avg(k.duration_s) AS avg_s FROM clients c "
    "LEFT JOIN calls k ON k.client_id = c.id GROUP BY c.segment HAVING count(*) > 0 ORDER BY calls DESC",
    "WITH recent AS (SELECT * FROM calls WHERE started >= date('now', '-3650 days')) "
    "SELECT client_id, count(*) AS n FROM recent GROUP BY client_id ORDER BY n DESC",
    "WITH a AS (SELECT id, arr FROM clients), b AS (SELECT * FROM a WHERE arr > 0) "
    "SELECT count(*) FROM b JOIN a ON a.id = b.id",
    "WITH clients AS (SELECT * FROM clients WHERE arr > 0) SELECT count(*) FROM clients",
    "WITH outer_q AS (WITH inner_q AS (SELECT id FROM clients) SELECT id FROM inner_q) SELECT count(*) FROM outer_q",
    "WITH Big AS (SELECT name FROM clients) SELECT big.name FROM BIG ORDER BY 1",
    "WITH RECURSIVE days(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM days WHERE n < 30) "
    "SELECT date('now', '-' || n || ' days') AS day FROM days",
    "SELECT name, arr, rank() OVER (PARTITION BY segment ORDER BY arr DESC) AS r, "
    "sum(arr) OVER (ORDER BY arr ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM clients",
    "SELECT client_id, started, lag(started) OVER (PARTITION BY client_id ORDER BY started) AS previous, "
    "ntile(4) OVER (ORDER BY duration_s) AS quartile FROM calls",
    "SELECT CASE WHEN arr >= 100000 THEN 'large' WHEN arr >= 20000 THEN 'mid' ELSE 'small' END AS band, "
    "count(*) AS n, total(arr) AS arr FROM clients GROUP BY band",
    "SELECT strftime('%Y-%m', started) AS month, count(*) AS calls, round(avg(duration_s) / 60.0, 1) AS minutes "
    "FROM calls GROUP BY month ORDER BY month",
    "SELECT id, julianday('now') - julianday(started) AS age_days, datetime(started) AS at, unixepoch(started) "
    "FROM calls ORDER BY age_days LIMIT 5",
    "SELECT coalesce(segment, 'unknown'), ifnull(csm_name, '-'), iif(arr > 0, 'paying', 'free'), nullif(city, '') "
    "FROM clients",
    "SELECT upper(substr(name, 1, 1)) || lower(substr(name, 2)) AS n, length(name), instr(name, 'a'), "
    "replace(trim(name), ' ', '_') FROM clients WHERE name LIKE '%a%' OR name BETWEEN 'A' AND 'M'",
    "SELECT group_concat(name, ', ') FROM clients WHERE id IN (SELECT client_id FROM calls) "
    "AND EXISTS (SELECT 1 FROM contacts WHERE contacts.client_id = clients.id)",
    "SELECT id FROM clients UNION ALL SELECT client_id FROM calls EXCEPT SELECT client_id FROM client_health",
    "SELECT json_extract(raw, '$.metaData.id') AS gong_id, raw ->> '$.metaData.title' AS t, json_valid(raw) "
    "FROM calls LIMIT 3",
    "SELECT h.client_id, h.score, abs(h.score - 70), max(h.score, 50), min(h.score, 90) FROM client_health h "
    "JOIN client_health_history y ON y.client_id = h.client_id",
    'SELECT "Clients".name FROM "CLIENTS" JOIN Calls ON Calls.client_id = "Clients".id',
    "SELECT k.id FROM calls k JOIN clients c ON c.id = k.client_id AND c.arr > (SELECT avg(arr) FROM clients) "
    "ORDER BY (SELECT count(*) FROM call_mentions m WHERE m.call_id = k.id) DESC",
    "SELECT typeof(arr), CAST(arr AS INTEGER), sqrt(abs(arr)), power(2, 3), ln(2), log(100), sign(-1), "
    "ceil(1.2), floor(1.8), random() IS NOT NULL FROM clients",
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


def seed_secrets(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "sophia.db") as conn:
        conn.execute(
            "INSERT INTO outbox (key, kind, target, payload, created_at) VALUES ('k', 'slack', '#x', ?, 'now')",
            (SECRETS[0],),
        )
        conn.execute(
            "INSERT INTO enrichments (crm, contact_id, status, person, enriched_at) VALUES ('local', 'c', 'enriched', "
            "?, 'now')",
            (SECRETS[1],),
        )
        conn.execute(
            "INSERT INTO workflow_runs (id, workflow, input, status, started_at) "
            "VALUES ('r', 'w', ?, 'running', 'now')",
            (SECRETS[2],),
        )


def leaked(result: Any) -> list[str]:
    return [s for s in SECRETS if s in text_of(result) or s in str(result.structured_content)]


async def test_a_cte_name_does_not_open_the_table_outside_its_scope(data_dir: Path) -> None:
    seed_secrets(data_dir)
    async with Client(create_server(make_settings(data_dir))) as client:
        answers = [await client.call_tool("query_warehouse", {"sql": sql}) for sql in ESCAPES[:4]]
    assert [leaked(a) for a in answers] == [[]] * 4
    assert all(a.is_error and "is not open to queries" in text_of(a) for a in answers), [text_of(a) for a in answers]
    assert "a WITH names its CTEs only inside its own query" in text_of(answers[0])


async def test_every_escape_through_scopes_names_and_functions_is_refused(data_dir: Path) -> None:
    assert len(ESCAPES) >= 4 + 20
    seed_secrets(data_dir)
    before = fingerprint(data_dir)
    async with Client(create_server(make_settings(data_dir))) as client:
        answers = {sql: await client.call_tool("query_warehouse", {"sql": sql}) for sql in ESCAPES}
    ran = [sql for sql, result in answers.items() if not result.is_error]
    assert ran == [], f"these ran: {ran}"
    assert {sql: leaked(r) for sql, r in answers.items() if leaked(r)} == {}
    unexplained = {sql: text_of(r) for sql, r in answers.items() if "Error executing tool" in text_of(r)}
    assert unexplained == {}
    assert fingerprint(data_dir) == before
    refusal = text_of(answers["SELECT zeroblob(1000000000)"])
    assert "zeroblob() is not allowed" in refusal and "group_concat" in refusal and "strftime" in refusal


async def test_analytics_over_the_allowed_tables_runs(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        answers = {sql: await client.call_tool("query_warehouse", {"sql": sql}) for sql in ANALYTICS}
    failed = {sql: text_of(r) for sql, r in answers.items() if r.is_error}
    assert failed == {}
    by_sql = {sql: structured(r) for sql, r in answers.items()}
    assert len(by_sql[ANALYTICS[6]]["rows"]) == 31  # the recursive calendar
    assert by_sql[ANALYTICS[3]]["rows"][0][0] > 0  # a CTE may shadow an allowed table
    assert "cte_1" in by_sql[ANALYTICS[1]]["sql"]  # what ran names the CTE afresh


async def test_an_unterminated_string_answers_what_to_fix(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        answers = [
            await client.call_tool("query_warehouse", {"sql": sql})
            for sql in ("SELECT 'abc", "SELECT name FROM clients WHERE name = 'Acme", 'SELECT "name FROM clients')
        ]
        after = structured(await client.call_tool("query_warehouse", {"sql": "SELECT count(*) FROM clients"}))
    assert all(a.is_error and "does not parse as SQL" in text_of(a) for a in answers), [text_of(a) for a in answers]
    assert after["rows"][0][0] > 0


def crashes_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Records a crash leaves (a traceback on stderr, or an error): a refused query leaves none."""
    return [r.getMessage()[:200] for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_what_sqlite_refuses_answers_what_to_fix(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with Client(create_server(make_settings(data_dir))) as client:
        answer = await client.call_tool("query_warehouse", {"sql": "SELECT no_such_column FROM clients"})
    assert answer.is_error and "SQLite refused the query: no such column: no_such_column" in text_of(answer)
    assert "Error executing tool" not in text_of(answer) and crashes_logged(caplog) == []


async def test_what_snowflake_refuses_answers_in_its_own_words_briefly(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The query's line comes back quoted in Snowflake's message: a long one must not come back whole.
    long_line = "SELECT no_such_column FROM client_health WHERE " + " OR ".join(f"score = {i}" for i in range(400))
    with fakesnow.patch():
        async with Client(create_server(make_settings(data_dir, snowflake=SNOWFLAKE))) as client:
            answers = [await client.call_tool("query_warehouse", {"sql": sql})
                       for sql in ("SELECT no_such_column FROM client_health", long_line)]  # fmt: skip
    texts = [text_of(a) for a in answers]
    assert all(a.is_error for a in answers), texts
    assert all(t.startswith("Snowflake refused the query: ") and "NO_SUCH_COLUMN" in t for t in texts), texts
    assert not any(re.search(r"\d{6} \(\w+\):", t) for t in texts), texts  # the connector's error number and id
    assert len(long_line) > 5_000 and len(texts[1]) < 600, len(texts[1])
    assert "Error executing tool" not in " ".join(texts) and crashes_logged(caplog) == []


async def test_the_schema_lists_the_tables_a_query_may_read_and_their_columns(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:
        schema = structured(await client.call_tool("describe_warehouse", {}))
        resource = json.loads((await client.read_resource("sophia://warehouse/schema")).contents[0].text)  # type: ignore[union-attr]
        tools = {t.name: t for t in (await client.list_tools()).tools}
        [column] = [c for c in next(t for t in schema["tables"] if t["name"] == "client_health")["columns"]
                    if c["name"] == "score"]  # fmt: skip
        listed = ", ".join(
            f"{t['name']}.{c['name']}" for t in schema["tables"] for c in t["columns"] if t["name"] != "calls"
        )
        ran = await client.call_tool("query_warehouse", {"sql": f"SELECT {listed} FROM " + ", ".join(
            t["name"] for t in schema["tables"] if t["name"] != "calls") + " LIMIT 1"})  # fmt: skip
    assert [t["name"] for t in schema["tables"]] == list(analytics.ALLOWED_TABLES) and resource == schema
    assert schema["dialect"] == "sqlite" and column["type"] == "REAL" and "threshold" in column["note"]
    assert {m["name"] for m in schema["metrics"]} == set(analytics.METRICS)
    assert not ran.is_error, text_of(ran)  # every column listed is one a query may read
    assert "describe_warehouse" in (tools["query_warehouse"].description or "")
    assert tools["describe_warehouse"].annotations and tools["describe_warehouse"].annotations.read_only_hint
    with fakesnow.patch():
        async with Client(create_server(make_settings(data_dir, snowflake=SNOWFLAKE))) as client:
            snow = structured(await client.call_tool("describe_warehouse", {}))
    # Snowflake holds only what analysis writes there: the schema says so, rather than listing every table.
    assert [t["name"] for t in snow["tables"]] == ["call_analyses", "client_health", "client_health_history"]
    assert snow["dialect"] == "snowflake" and "SCORE" in [c["name"] for c in snow["tables"][1]["columns"]]


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


async def test_the_guard_resolves_names_as_snowflake_does(data_dir: Path) -> None:
    refused = [
        "SELECT * FROM (WITH outbox AS (SELECT 1 AS x) SELECT x FROM outbox) a, outbox o",
        'WITH "outbox" AS (SELECT 1 AS x) SELECT * FROM outbox',  # unquoted outbox is OUTBOX, not "outbox"
        'SELECT * FROM "client_health"',  # not CLIENT_HEALTH
        "SELECT * FROM IDENTIFIER('outbox')",
        "SELECT * FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))",
        "SELECT * FROM information_schema.tables",
        "SELECT REPEAT('x', 1000000000)",
        "SELECT SYSTEM$WAIT(10)",
        "SELECT 'abc",
    ]
    runs = [
        "SELECT client_id, IFF(score < 70, 'risk', 'ok') AS band, DATEADD(day, -7, CURRENT_DATE()) AS d "
        "FROM client_health",
        "WITH h AS (SELECT * FROM client_health) SELECT count(*), NVL(max(score), 0) FROM H",
    ]
    with fakesnow.patch():
        async with Client(create_server(make_settings(data_dir, snowflake=SNOWFLAKE))) as client:
            refusals = [await client.call_tool("query_warehouse", {"sql": sql}) for sql in refused]
            answers = [await client.call_tool("query_warehouse", {"sql": sql}) for sql in runs]
    assert [text_of(r) for r in refusals if not r.is_error or "Error executing tool" in text_of(r)] == []
    health, counted = (structured(a) for a in answers)
    assert health["columns"] == ["CLIENT_ID", "BAND", "D"] and counted["rows"] == [[0, 0]]
    assert "WITH cte_1 AS (SELECT * FROM CLIENT_HEALTH)" in counted["sql"]


async def test_a_query_on_its_own_connection_sees_what_was_just_written(data_dir: Path) -> None:
    async with Client(create_server(make_settings(data_dir))) as client:

        async def analysed() -> int:
            answer = await client.call_tool("query_warehouse", {"sql": "SELECT count(*) FROM call_analyses"})
            return int(structured(answer)["rows"][0][0])

        counts = [await analysed()]
        for call_id in newest_call_ids(data_dir, 2):
            structured(await client.call_tool("gong_analyze_call", {"call_id": call_id}))
            counts.append(await analysed())  # on the same, reused read-only connection
    assert counts == [counts[0], counts[0] + 1, counts[0] + 2]


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
