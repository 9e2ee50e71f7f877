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
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from sophia_mcp.errors import DiskFull, ServiceUnavailable, SophiaError
from sophia_mcp.store.migrations import MIGRATIONS, statements
from sophia_mcp.store.watchdog import Watchdog

T = TypeVar("T")

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
# SQLite's heap for the whole process once it serves SQL from outside (`untrusted_reader`): the backstop behind each
# connection's value limit. The store's own use is a few MB (a 2 MB page cache per connection), so only a query
# holding hundreds of MB reaches it; while one does, another statement's allocation may fail too (SQLITE_NOMEM:
# that statement fails and rolls back; the file stays sound).
UNTRUSTED_HEAP_BYTES = 256 * 1024 * 1024


def _roll_back(conn: sqlite3.Connection) -> None:
    """Roll back unless SQLite already has (it does on a full disk): a ROLLBACK then would fail with "no
    transaction is active" and hide the error that matters."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log.warning("Rolling back a failed transaction failed too: %s", exc)


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


def contains(text: str) -> str:
    """A LIKE pattern (with `ESCAPE '\\'`) matching values that contain `text`, its `%`, `_` and `\\` taken as
    themselves rather than as wildcards."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


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


class OutsideQueryFailed(Exception):
    """The engine stopped a statement from outside (`stopped`: it ran past its time) or refused it, in its words."""

    def __init__(self, words: str, stopped: bool = False) -> None:
        super().__init__(words)
        self.stopped = stopped


class Store:
    """A connection to the store file; blocking calls go through `run` so they never block the event loop."""

    dialect = "sqlite"
    # Whether `read` runs a short read in the calling thread (a file on this machine), not in a worker thread.
    reads_here = True
    # What a claim's inner SELECT ends with to skip rows another worker holds: nothing on SQLite, whose write
    # transactions run one at a time (PostgreSQL's engine says FOR UPDATE SKIP LOCKED).
    skip_locked = ""

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
        self._watchdog = Watchdog("sophia-store-watchdog")  # interrupts the statements of `untrusted_reader`
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
                for statement in statements(script):
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

    def server_version(self) -> str:
        """The engine and its version (for `doctor`)."""
        return f"SQLite {sqlite3.sqlite_version}"

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

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read and return every row."""
        with self._reading() as conn:
            return conn.execute(sql, params).fetchall()

    def query_values(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), value: Callable[[Any], T] = itemgetter(0)
    ) -> list[T]:
        """Run a read and return `value` of each row (its first column unless told), taken as the rows are read:
        no row outlives its value, so 100k rows leave 100k values, not 100k rows for the garbage collector to walk."""
        with self._reading() as conn:
            return [value(row) for row in conn.execute(sql, params)]

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
        `max_value_bytes`; interrupted after `seconds` whatever it is doing (by the store's watchdog thread, which
        never interrupts it once the block has ended: not its next user, nor a closed connection). Close its
        cursors before the block ends: the connection is reused."""
        with self._untrusted_lock:
            idle = self._untrusted.pop() if self._untrusted else None
        conn = idle or self._open_untrusted()
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_value_bytes)
        try:
            with self._watchdog.watch(seconds, conn.interrupt):
                yield conn
        finally:
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
    def transaction(self, shared: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its start, so it cannot deadlock on upgrade. Writes
        owed (see `owe`) go first. A failure of the file itself (a full disk, say) is raised as our own error.
        `shared` (a claim that locks only its own rows) matters on PostgreSQL; SQLite has one write lock."""
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

    async def scan(self, table: str, fn: Callable[..., T], *args: Any) -> T:
        """Run a read that may scan every row of `table` (words matched anywhere): here while the table is small,
        in a worker thread once it is not. Its largest rowid (one step down its b-tree) says about how big it is."""
        row = await self.read(self.query_one, f"SELECT max(rowid) AS n FROM {table}")
        return await self.read(fn, *args, keys=int(row["n"] or 0) if row else 0)

    def close(self) -> None:
        with self._lock:
            if self._owed and self._conn is not None:
                try:  # a last chance for what a full disk kept from being written
                    with self.transaction():
                        pass
                except SophiaError as exc:
                    log.warning("%d writes to the store are lost: %s", len(self._owed), exc)
            self._watchdog.close()
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
