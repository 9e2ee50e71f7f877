"""The store's repository contract, on both engines: SQLite (the embedded default) and a real PostgreSQL server.
Every test in the first part runs twice (`engine`); the PostgreSQL half is marked `postgres`. The second part is
PostgreSQL's own faults: unreachable at start, gone mid-run, an older schema, replicas starting together."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import anyio
import psycopg
import psycopg_pool
import pytest
from mcp import Client
from pydantic import SecretStr

from sophia_mcp.app.backends import build_services
from sophia_mcp.cli.main import app
from sophia_mcp.demo.load import load_demo
from sophia_mcp.domain.crm import Client as CRMClient
from sophia_mcp.domain.inbox import Incoming
from sophia_mcp.domain.issues import IssueDraft, IssueQuery
from sophia_mcp.domain.schedules import ScheduleTiming
from sophia_mcp.domain.times import utcnow
from sophia_mcp.errors import InvalidInput, ServiceUnavailable
from sophia_mcp.servers.crm import create_server as create_crm
from sophia_mcp.store.churn import ChurnSignals
from sophia_mcp.store.clients import LocalCRM
from sophia_mcp.store.database import OutsideQueryFailed, Store
from sophia_mcp.store.engine import open_store
from sophia_mcp.store.inbox import Inbox
from sophia_mcp.store.issue_keys import IssueKeys
from sophia_mcp.store.migrations import MIGRATIONS
from sophia_mcp.store.outbox import CLAIM_LEASE, Outbox
from sophia_mcp.store.postgres import PostgresStore
from sophia_mcp.store.runs import RunLedger
from sophia_mcp.store.schedules import LEASE, Schedules
from sophia_mcp.store.tracker import LocalTracker
from tests.support.cli import runner
from tests.support.postgres import PASSWORD, PostgresServer, free_port
from tests.support.processes import env_for
from tests.support.results import structured
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio

Opener = Callable[[], Store]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the test's store (each call a new store object on the same data, as another replica would)."""
    if request.param == "sqlite":
        url = None
    else:
        url = SecretStr(request.getfixturevalue("postgres_url"))
    opened: list[Store] = []

    def open_one() -> Store:
        opened.append(store := open_store(tmp_path / "sophia.db", url))
        return store

    yield open_one
    for store in opened:
        store.close()


@pytest.fixture
def store(opener: Opener) -> Store:
    return opener()


# -- the contract, on both engines -----------------------------------------------------------------------------


async def test_an_outbox_entry_is_kept_once_per_key(store: Store) -> None:
    outbox = Outbox(store)
    first = await outbox.enqueue_many("alert", [("k1", "#cs", {"n": 1}), ("k2", "#cs", {"n": 2})])
    again = await outbox.enqueue_many("alert", [("k1", "#cs", {"n": 9}), ("k3", "#cs", {"n": 3})])
    assert [new for _, new in first] == [True, True]
    assert again[0] == (first[0][0], False)
    assert again[1][1] is True
    assert {e.key for e in await outbox.list()} == {"k1", "k2", "k3"}


def test_many_rows_written_in_one_call_land_as_one_row_at_a_time_would(store: Store) -> None:
    # PostgreSQL takes such a batch a few hundred rows to a statement; a key twice in one batch of upserts (which one
    # statement cannot take) still ends as SQLite's row-at-a-time leaves it, the last row winning.
    rows = [(f"k{i:04d}", "local", f"issue-{i}", f"CS-{i}", "2026-12-02T00:00:00.000Z") for i in range(1200)]
    upsert = """
        INSERT INTO issue_keys (key, backend, issue_id, identifier, created_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET issue_id = excluded.issue_id, identifier = excluded.identifier
    """
    with store.transaction() as conn:
        conn.executemany(upsert, rows)
        twice = [("k0001", "local", "issue-a", "CS-a", "x"), ("k0001", "local", "issue-b", "CS-b", "x")]
        conn.executemany(upsert, twice)
        conn.executemany(
            "INSERT INTO outbox (key, kind, target, payload, created_at) VALUES (?, 'alert', ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING",
            [("o1", "#cs", '{"n": "50% off"}', "t"), ("o1", "#cs", "{}", "t"), ("o2", "#cs", "{}", "t")],
        )
    assert store.query_one("SELECT count(*) FROM issue_keys")[0] == 1200
    assert tuple(store.query_one("SELECT issue_id, identifier FROM issue_keys WHERE key = 'k0001'")) == (
        "issue-b", "CS-b",
    )  # fmt: skip
    assert store.query_one("SELECT issue_id FROM issue_keys WHERE key = 'k1199'")[0] == "issue-1199"
    assert [tuple(r) for r in store.query("SELECT key, payload FROM outbox ORDER BY key")] == [
        ("o1", '{"n": "50% off"}'), ("o2", "{}"),
    ]  # fmt: skip


# Keys a text array's literal must quote (PostgreSQL binds a long IN list as one array), and commoner ones.
AWKWARD_KEYS = ["NULL", "null", "{", "}", '"', "\\", "a,b", "é ü", "", " x ", "'", "%s", "50% off", "a b"]


def test_a_long_in_list_finds_exactly_its_keys_whatever_they_hold(store: Store) -> None:
    keys = AWKWARD_KEYS + [f"k{i:03d}" for i in range(40)]
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO issue_keys (key, backend, issue_id, identifier, created_at) VALUES (?, 'local', ?, ?, 't')",
            [(key, f"issue-{i}", f"CS-{i}") for i, key in enumerate(keys)],
        )
    marks = ", ".join("?" * len(keys))
    found = store.query(f"SELECT key FROM issue_keys WHERE key IN ({marks}) AND backend = ?", [*keys, "local"])
    assert sorted(r[0] for r in found) == sorted(keys)
    wanted = keys[::2]
    found = store.query(f"SELECT key FROM issue_keys WHERE key NOT IN ({', '.join('?' * len(wanted))})", wanted)
    assert sorted(r[0] for r in found) == sorted(keys[1::2])
    # A list holding a NULL is bound value by value (in an array it would mean something else): it matches nothing.
    mixed = [*keys[:20], None, "absent"]
    found = store.query(f"SELECT key FROM issue_keys WHERE key IN ({', '.join('?' * len(mixed))})", mixed)
    assert sorted(r[0] for r in found) == sorted(keys[:20])
    numbers = store.query(
        f"SELECT issue_id FROM issue_keys WHERE length(identifier) IN ({', '.join('?' * 30)})", [4, *range(100, 129)]
    )
    assert sorted(r[0] for r in numbers) == sorted(f"issue-{i}" for i in range(10))


def test_values_read_row_by_row_are_each_row_s_in_order_on_either_engine(store: Store) -> None:
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO issue_keys (key, backend, issue_id, identifier, created_at) VALUES (?, 'local', ?, ?, 't')",
            [(key, f"issue-{i}", f"CS-{i}") for i, key in enumerate(AWKWARD_KEYS)],
        )
    ordered = "SELECT key, identifier FROM issue_keys ORDER BY issue_id"
    assert store.query_values(ordered) == [row[0] for row in store.query(ordered)]
    assert store.query_values(ordered, (), lambda row: (row["identifier"], row[0])) == [
        (row["identifier"], row["key"]) for row in store.query(ordered)
    ]
    assert store.query_values("SELECT key FROM issue_keys WHERE backend = ?", ["linear"]) == []


def test_a_plain_insert_of_many_rows_keeps_every_value_and_the_defaults(store: Store) -> None:
    # PostgreSQL takes it by COPY: tabs, newlines, backslashes and NULLs must come through as they went in.
    rows = [
        (f"{key}-{i}", "alert", "#cs", f'{{"text": "line\\n{key}\tend"}}', None if i % 2 else "run", "t")
        for i, key in enumerate(AWKWARD_KEYS * 5)
    ]
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO outbox (key, kind, target, payload, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
    got = store.query("SELECT key, kind, target, payload, run_id, created_at, status, attempts FROM outbox ORDER BY id")
    assert [tuple(r)[:6] for r in got] == rows
    assert {(r["status"], r["attempts"]) for r in got} == {("pending", 0)}
    with pytest.raises(Exception, match=r"(?i)unique"), store.transaction() as conn:
        conn.executemany(
            "INSERT INTO outbox (key, kind, target, payload, created_at) VALUES (?, 'alert', '#cs', '{}', 't')",
            [(f"new-{i}",) for i in range(60)] + [(rows[0][0],)],
        )
    assert store.query_one("SELECT count(*) FROM outbox")[0] == len(rows)  # the failed batch left nothing behind


async def test_outcomes_settled_together_each_keep_their_own_reference(store: Store) -> None:
    outbox = Outbox(store)
    ids = [i for i, _ in await outbox.enqueue_many("alert", [(f"k{i}", "#cs", {"n": i}) for i in range(450)])]
    await outbox.claim(ids)
    refs = [None, "r'{1,}\"", *AWKWARD_KEYS, *(f"ts-{i}" for i in range(450))]
    await outbox.settle([(i, refs[n], "refused" if n % 7 == 3 else None) for n, i in enumerate(ids)])
    entries = {e.id: e for e in await outbox.entries(ids)}
    for n, i in enumerate(ids):
        want = ("pending", None, "refused") if n % 7 == 3 else ("delivered", refs[n], None)
        assert (entries[i].status, entries[i].external_ref, entries[i].last_error) == want


async def test_two_senders_claiming_together_never_get_the_same_entry(opener: Opener) -> None:
    """Two replicas (two stores on the same data) claim the same 40 entries at once, each from its own thread."""
    first, second = opener(), opener()
    ids = [i for i, _ in await Outbox(first).enqueue_many("alert", [(f"k{n}", "#cs", {}) for n in range(40)])]
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(2)

    def claim(name: str, store: Store) -> None:
        start.wait()
        claimed[name] = []
        for n in range(0, 40, 4):  # in small batches, so the claims interleave
            claimed[name] += [e.id for e in Outbox(store)._claim(ids[n : n + 4])]

    threads = [threading.Thread(target=claim, args=(n, s)) for n, s in (("a", first), ("b", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(claimed["a"]) & set(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == sorted(ids)


@pytest.mark.postgres
async def test_a_claim_skips_an_entry_another_sender_holds_instead_of_waiting_for_it(postgres_url: str) -> None:
    """SKIP LOCKED: while another replica's transaction holds one entry, a claim takes the others at once."""
    store, other = PostgresStore(postgres_url), PostgresStore(postgres_url)
    try:
        ids = [i for i, _ in await Outbox(store).enqueue_many("alert", [(f"k{n}", "#cs", {}) for n in range(3)])]
        claimed: list[int] = []
        with other.transaction(shared=True) as conn:
            conn.execute("SELECT id FROM outbox WHERE id = ? FOR UPDATE", (ids[0],))
            claimer = threading.Thread(target=lambda: claimed.extend(e.id for e in Outbox(store)._claim(ids)))
            claimer.start()
            claimer.join(timeout=60)  # a claim that waited on the held row would still be waiting
            waited = claimer.is_alive()
        claimer.join()
        assert not waited
        assert claimed == ids[1:]
    finally:
        store.close()
        other.close()


async def test_an_outbox_claim_whose_sender_died_is_taken_over_after_its_lease(opener: Opener) -> None:
    dead, alive = opener(), opener()
    [(entry_id, _)] = await Outbox(dead).enqueue_many("alert", [("k", "#cs", {})])
    assert [e.id for e in await Outbox(dead).claim([entry_id])] == [entry_id]
    assert await Outbox(alive).claim([entry_id]) == []  # held
    # The sender died mid-send: its claim is older than the lease.
    alive.execute("UPDATE outbox SET claimed_at = ? WHERE id = ?", ((utcnow() - CLAIM_LEASE * 2).isoformat(), entry_id))
    [taken] = await Outbox(alive).claim([entry_id])
    assert (taken.id, taken.attempts) == (entry_id, 2)


async def test_the_inbox_keeps_an_event_once_and_hands_it_to_one_worker(opener: Opener) -> None:
    first, second = opener(), opener()
    event = Incoming(source="slack", event_id="Ev1", kind="slack.message", payload={"text": "hi"})
    assert await Inbox(first).record([event]) == [True]
    assert await Inbox(second).record([event]) == [False]
    lease = timedelta(minutes=1)
    [held] = await Inbox(first).claim("worker-a", 10, lease)
    assert await Inbox(second).claim("worker-b", 10, lease) == []
    # worker-a died: once its lease runs out the event goes to worker-b, one attempt more.
    [taken] = await Inbox(second).claim("worker-b", 10, lease, now=utcnow() + lease * 2)
    assert (taken.id, taken.attempts) == (held.id, 2)
    assert await Inbox(first).finish(held.id, "worker-a", {"ok": True}) is False  # its lease was lost
    assert await Inbox(second).finish(held.id, "worker-b", {"ok": True}) is True
    assert await Inbox(first).counts() == {"done": 1}


async def test_a_schedule_is_leased_to_one_scheduler_and_taken_over_when_it_dies(opener: Opener) -> None:
    first, second = opener(), opener()
    now = utcnow()
    await Schedules(first).sync([ScheduleTiming("monitor", "health_monitor", "every 5m", True, now)], now)
    [due] = await Schedules(first).claim_due("sched-a", now)
    assert due.name == "monitor"
    assert await Schedules(second).claim_due("sched-b", now) == []
    later = now + LEASE + timedelta(seconds=1)  # sched-a died without renewing
    assert [d.name for d in await Schedules(second).claim_due("sched-b", later)] == ["monitor"]
    run_id = await Schedules(second).begin("monitor", due.due_at, 0)
    await Schedules(second).end(run_id, "monitor", "sched-b", {"ok": 1}, None, later, later + timedelta(minutes=5))
    [run] = await Schedules(first).runs([run_id])
    assert run.status == "succeeded"


async def test_runs_are_recorded_and_measured(store: Store) -> None:
    runs = RunLedger(store)
    await runs.begin("r1", "health_monitor", None, {"x": 1})
    await runs.step_started("r1", 1, "score")
    await runs.finish("r1", "succeeded", {"scored": 3}, None)
    await runs.begin("r2", "health_monitor", None, {})
    await runs.finish("r2", "failed", None, "boom")
    record = await runs.get("r1")
    assert record is not None and record.status == "succeeded"
    [metrics] = await runs.metrics()
    assert (metrics.runs, metrics.succeeded, metrics.failed, metrics.running) == (2, 1, 1, 0)
    assert metrics.p50_ms is not None and metrics.p50_ms >= 0


async def test_a_start_reaps_the_dead_processes_of_its_own_host_never_those_of_another(store: Store) -> None:
    """Replicas on many hosts share a PostgreSQL store: a process id from another host names nothing here, so its
    run and its outbox claim are left to it (its claim is taken over only when its lease runs out)."""
    runs, outbox = RunLedger(store), Outbox(store)
    ended = await anyio.open_process(["true"])
    await ended.wait()  # a process id that no longer runs here
    await runs.begin("here", "health_monitor", None, {})
    await runs.begin("there", "health_monitor", None, {})
    [(mine, _), (theirs, _)] = await outbox.enqueue_many("alert", [("mine", "#cs", {}), ("theirs", "#cs", {})])
    await outbox.claim([mine, theirs])
    store.execute("UPDATE workflow_runs SET pid = ?", (ended.pid,))
    store.execute("UPDATE outbox SET claimed_by = ?", (ended.pid,))
    store.execute("UPDATE workflow_runs SET host = 'another-host' WHERE id = 'there'")
    store.execute("UPDATE outbox SET claimed_host = 'another-host' WHERE id = ?", (theirs,))
    assert runs.reap_interrupted() == 1
    here, there = await runs.get("here"), await runs.get("there")
    assert here is not None and here.status == "failed"
    assert there is not None and there.status == "running"
    states = await outbox.states(["mine", "theirs"])
    assert (states["mine"][1], states["theirs"][1]) == ("pending", "sending")


async def test_an_issue_key_is_claimed_once(opener: Opener) -> None:
    first, second = opener(), opener()
    assert await IssueKeys(first, "linear").claim("bug:1") == (None, False)
    assert await IssueKeys(second, "linear").claim("bug:1") == (None, True)


async def test_the_local_tracker_creates_once_and_finds_by_identifier_and_label_in_any_case(store: Store) -> None:
    tracker = LocalTracker(store)
    draft = IssueDraft(team="eng", title="Login fails", labels=["Bug"])
    issue, new = await tracker.create(draft, "key-1")
    again, new_again = await tracker.create(draft, "key-1")
    assert (new, new_again, again.id) == (True, False, issue.id)
    assert (await tracker.get(issue.identifier.lower())).id == issue.id
    page = await tracker.search(IssueQuery(labels=["bug"], team="ENG"))
    assert [i.id for i in page.issues] == [issue.id]


async def test_the_clients_a_question_is_read_against_are_each_client_s_id_and_name_as_saved_now(store: Store) -> None:
    crm = LocalCRM(store)
    with store.transaction() as conn:
        crm.save_clients(conn, [CRMClient(id="2", name="Summit Peak Rentals"), CRMClient(id="1", name="Acme")])
    first = await crm.ids_and_names()
    with store.transaction() as conn:
        crm.save_clients(conn, [CRMClient(id="2", name="Granite Peak Rentals")])
    assert first == [("1", "Acme"), ("2", "Summit Peak Rentals")]
    assert await crm.ids_and_names() == [("1", "Acme"), ("2", "Granite Peak Rentals")]


# -- PostgreSQL's own faults ---------------------------------------------------------------------------------


def test_a_write_slipped_into_an_outside_query_is_refused_by_the_engine(store: Store) -> None:
    """A model's SQL runs on a reader that cannot write (SQLite's `mode=ro`, PostgreSQL's READ ONLY transaction),
    whatever got past the SQL guard."""
    with pytest.raises((sqlite3.Error, OutsideQueryFailed), match=r"read-only|readonly"):
        with store.untrusted_reader(5, 1 << 20) as conn:
            conn.execute("CREATE TABLE smuggled (x TEXT)")
    assert store.query("SELECT count(*) AS n FROM clients")[0]["n"] == 0


@pytest.mark.postgres
def test_an_outside_query_on_postgresql_runs_in_a_read_only_transaction_with_its_time(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        with store.untrusted_reader(1.5, 1 << 20) as conn:
            row = conn.execute(
                "SELECT current_setting('transaction_read_only') AS ro, current_setting('statement_timeout') AS t"
            ).fetchone()
        assert row is not None and (row["ro"], row["t"]) == ("on", "1500ms")
    finally:
        store.close()


FOREVER = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"


def test_a_read_given_a_time_answers_within_it_and_is_stopped_past_it(store: Store) -> None:
    """`query_within` (a full-text search's budget): inside its time the read's own columns and rows, past it None,
    and no time limit of its own left on the connection for whatever reads next."""
    for _ in range(3):  # a pooled connection is handed out again
        answer = store.query_within(5, "SELECT 7 AS n, ? AS word", ["seven"])
        assert answer is not None and (answer[0], [tuple(row) for row in answer[1]]) == (["n", "word"], [(7, "seven")])
        assert store.query_within(0.2, FOREVER) is None
    if store.dialect == "postgresql":
        assert [row["t"] for row in store.query("SELECT current_setting('statement_timeout') AS t")] == ["0"]


def stopped_outside_query(store: Store, seconds: float, sql: str = FOREVER) -> str:
    """Run `sql` on an outside reader with `seconds` to run: "stopped" if the engine stopped it, else its rows."""
    try:
        with store.untrusted_reader(seconds, 1 << 20) as conn:
            return repr([tuple(row) for row in conn.execute(sql).fetchall()])
    except sqlite3.OperationalError as exc:
        return "stopped" if "interrupt" in str(exc) else f"failed: {exc}"
    except OutsideQueryFailed as exc:
        return "stopped" if exc.stopped else f"failed: {exc}"


def test_runaway_outside_queries_running_together_are_each_stopped_at_their_own_time(store: Store) -> None:
    """A query with a short time is stopped at it while another with a longer one still runs (one watchdog serves
    every statement, asleep until the earliest deadline), the longer one is stopped at its own, and the readers
    they leave behind run the next query unharmed."""
    answers: dict[str, str] = {}
    longer = threading.Thread(target=lambda: answers.update(longer=stopped_outside_query(store, 3)))
    longer.start()
    try:
        answers["shorter"] = stopped_outside_query(store, 0.3)
        longer_running = longer.is_alive()
    finally:
        longer.join(60)
    after = [stopped_outside_query(store, 60, "SELECT count(*) AS n FROM clients") for _ in range(3)]
    assert answers == {"shorter": "stopped", "longer": "stopped"} and longer_running
    assert after == ["[(0,)]"] * 3


def test_a_url_of_another_database_is_refused_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        open_store(tmp_path / "x.db", SecretStr("mysql://user:hunter2@db/x"))
    assert "SOPHIA_STORE__URL" in str(caught.value) and "hunter2" not in str(caught.value)


def test_an_unreachable_database_at_start_names_the_setting_never_the_password() -> None:
    store = PostgresStore(f"postgresql://sophia:{PASSWORD}@127.0.0.1:{free_port()}/nothing")
    with pytest.raises(ServiceUnavailable) as caught:
        _ = store.schema_version
    message = str(caught.value)
    assert "SOPHIA_STORE__URL=postgresql://sophia:***@127.0.0.1" in message
    assert PASSWORD not in message


@pytest.mark.postgres
def test_a_database_gone_mid_run_is_a_clear_error_and_keeps_what_was_committed(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = PostgresStore(postgres_url)
    try:
        kept = anyio.run(Outbox(store).enqueue_many, "alert", [("kept", "#cs", {})])
        postgres_server.stop()
        try:
            with pytest.raises(ServiceUnavailable) as caught:
                anyio.run(Outbox(store).enqueue_many, "alert", [("lost", "#cs", {})])
            assert "SOPHIA_STORE__URL" in str(caught.value) and PASSWORD not in str(caught.value)
        finally:
            postgres_server.start()
        # The same store carries on once the database is back (its dead connections are replaced).
        assert anyio.run(Outbox(store).states, ["kept", "lost"]) == {"kept": (kept[0][0], "pending", None)}
    finally:
        store.close()


@pytest.mark.postgres
def test_a_run_ending_while_the_database_is_gone_is_recorded_once_it_is_back(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = PostgresStore(postgres_url)
    runs = RunLedger(store)
    try:
        anyio.run(runs.begin, "r1", "health_monitor", None, {})
        postgres_server.stop()
        try:
            anyio.run(runs.finish, "r1", "failed", None, "the database went away")  # owed, not raised
        finally:
            postgres_server.start()
        anyio.run(IssueKeys(store, "local").claim, "any-write")  # the next write that commits pays what is owed
        record = anyio.run(runs.get, "r1")
        assert record is not None and (record.status, record.error) == ("failed", "the database went away")
    finally:
        store.close()


@pytest.mark.postgres
def test_a_sound_connection_is_handed_out_without_a_trip_to_the_server(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[object] = []
    real_check = psycopg_pool.ConnectionPool.check_connection
    monkeypatch.setattr(psycopg_pool.ConnectionPool, "check_connection", lambda conn: trips.append(real_check(conn)))
    store = PostgresStore(postgres_url)
    try:
        for _ in range(5):
            assert store.query_one("SELECT 1 AS one")["one"] == 1
    finally:
        store.close()
    assert trips == []


@pytest.mark.postgres
def test_connections_the_server_closed_while_idle_are_replaced_before_they_are_used(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    try:
        assert store.query_one("SELECT 1 AS one")["one"] == 1
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
            assert ended and all(row[0] for row in ended)
            deadline = time.monotonic() + 10
            while admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone() != (0,):
                assert time.monotonic() < deadline
                time.sleep(0.02)
        # Every pooled connection is dead: each read is still answered, on a connection the pool made anew.
        for _ in range(3):
            assert store.query_one("SELECT 1 AS one")["one"] == 1
    finally:
        store.close()


@pytest.mark.postgres
def test_a_second_start_with_an_older_schema_migrates_once(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    assert store.schema_version == len(MIGRATIONS)
    # As if the last two migrations shipped after this database was made (they are idempotent, like every new one).
    store.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) - 2,))
    store.close()
    again = PostgresStore(postgres_url)
    try:
        assert again.schema_version == len(MIGRATIONS)
        assert again.query_one("SELECT count(*) AS n FROM schema_version")["n"] == 1
    finally:
        again.close()


# One replica starting: it opens the store (connecting and migrating it) and prints the schema version it finds.
REPLICA_START = (
    "import sys; from sophia_mcp.store.postgres import PostgresStore; print(PostgresStore(sys.argv[1]).schema_version)"
)


@pytest.mark.postgres
def test_replicas_starting_together_apply_the_migrations_once(postgres_url: str) -> None:
    """Four processes open a fresh database at once: each waits on the advisory lock, the first migrates, the
    others find nothing left to do."""
    replicas = [
        subprocess.Popen([sys.executable, "-c", REPLICA_START, postgres_url], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [replica.communicate(timeout=120)[0].strip() for replica in replicas]
    assert [r.returncode for r in replicas] == [0] * 4
    assert outputs == [str(len(MIGRATIONS))] * 4
    store = PostgresStore(postgres_url)
    try:
        # Applied once: the seed rows of migration 5 are there once, not once per replica.
        assert store.query_one("SELECT count(*) AS n FROM tracker_teams")["n"] == 3
        assert store.query_one("SELECT count(*) AS n FROM schema_version")["n"] == 1
    finally:
        store.close()


@pytest.mark.postgres
def test_doctor_checks_the_database_and_shows_its_url_without_the_password(tmp_path: Path, postgres_url: str) -> None:
    env = env_for(tmp_path / "data", COLUMNS="250", SOPHIA_STORE__URL=postgres_url)
    result = runner.invoke(app, ["doctor"], env=env)
    assert result.exit_code == 0, result.output
    assert f"schema version {len(MIGRATIONS)})" in result.output
    assert "Store PostgreSQL 1" in result.output and "at postgresql://sophia:***@127.0.0.1:" in result.output
    assert PASSWORD not in result.output


def test_doctor_names_the_setting_of_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://sophia:{PASSWORD}@127.0.0.1:{free_port()}/nothing"
    result = runner.invoke(app, ["doctor"], env=env_for(tmp_path / "data", COLUMNS="250", SOPHIA_STORE__URL=url))
    assert result.exit_code != 0
    assert "SOPHIA_STORE__URL=postgresql://sophia:***@127.0.0.1" in result.output
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output


@pytest.mark.postgres
async def test_the_demo_answers_the_same_on_both_engines(tmp_path: Path, postgres_url: str) -> None:
    """The demo loaded into SQLite and into PostgreSQL: the CRM server's searches through a client, and the churn
    model's signals, are the same on both."""
    day = date(2026, 11, 2)
    answers = []
    for engine, overrides in (("sqlite", {}), ("postgresql", {"store": {"url": postgres_url}})):
        settings = make_settings(tmp_path / engine, **overrides)
        services = build_services(settings)
        try:
            await load_demo(services, today=day)
            signals = await ChurnSignals(services.store).since(datetime(2026, 5, 1, tzinfo=UTC))
        finally:
            services.close()
        async with Client(create_crm(settings)) as client:
            owners = structured(await client.call_tool("search_contacts", {"query": "owner", "limit": 100}))
            named = structured(await client.call_tool("list_clients", {"query": "property", "limit": 100}))
        spans = sorted((c, round(a, 6), round(b, 6), None if d is None else round(d, 6)) for c, a, b, d in
                       signals.health_spans)  # fmt: skip
        answers.append(
            ([c["id"] for c in owners["contacts"]], [c["client"]["id"] for c in named["clients"]], spans,
             sorted(signals.mentions.items()), sorted(signals.last_call.items()))
        )  # fmt: skip
    sqlite_answer, postgres_answer = answers
    assert sqlite_answer[0] and sqlite_answer[1]
    assert postgres_answer == sqlite_answer
