"""The embedded store: one SQLite file in WAL mode, shared by every server process and the CLI.

Several processes use the file at once (a client starts each server as its own process), so writes take
the write lock up front (`BEGIN IMMEDIATE`) and wait on a busy timeout instead of failing, and migrations
run inside such a transaction so two processes starting together apply each one exactly once.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from sophia_mcp.errors import DiskFull, ServiceUnavailable, SophiaError

T = TypeVar("T")

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
# SQLite's heap for the whole process once it serves SQL from outside (`untrusted_reader`): the backstop behind each
# connection's value limit. The store's own use is a few MB (a 2 MB page cache per connection), so only a query
# holding hundreds of MB reaches it; while one does, another statement's allocation may fail too (SQLITE_NOMEM:
# that statement fails and rolls back; the file stays sound).
UNTRUSTED_HEAP_BYTES = 256 * 1024 * 1024

# Each entry upgrades the schema by one version; never edit a shipped entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE clients (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        domain TEXT,
        industry TEXT,
        segment TEXT,
        city TEXT,
        units_managed INTEGER,
        arr REAL,
        csm_name TEXT,
        csm_email TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX clients_name ON clients (name COLLATE NOCASE);
    CREATE INDEX clients_domain ON clients (domain COLLATE NOCASE);

    CREATE TABLE contacts (
        id TEXT PRIMARY KEY,
        client_id TEXT REFERENCES clients (id),
        first_name TEXT,
        last_name TEXT,
        email TEXT,
        title TEXT,
        phone TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX contacts_client ON contacts (client_id);
    CREATE INDEX contacts_email ON contacts (email COLLATE NOCASE);

    CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        started TEXT NOT NULL,
        duration_s INTEGER NOT NULL,
        direction TEXT,
        scope TEXT,
        url TEXT,
        client_id TEXT REFERENCES clients (id),
        client_name TEXT,
        source TEXT NOT NULL,
        raw TEXT NOT NULL,
        imported_at TEXT NOT NULL
    );
    CREATE INDEX calls_started ON calls (started DESC, id DESC);
    CREATE INDEX calls_client ON calls (client_id, started DESC);

    CREATE TABLE call_parties (
        call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
        party_id TEXT NOT NULL,
        name TEXT,
        email TEXT,
        title TEXT,
        affiliation TEXT NOT NULL,
        speaker_id TEXT,
        user_id TEXT,
        PRIMARY KEY (call_id, party_id)
    );

    CREATE TABLE transcripts (
        call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
        monologues TEXT NOT NULL,
        sentence_count INTEGER NOT NULL,
        imported_at TEXT NOT NULL
    );

    CREATE TABLE call_mentions (
        call_id TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
        competitor TEXT NOT NULL,
        mentions INTEGER NOT NULL,
        PRIMARY KEY (call_id, competitor)
    );
    CREATE INDEX call_mentions_competitor ON call_mentions (competitor COLLATE NOCASE);

    CREATE TABLE call_analyses (
        call_id TEXT PRIMARY KEY REFERENCES calls (id) ON DELETE CASCADE,
        client_id TEXT,
        started TEXT NOT NULL,
        analyst TEXT NOT NULL,
        external_sentiment REAL,
        internal_ratio REAL,
        analysis TEXT NOT NULL,
        analyzed_at TEXT NOT NULL
    );
    CREATE INDEX call_analyses_client ON call_analyses (client_id, started DESC);

    CREATE TABLE client_health (
        client_id TEXT PRIMARY KEY,
        score REAL NOT NULL,
        components TEXT NOT NULL,
        explanation TEXT NOT NULL,
        as_of TEXT NOT NULL,
        source_call_id TEXT,
        run_id TEXT,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE client_health_history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL,
        score REAL NOT NULL,
        components TEXT NOT NULL,
        explanation TEXT NOT NULL,
        as_of TEXT NOT NULL,
        source_call_id TEXT,
        run_id TEXT,
        recorded_at TEXT NOT NULL
    );
    CREATE INDEX client_health_history_client ON client_health_history (client_id, recorded_at);

    CREATE TABLE workflow_runs (
        id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        subject TEXT,
        input TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        output TEXT,
        error TEXT,
        pid INTEGER,
        started_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX workflow_runs_workflow ON workflow_runs (workflow, started_at DESC);

    CREATE TABLE run_steps (
        run_id TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
        detail TEXT,
        error TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        duration_ms REAL,
        PRIMARY KEY (run_id, seq)
    );

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        external_ref TEXT,
        run_id TEXT,
        created_at TEXT NOT NULL,
        claimed_at TEXT,
        delivered_at TEXT
    );
    CREATE INDEX outbox_status ON outbox (status, id);
    """,
    # 2: what enrichment and the lead score add to a contact; firmographics; the enrichment ledger.
    """
    ALTER TABLE contacts ADD COLUMN city TEXT;
    ALTER TABLE contacts ADD COLUMN state TEXT;
    ALTER TABLE contacts ADD COLUMN country TEXT;
    ALTER TABLE contacts ADD COLUMN linkedin_url TEXT;
    ALTER TABLE contacts ADD COLUMN seniority TEXT;
    ALTER TABLE contacts ADD COLUMN lead_score REAL;
    ALTER TABLE contacts ADD COLUMN lead_grade TEXT;
    CREATE INDEX contacts_updated ON contacts (updated_at);

    CREATE TABLE firmographics (
        domain TEXT PRIMARY KEY COLLATE NOCASE,
        name TEXT,
        industry TEXT,
        employees INTEGER,
        units_managed INTEGER,
        annual_revenue REAL,
        city TEXT,
        state TEXT,
        country TEXT,
        founded_year INTEGER,
        linkedin_url TEXT,
        technologies TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE enrichments (
        crm TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('enriched', 'written', 'unchanged', 'failed')),
        person TEXT,
        changes TEXT,
        score TEXT,
        error TEXT,
        run_id TEXT,
        enriched_at TEXT NOT NULL,
        finished_at TEXT,
        PRIMARY KEY (crm, contact_id)
    );
    """,
    # 3: the local vector index (one row per vector) and the model that built it.
    """
    CREATE TABLE vector_model (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        model TEXT NOT NULL,
        dimension INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );

    CREATE TABLE vectors (
        id TEXT PRIMARY KEY,
        vector BLOB NOT NULL,
        metadata TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 4: the knowledge base: documents, their chunks, and a full-text index over the chunks.
    """
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        source TEXT NOT NULL,
        type TEXT NOT NULL,
        format TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        doc_date TEXT,
        content_hash TEXT NOT NULL,
        chars INTEGER NOT NULL,
        chunk_count INTEGER NOT NULL,
        embedding_model TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX documents_type ON documents (type, updated_at DESC);

    CREATE TABLE chunks (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        section TEXT NOT NULL,
        text TEXT NOT NULL,
        start_char INTEGER NOT NULL,
        end_char INTEGER NOT NULL,
        UNIQUE (document_id, seq)
    );

    CREATE VIRTUAL TABLE chunks_fts USING fts5(
        section, text, content = 'chunks', content_rowid = 'pk', tokenize = 'porter unicode61'
    );

    CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts (rowid, section, text) VALUES (new.pk, new.section, new.text);
    END;

    CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, section, text) VALUES ('delete', old.pk, old.section, old.text);
    END;
    """,
    # 5: alerts deduplicated by their sender's key within a window; the local issue tracker; the ledger of issues
    # created under an idempotency key (whatever the tracker).
    """
    ALTER TABLE outbox ADD COLUMN dedupe_key TEXT;
    CREATE INDEX outbox_dedupe ON outbox (dedupe_key, id);

    CREATE TABLE tracker_teams (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        issue_count INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO tracker_teams (id, key, name) VALUES
        ('team-cs', 'CS', 'Customer Success'), ('team-eng', 'ENG', 'Engineering'), ('team-sales', 'SALES', 'Sales');

    CREATE TABLE tracker_issues (
        id TEXT PRIMARY KEY,
        identifier TEXT NOT NULL UNIQUE,
        team_id TEXT NOT NULL REFERENCES tracker_teams (id),
        title TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        priority INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 4),
        state TEXT NOT NULL,
        assignee TEXT,
        labels TEXT NOT NULL DEFAULT '[]',
        due_date TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX tracker_issues_team ON tracker_issues (team_id, updated_at DESC);

    CREATE TABLE issue_keys (
        key TEXT PRIMARY KEY,
        backend TEXT NOT NULL,
        issue_id TEXT,
        identifier TEXT,
        created_at TEXT NOT NULL
    );
    """,
    # 6: meeting invites; schedules and their runs; bug reports and the issues they became.
    """
    CREATE TABLE meetings (
        uid TEXT PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL,
        organizer TEXT NOT NULL,
        attendees TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        ics TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX meetings_start ON meetings (starts_at);

    CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        spec TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        next_run_at TEXT NOT NULL,
        last_run_at TEXT,
        lease_owner TEXT,
        lease_until TEXT,
        updated_at TEXT NOT NULL
    );

    CREATE TABLE schedule_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule TEXT NOT NULL,
        due_at TEXT NOT NULL,
        missed INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
        run_id TEXT,
        summary TEXT,
        error TEXT
    );
    CREATE INDEX schedule_runs_schedule ON schedule_runs (schedule, id DESC);

    CREATE TABLE bug_reports (
        issue_key TEXT PRIMARY KEY,
        issue_id TEXT,
        reporter TEXT NOT NULL,
        channel TEXT NOT NULL,
        last_state TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 7: churn: each client's features as of a date, and (once known) whether it renewed or churned.
    """
    CREATE TABLE client_snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        client_id TEXT NOT NULL,
        as_of TEXT NOT NULL,
        features TEXT NOT NULL,
        outcome TEXT CHECK (outcome IN ('renewed', 'churned')),
        source TEXT NOT NULL,
        UNIQUE (client_id, as_of)
    );
    CREATE INDEX client_snapshots_outcome ON client_snapshots (outcome);
    """,
    # 8: which process claimed an outbox entry, so a claim by a process that died is released at once.
    """
    ALTER TABLE outbox ADD COLUMN claimed_by INTEGER;
    """,
    # 9: vectors of a document version that a process is writing or removing, noted first: what one that dies
    # midway leaves is removed by the next. Vectors left so before this (no document version of theirs) go now.
    """
    CREATE TABLE pending_vectors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        document_id TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        chunk_count INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('writing', 'removing')),
        pid INTEGER,
        owner TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX pending_vectors_version ON pending_vectors (document_id, content_hash);
    DELETE FROM vectors WHERE id NOT IN (
        SELECT c.document_id || '#' || substr(d.content_hash, 1, 10) || '.' || c.seq
        FROM chunks c JOIN documents d ON d.id = c.document_id
    );
    """,
    # 10: one health history row per client and source call: re-analysing a call replaced its row's figures
    # instead of appending the same point again (which weighed twice in the trend). The newest of each is kept.
    """
    DELETE FROM client_health_history WHERE source_call_id IS NOT NULL AND id NOT IN (
        SELECT max(id) FROM client_health_history WHERE source_call_id IS NOT NULL GROUP BY client_id, source_call_id
    );
    CREATE UNIQUE INDEX IF NOT EXISTS client_health_history_source
        ON client_health_history (client_id, source_call_id);
    """,
    # 11: how a call was linked to its client (or why it was not); clients found by a name key that ignores case
    # and punctuation (filled when calls are linked); each client's last health alert, so alerts follow changes.
    """
    ALTER TABLE calls ADD COLUMN link TEXT;
    ALTER TABLE calls ADD COLUMN unlinked_reason TEXT;
    CREATE INDEX calls_unlinked ON calls (started DESC, id DESC) WHERE client_id IS NULL;
    ALTER TABLE clients ADD COLUMN name_key TEXT;
    CREATE INDEX clients_name_key ON clients (name_key);

    CREATE TABLE health_alert_state (
        client_id TEXT PRIMARY KEY,
        alert_key TEXT NOT NULL,
        score REAL NOT NULL,
        components TEXT NOT NULL,
        call_id TEXT NOT NULL,
        call_started TEXT NOT NULL,
        recovered_score REAL,
        updated_at TEXT NOT NULL
    );
    """,
]


def _roll_back(conn: sqlite3.Connection) -> None:
    """Roll back unless SQLite already has (it does on a full disk): a ROLLBACK then would fail with "no
    transaction is active" and hide the error that matters."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.warning("Rolling back a failed transaction failed too: %s", exc)


def _statements(script: str) -> Iterator[str]:
    """The complete statements of a script, one by one (a trigger's body keeps its inner semicolons)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                yield pending
            pending = ""
    if pending.strip().rstrip(";").strip():
        yield pending


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    """Timestamps are stored as UTC ISO 8601 text, so they sort and compare as strings."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


# SQLite's primary result codes that say the store's file failed, not the statement: what each means for a user.
# (Not SQLITE_READONLY: a read-only connection refusing a write is a statement's mistake, refused on purpose.)
FILE_FAILURES = {
    sqlite3.SQLITE_CORRUPT: "is damaged",
    sqlite3.SQLITE_NOTADB: "is not a database file",
    sqlite3.SQLITE_IOERR: "could not be read or written",
    sqlite3.SQLITE_CANTOPEN: "cannot be opened",
    sqlite3.SQLITE_PERM: "may not be written",
}


def file_failure(exc: BaseException | None, path: Path | None = None) -> SophiaError | None:
    """Our error, in one line, for a failure of a file itself (the store at `path`, or the file an OSError
    names): a full disk, damage, no access. None for anything else (a statement's own mistake)."""
    if isinstance(exc, OSError):
        where = exc.filename or path or "a file being written"
        return DiskFull(disk_full(where)) if exc.errno == errno.ENOSPC else None
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(exc, sqlite3.Error) or code is None:
        return None
    if code & 0xFF == sqlite3.SQLITE_FULL:
        return DiskFull(disk_full(path or "the local store"))
    what = FILE_FAILURES.get(code & 0xFF)
    if what is None:
        return None
    store = f"The local store at {path}" if path else "The local store"
    return ServiceUnavailable(f"{store} {what} ({exc}); `sophia-mcp doctor` checks it")


def disk_full(where: object) -> str:
    """What a full disk is called everywhere: one line, saying what to do."""
    return f"disk full: {where} cannot take more data; free space on its disk and try again"


# Space the store keeps aside beside its file, given back when the disk is full so a run's failure can be written.
RESERVE_BYTES = 512 * 1024

READ_HERE_KEYS = 200  # `read` of more keys than this may take over a millisecond: it goes to a worker thread


class Store:
    """A connection to the store file; blocking calls go through `run` so they never block the event loop."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        # `read` runs short reads in the calling (event-loop) thread on that thread's own read-only connection:
        # no trip to a worker thread and no wait for the shared connection's lock (WAL lets readers run beside
        # the writer). `_local.active` is that connection while such a read runs.
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._untrusted: list[sqlite3.Connection] = []  # idle connections of `untrusted_reader`
        self._untrusted_lock = threading.Lock()  # not `_lock`: a write transaction holds that throughout
        self._owed: list[Callable[[sqlite3.Connection], None]] = []

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                # In WAL mode NORMAL is durable across application crashes and much faster than FULL.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                self._migrate(conn)
                self._keep_reserve()
            except (sqlite3.Error, OSError) as exc:
                if isinstance(failure := file_failure(exc, self.path), DiskFull):
                    raise failure from exc
                raise ServiceUnavailable(f"Cannot open the local store at {self.path}: {exc}") from exc
            self._conn = conn
        return self._conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            _roll_back(conn)
            raise

    def _open_reader(self) -> sqlite3.Connection:
        with self._lock:
            self._connect()  # the file exists and is migrated
            try:
                reader = sqlite3.connect(
                    self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise ServiceUnavailable(f"Cannot open the local store at {self.path}: {exc}") from exc
            reader.row_factory = sqlite3.Row
            reader.execute("PRAGMA query_only = ON")
            self._readers.append(reader)
        self._local.reader = reader
        return reader

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection a read runs on: this thread's own inside `read`, else the shared one, under its lock.
        A failure of the file itself (damage, a full disk for a sort's temporary space) is raised as our error."""
        try:
            active = getattr(self._local, "active", None)
            if active is not None:
                yield active
                return
            with self._lock:
                yield self._connect()
        except sqlite3.Error as exc:
            if (failure := file_failure(exc, self.path)) is not None:
                raise failure from exc
            raise

    @property
    def schema_version(self) -> int:
        with self._reading() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def integrity_problems(self, most: int = 10) -> list[str]:
        """What SQLite's `quick_check` finds wrong in the file (damaged pages, broken indexes), at most `most`
        lines; none when it is sound. Reads every page: for `doctor`, not for a request."""
        with self._reading() as conn:
            rows = [str(row[0]) for row in conn.execute(f"PRAGMA quick_check({int(most)})")]
        if rows == ["ok"]:
            return []
        # SQLite may put several findings in one row, under a heading naming the database.
        found = [line for row in rows for line in row.splitlines() if line.strip() and not line.startswith("***")]
        return found[:most]

    def data_version(self) -> tuple[int, int]:
        """A token that changes when another connection (or process) commits: SQLite's `data_version`, with the
        connection it was read on, since each connection counts on its own. Compare tokens only for equality."""
        with self._reading() as conn:
            return id(conn), int(conn.execute("PRAGMA data_version").fetchone()[0])

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read and return every row."""
        with self._reading() as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """Run one write in its own transaction; returns how many rows it changed."""
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount

    def query_within(
        self, seconds: float, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[sqlite3.Row]] | None:
        """Run a read that may take long, giving up after `seconds`: its columns and rows, or None when out of
        time."""
        deadline = time.perf_counter() + seconds
        with self._reading() as conn:
            conn.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
            try:
                cursor = conn.execute(sql, params)
                rows = cursor.fetchall()
                return [d[0] for d in cursor.description or []], rows
            except sqlite3.OperationalError as exc:
                if "interrupt" in str(exc):
                    return None
                raise
            finally:
                conn.set_progress_handler(None, 0)

    @contextmanager
    def untrusted_reader(self, seconds: float, max_value_bytes: int) -> Iterator[sqlite3.Connection]:
        """A connection of its own for one statement from outside (a model's SQL): opened read-only (`mode=ro`, and
        `query_only`), so nothing it runs writes and no write waits for it; no text, blob or row over
        `max_value_bytes`; interrupted by a timer after `seconds` whatever it is doing. Close its cursors before
        the block ends: the connection is reused."""
        with self._untrusted_lock:
            idle = self._untrusted.pop() if self._untrusted else None
        conn = idle or self._open_untrusted()
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_value_bytes)
        timer = threading.Timer(seconds, conn.interrupt)
        timer.daemon = True
        timer.start()
        try:
            yield conn
        finally:
            timer.cancel()
            timer.join()  # an interrupt must not reach the connection's next user, nor a closed connection
            with self._untrusted_lock:
                self._untrusted.append(conn)

    def _open_untrusted(self) -> sqlite3.Connection:
        if self._conn is None:
            with self._lock:
                self._connect()  # the file exists, is migrated and in WAL mode: a read-only connection cannot
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                isolation_level=None, check_same_thread=False,
            )  # fmt: skip
            conn.execute("PRAGMA query_only = ON")
            conn.execute(f"PRAGMA hard_heap_limit = {UNTRUSTED_HEAP_BYTES}")  # only ever lowers it
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"Cannot open the local store at {self.path}: {exc}") from exc
        return conn

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        with self._reading() as conn:
            return conn.execute(sql, params).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its start, so it cannot deadlock on upgrade. Writes
        owed (see `owe`) go first. A failure of the file itself (a full disk, say) is raised as our own error."""
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    owed = self._pay_owed(conn)
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    _roll_back(conn)
                    raise
            except sqlite3.Error as exc:
                if (failure := file_failure(exc, self.path)) is not None:
                    raise failure from exc
                raise
            del self._owed[:owed]

    @property
    def reserve_path(self) -> Path:
        return self.path.with_name(self.path.name + "-reserve")

    def _keep_reserve(self) -> None:
        """Set space aside (random bytes: a compressing file system keeps zeros in no space at all), unless it is
        kept already or the disk has no room for it."""
        reserve = self.reserve_path
        if reserve.exists():
            return
        try:
            reserve.write_bytes(os.urandom(RESERVE_BYTES))
        except OSError as exc:
            reserve.unlink(missing_ok=True)
            log.warning("No space is set aside beside the store (%s): a full disk may leave a run unrecorded", exc)

    def release_reserve(self) -> bool:
        """Give back the space set aside, for a write a full disk refused; False if there was none. It is set
        aside again the next time the store is opened."""
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        log.warning("The disk holding %s is full: the space set aside beside it is given back", self.path)
        return True

    def owe(self, write: Callable[[sqlite3.Connection], None]) -> None:
        """Keep a write the store could not take now (its disk is full): the next transaction that commits makes
        it first. For records that must not be lost, such as a run's end."""
        with self._lock:
            self._owed.append(write)

    def _pay_owed(self, conn: sqlite3.Connection) -> int:
        """Make the owed writes, each in a savepoint: one that fails for its own reason is logged and dropped,
        not left to fail every transaction after it. Returns how many were made."""
        owed = list(self._owed)
        for write in owed:
            conn.execute("SAVEPOINT owed")
            try:
                write(conn)
            except sqlite3.Error as exc:
                if file_failure(exc, self.path) is not None:
                    raise  # the store still cannot take it: the whole transaction fails, and it stays owed
                conn.execute("ROLLBACK TO owed")
                log.warning("An owed write to the store failed and is dropped: %s", exc)
            conn.execute("RELEASE owed")
        return len(owed)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking store function in a worker thread."""
        return await anyio.to_thread.run_sync(fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any, keys: int = 1) -> T:
        """Run a short read (a fraction of a millisecond: lookups by key, a small page) here, in the calling
        thread, on its own read-only connection: the trip to a worker thread and back costs more than the read,
        and under load each trip waits its turn on the busy event loop. A read of more than `READ_HERE_KEYS`
        keys, and anything longer, goes to a worker thread (`run`)."""
        if keys > READ_HERE_KEYS:
            return await self.run(fn, *args)
        self._local.active = getattr(self._local, "reader", None) or self._open_reader()
        try:
            return fn(*args)
        finally:
            self._local.active = None

    def close(self) -> None:
        with self._lock:
            if self._owed and self._conn is not None:
                try:  # a last chance for what a full disk kept from being written
                    with self.transaction():
                        pass
                except SophiaError as exc:
                    log.warning("%d writes to the store are lost: %s", len(self._owed), exc)
            # Read-only connections first: the last connection to close folds the WAL back, and they cannot.
            with self._untrusted_lock:
                for conn in self._untrusted:
                    conn.close()
                self._untrusted.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._local = threading.local()
