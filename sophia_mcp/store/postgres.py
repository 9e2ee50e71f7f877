"""The operational store on PostgreSQL (`SOPHIA_STORE__URL=postgresql://...`): the same interface as the SQLite
`Store`, so every repository runs unchanged on either engine, and replicas on many hosts share one database.

The repositories are synchronous functions run in worker threads (`Store.run`), so this engine uses psycopg's sync
`ConnectionPool` from those same threads: one code path for both engines, and no second event loop inside a
thread. Their SQL is written for SQLite (`?` and `:name` placeholders, `sqlite3.Row`-style rows); a thin wrapper
translates the placeholders (cached per statement) and a few SQLite spellings that have exact equivalents.

Writes keep SQLite's guarantee that a write transaction sees no other writer (`transaction()` takes one advisory
lock, as `BEGIN IMMEDIATE` takes SQLite's write lock), so a repository that reads then writes stays correct across
replicas. The claims that many workers race for (outbox, inbox, schedule leases) opt out of it with
`transaction(shared=True)` and lock only the rows they take, with `FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import functools
import logging
import re
import select
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import psycopg
import psycopg_pool
from psycopg.rows import RowMaker

from sophia_mcp.errors import ServiceUnavailable
from sophia_mcp.store.database import OutsideQueryFailed, Store
from sophia_mcp.store.migrations import MIGRATIONS, postgres_statements
from sophia_mcp.store.store_url import SETTING, mask_url

T = TypeVar("T")

log = logging.getLogger(__name__)

# Keys of pg_advisory_xact_lock: any constant of our own, the same in every replica.
MIGRATION_LOCK = 0x50F1A_0001
WRITE_LOCK = 0x50F1A_0002
CONNECT_TIMEOUT_S = 10.0
POOL_SIZE = 8


class Row:
    """A row read like `sqlite3.Row`: by position, by column name, `keys()`, iterated and measured."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self._values == other._values and self._index == other._index

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> RowMaker[Row]:
    # The names straight from the result, not `description` (a Column object per column, per statement).
    result = cursor.pgresult
    names = tuple(result.fname(i) for i in range(result.nfields)) if result is not None else ()
    return functools.partial(Row, index=_index(names, cursor.connection.info.encoding))


@functools.lru_cache(maxsize=1024)
def _index(names: tuple[bytes | None, ...], encoding: str) -> dict[str, int]:
    """Each column's position by name: one dict for every result of the same columns (rows only read it)."""
    # A COPY's result has columns but no names: psycopg calls them column_1, ... too.
    return {name.decode(encoding) if name else f"column_{i + 1}": i for i, name in enumerate(names)}


def _has_rows(cursor: psycopg.Cursor[Row]) -> bool:
    """Whether the statement returned columns, as `description` is truthy, without building its Column objects."""
    result = cursor.pgresult
    return result is not None and result.nfields > 0


# A string literal, a quoted identifier, a cast (`::`), a `?`, a `:name`, a `%` or the keyword LIKE: scanned left to
# right, so a `?`, `%` or LIKE inside quotes is left alone.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|\?|:([A-Za-z_]\w*)|%|(?i:\bLIKE\b)")
# SQLite spellings with an exact PostgreSQL equivalent, rewritten in repository SQL (never inside the literals:
# these run before the placeholders are translated, on statements the repositories write, which keep them apart).
_REWRITES = [
    (re.compile(r"\bIS NOT \?"), "IS DISTINCT FROM ?"),
    (re.compile(r"([\w.]+) = \? COLLATE NOCASE"), r"lower(\1) = lower(?)"),
    (re.compile(r"([\w.]+) COLLATE NOCASE IN \("), r"lower(\1) IN ("),
    (re.compile(r"\binstr\(", re.IGNORECASE), "strpos("),
]


# A statement that inserts one row of values (placeholders and literals), optionally with an ON CONFLICT clause.
_ONE_ROW = re.compile(
    r"^(?P<head>\s*INSERT\s.*?\bVALUES\s*)(?P<row>\((?:[^()']|'(?:[^']|'')*')*\))(?P<tail>\s*(?:ON\s+CONFLICT\b.*)?)$",
    re.IGNORECASE | re.DOTALL,
)
ROWS_PER_INSERT = 500
# A plain insert of many rows (placeholders only, no ON CONFLICT) goes by COPY: no statement of a megabyte for the
# server to parse and plan, no literals for psycopg to quote in Python (written a row at a time in C).
COPY_FROM = 50  # rows, at least
_PLAIN_INTO = re.compile(r"^\s*INSERT\s+INTO\s+(?P<table>\w+)\s*\((?P<columns>[\w\s,]+)\)\s*VALUES\s*$", re.IGNORECASE)
_MARKS_ONLY = re.compile(r"^\(\s*%s(?:\s*,\s*%s)*\s*\)$")


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """The statement in PostgreSQL's spelling: `?` -> `%s`, `:name` -> `%(name)s` (not inside string literals or
    quoted names), every `%` doubled, as psycopg reads it, and LIKE -> ILIKE (SQLite's LIKE ignores case)."""
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        if text == "%":
            return "%%"
        if match.group(1) is not None:
            return f"%({match.group(1)})s"
        if text.upper() == "LIKE":
            return "ILIKE"
        return text.replace("%", "%%")  # psycopg reads `%` everywhere, inside literals too

    return _TOKENS.sub(token, sql)


# A long `IN (?, ?, ...)` list, as translated: bound as one array instead (`= ANY(%s)`). psycopg parses a statement of
# more than a few dozen parameters afresh at every execution (its cache takes only short ones), so a repository's
# lookup of 500 keys a statement cost more in that parsing than the server took to answer it (a second of a health
# monitor's pass at 100k clients); an array is one parameter, quoted in C.
ARRAY_FROM = 16  # placeholders in a list, at least
_PLACEHOLDERS = re.compile(
    r"%%|%\(\w+\)s|%s|"
    r"(?P<list>\b(?P<negated>NOT\s+)?IN\s*\((?P<marks>\s*%s(?:\s*,\s*%s){" + str(ARRAY_FROM - 1) + r",}\s*)\))",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=1024)
def _arrays(statement: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """`statement` with each long IN list of placeholders as `= ANY(%s)` (`<> ALL(%s)` for NOT IN), and where each
    list's values are among the positional parameters: (first, how many)."""
    parts: list[str] = []
    lists: list[tuple[int, int]] = []
    at = seen = 0
    for match in _PLACEHOLDERS.finditer(statement):
        if match["list"] is not None:
            count = match["marks"].count("%s")
            parts += [statement[at : match.start()], "<> ALL(%s)" if match["negated"] else "= ANY(%s)"]
            lists.append((seen, count))
            seen += count
            at = match.end()
        elif match.group(0) == "%s":
            seen += 1
    parts.append(statement[at:])
    return "".join(parts), tuple(lists)


def _as_arrays(statement: str, params: Sequence[Any]) -> tuple[str, Sequence[Any]]:
    """The statement and its parameters with long IN lists bound as arrays, when each list's values are all text or
    all integers (an array holds one type; a NULL in an IN list means something else in an array): else unchanged."""
    shaped, lists = _arrays(statement)
    if not lists:
        return statement, params
    out: list[Any] = []
    at = 0
    for first, count in lists:
        values = params[first : first + count]
        kind = type(values[0])
        if kind not in (str, int) or any(type(value) is not kind for value in values):
            return statement, params
        out += [*params[at:first], list(values)]
        at = first + count
    return shaped, [*out, *params[at:]]


class Cursor:
    """What a repository reads from `execute`: rows, `rowcount`, `description`; iterable like sqlite3's."""

    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cursor = cursor

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone() if _has_rows(self._cursor) else None

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall() if _has_rows(self._cursor) else []

    def fetchmany(self, size: int) -> list[Row]:
        return self._cursor.fetchmany(size) if _has_rows(self._cursor) else []

    def nextset(self) -> bool:
        """On to the next statement's result, of several sent as one query; False when there is none."""
        return bool(self._cursor.nextset())

    def close(self) -> None:
        self._cursor.close()

    def __iter__(self) -> Iterator[Row]:
        # Row by row, as psycopg makes them: a loop over many rows holds one at a time.
        return iter(self._cursor) if _has_rows(self._cursor) else iter(())

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self) -> list[tuple[str, ...]] | None:
        description = self._cursor.description
        return None if description is None else [(column.name,) for column in description]

    @property
    def lastrowid(self) -> int:
        raise TypeError("lastrowid is SQLite's: write `INSERT ... RETURNING id` and read the row")


class Connection:
    """A psycopg connection that takes the repositories' SQLite-flavoured statements."""

    def __init__(self, conn: psycopg.Connection[Row]) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor:
        cursor = self._conn.cursor()
        statement, values = translate(sql), _params(params)
        if len(values) >= ARRAY_FROM and not isinstance(values, dict):
            statement, values = _as_arrays(statement, values)
        cursor.execute(statement, values)
        return Cursor(cursor)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A savepoint: what fails inside it is rolled back alone, the transaction goes on."""
        with self._conn.transaction():
            yield

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]] | Iterator[Sequence[Any]]) -> Cursor:
        """Run `sql` once for each row of parameters. An `INSERT ... VALUES (...)` takes its rows a few hundred to a
        statement: the server parses and plans one statement, not one a row (10,000 rows: 20 statements)."""
        cursor = self._conn.cursor()
        rows = [_params(p) for p in seq]
        statement = translate(sql)
        shape = _ONE_ROW.match(statement) if len(rows) > 1 and not isinstance(rows[0], dict) else None
        if shape is None or "%" in shape["head"] + shape["tail"]:
            if rows:
                cursor.executemany(statement, rows)
            return Cursor(cursor)
        plain = _PLAIN_INTO.match(shape["head"]) if not shape["tail"].strip() and len(rows) >= COPY_FROM else None
        if plain is not None and _MARKS_ONLY.match(shape["row"]):
            columns = [column.strip() for column in plain["columns"].split(",")]
            if len(columns) == shape["row"].count("%s"):
                with cursor.copy(cast(Any, f"COPY {plain['table']} ({', '.join(columns)}) FROM STDIN")) as copy:
                    for row in rows:
                        copy.write_row(cast(Sequence[Any], row))  # not a dict: `shape` is None for those
                return Cursor(cursor)
        try:
            with self._conn.transaction():  # a savepoint: a key twice among the rows is sent a row at a time
                # Each row bound on its own (a short statement psycopg caches), then sent as literals together.
                values = [cast(psycopg.ClientCursor[Row], cursor).mogrify(shape["row"], row) for row in rows]
                for start in range(0, len(values), ROWS_PER_INSERT):
                    many = shape["head"] + ", ".join(values[start : start + ROWS_PER_INSERT]) + shape["tail"]
                    cursor.execute(cast(Any, many))
        except psycopg.errors.CardinalityViolation:  # ON CONFLICT DO UPDATE meeting one key twice in a statement
            cursor.executemany(statement, rows)
        return Cursor(cursor)


def _params(params: Sequence[Any] | dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
    # SQLite takes bytes-like memoryviews and bools as integers; psycopg wants them spelled out.
    if isinstance(params, dict):
        return {k: _value(v) for k, v in params.items()}
    return [_value(v) for v in params]


def _value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.row_factory = _row_factory


def _check(conn: psycopg.Connection[Any]) -> None:
    """The pool's check of a connection it hands out, without a round trip for one that is sound: an idle
    connection is sent nothing, so a socket with something to read (the server closing it, a restart's notice)
    or one not idle is checked by a trip to the server, which raises for a dead one and the pool replaces it."""
    idle = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if not idle or _readable(conn.pgconn.socket):
        psycopg_pool.ConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    """Whether the socket has something to read (or was closed by its peer), at once; poll, as a busy server's
    sockets may be numbered past what select takes."""
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class PostgresStore(Store):
    """The store on a PostgreSQL database: connections from a pool, shared by the worker threads."""

    dialect = "postgresql"
    reads_here = False  # every read is a trip to the server, from a worker thread
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str) -> None:
        super().__init__(path=Path("postgresql"))  # no file: `path` is never opened
        self.url = url
        self.where = mask_url(url)
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Row]] | None = None
        self._pool_lock = threading.Lock()

    # -- connections ----------------------------------------------------------------------------------------

    def _connect(self) -> Any:
        # A path of SQLite's `Store` not overridden here would open a file named `postgresql` in the working dir.
        raise TypeError("A store on PostgreSQL has no SQLite file to open")

    def unavailable(self, exc: BaseException) -> ServiceUnavailable:
        """Our error for a database that cannot be reached or went away: names the setting, never the password."""
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        password = urlsplit(self.url).password
        if password:
            detail = detail.replace(password, "***")
        return ServiceUnavailable(
            f"The store's PostgreSQL database ({SETTING}={self.where}) cannot be reached: {detail}; check that it "
            "runs and the URL is right (`sophia-mcp doctor` checks it)"
        )

    def _open_pool(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Row]]:
        with self._pool_lock:
            if self._pool is not None:
                return self._pool
            pool: psycopg_pool.ConnectionPool[psycopg.Connection[Row]] = psycopg_pool.ConnectionPool(
                self.url,
                min_size=1,
                max_size=POOL_SIZE,
                open=False,
                # Values bound on the client, as SQLite binds them: a parameter carries no type of its own, so
                # `? IS NULL` and `? || text` read as they do on SQLite (server-side binding refuses an untyped one).
                kwargs={
                    "autocommit": True,
                    "connect_timeout": int(CONNECT_TIMEOUT_S),
                    "cursor_factory": psycopg.ClientCursor,
                },
                configure=_configure,
                # A connection is checked as it is handed out: one the server dropped (a restart) is replaced.
                check=_check,
                timeout=CONNECT_TIMEOUT_S,
                reconnect_timeout=CONNECT_TIMEOUT_S,
                name="sophia-store",
            )
            try:
                # One connection of its own first: an unreachable database fails at once with its own reason
                # (the pool would retry until its timeout and say only that), and it migrates the schema.
                with psycopg.connect(
                    self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S), row_factory=_row_factory
                ) as first:
                    self._migrate_pg(first)
                pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                pool.close()
                if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout):
                    raise self.unavailable(exc) from exc
                raise
            self._pool = pool
            return pool

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Row]]:
        pool = self._open_pool()
        try:
            with pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise self.unavailable(exc) from exc

    @staticmethod
    def _migrate_pg(conn: psycopg.Connection[Row]) -> None:
        """Apply the migrations not yet applied, in one transaction under an advisory lock: replicas starting
        together wait for the first, then find nothing left to do."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                version = 0
            else:
                version = int(row[0])
            for number in range(version + 1, len(MIGRATIONS) + 1):
                for statement in postgres_statements(number):
                    conn.execute(cast(Any, statement))
                conn.execute("UPDATE schema_version SET version = %s", (number,))

    # -- the Store interface --------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        with self._connection() as conn:
            row = conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def server_version(self) -> str:
        """The server's version, as it reports it (for `doctor`)."""
        with self._connection() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else 'of an unknown version'}"

    def integrity_problems(self, most: int = 10) -> list[str]:
        """PostgreSQL keeps its own pages sound; there is no file of ours to check."""
        return []

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self._connection() as conn:
            return Connection(conn).execute(sql, params).fetchall()

    def query_values(
        self, sql: str, params: Sequence[Any] | dict[str, Any] = (), value: Callable[[Any], T] = itemgetter(0)
    ) -> list[T]:
        with self._connection() as conn:
            return [value(row) for row in Connection(conn).execute(sql, params)]

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        with self._connection() as conn:
            return Connection(conn).execute(sql, params).fetchone()

    def query_within(self, seconds: float, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[Any]] | None:
        deadline_ms = max(1, int(seconds * 1000))
        with self._connection() as conn:
            try:
                # One trip, not four (BEGIN, SET LOCAL, the read, COMMIT): values bound on the client, both
                # statements go as one simple query, which the server runs as one implicit transaction, so the
                # timeout holds for the read and lapses with it (at 100k chunks a search makes up to three such reads).
                cursor = Connection(conn).execute(f"SET LOCAL statement_timeout = {deadline_ms}; {sql}", params)
                cursor.nextset()
                return [d[0] for d in cursor.description or []], cursor.fetchall()
            except psycopg.errors.QueryCanceled:
                return None

    @contextmanager
    def untrusted_reader(self, seconds: float, max_value_bytes: int) -> Iterator[Any]:
        """A connection for one statement from outside (a model's SQL), in a READ ONLY transaction of its own, so
        nothing it runs writes; the server stops it after `seconds` (statement_timeout). PostgreSQL caps no single
        value: the caller's row and byte caps bound what is read. What it refuses is `OutsideQueryFailed`."""
        deadline_ms = max(1, int(seconds * 1000))
        with self._connection() as conn:
            try:
                with conn.transaction():
                    # Both in one trip (no parameters: sent as one simple query), before the outside statement.
                    conn.execute(cast(Any, f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {deadline_ms}"))
                    yield Connection(conn)
            except psycopg.errors.QueryCanceled as exc:
                raise OutsideQueryFailed(str(exc), stopped=True) from None
            except psycopg.Error as exc:
                if isinstance(exc, psycopg.OperationalError):
                    raise  # the database went away: `_connection` says so
                words = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise OutsideQueryFailed(f"PostgreSQL refused the query: {words[:300]}") from None

    @contextmanager
    def transaction(self, shared: bool = False) -> Iterator[Any]:
        """A write transaction. Unless `shared`, it holds the store's write lock from its start, as SQLite's
        `BEGIN IMMEDIATE` does; a shared one locks only the rows it touches (the claims, with SKIP LOCKED)."""
        with self._connection() as conn, conn.transaction():
            if not shared:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            wrapped = Connection(conn)
            owed = self._pay_pg_owed(wrapped)
            yield wrapped
        with self._pool_lock:
            del self._owed[:owed]

    def _pay_pg_owed(self, conn: Connection) -> int:
        """Make the owed writes (see `Store.owe`), each in a savepoint: one that fails for its own reason is logged
        and dropped; a database still gone fails the whole transaction, and they stay owed."""
        with self._pool_lock:
            owed = list(self._owed)
        for write in owed:
            try:
                with conn.savepoint():
                    write(cast(Any, conn))  # the repositories' writes take it as they take sqlite3's connection
            except psycopg.DatabaseError as exc:
                if isinstance(exc, psycopg.OperationalError):
                    raise
                log.warning("An owed write to the store failed and is dropped: %s", exc)
        return len(owed)

    def owe(self, write: Callable[[Any], None]) -> None:
        """Keep a write the database could not take now (it is gone): the next transaction that commits makes it."""
        with self._pool_lock:
            self._owed.append(write)

    def release_reserve(self) -> bool:
        return False

    async def read(self, fn: Callable[..., T], *args: Any, keys: int = 1) -> T:
        """Every read goes to a worker thread: over the network, even a lookup by key may wait."""
        return await self.run(fn, *args)

    async def scan(self, table: str, fn: Callable[..., T], *args: Any) -> T:
        """A read that may scan `table` goes to a worker thread as every read does: no need to size it first."""
        return await self.run(fn, *args)

    def close(self) -> None:
        if self._owed and self._pool is not None:
            try:  # a last chance for what the database could not take when it was gone
                with self.transaction():
                    pass
            except ServiceUnavailable as exc:
                log.warning("%d writes to the store are lost: %s", len(self._owed), exc)
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
