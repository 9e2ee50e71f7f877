"""The embedded vector index: vectors in the store, searched exactly (one matrix product) from a memory copy.

Vectors are rows of the store (float32 blobs with JSON metadata), so several processes share them safely; each
process keeps a matrix of them in memory. Every write to a vector, by any process, appends its id to a change
log in the store (triggers keep it, migration 12), so a query first asks for the newest change and, when there
are new ones, reads only the rows they name: a commit to any other table costs nothing, an ingest costs its own
rows. Metadata is kept by column (each row's value as a code into the key's distinct values), so a filter is
judged once per distinct value and applied as a mask. Exact search keeps recall at 1.0; at 100k chunks of 256
floats the product takes a few milliseconds. The index remembers the model and dimension that built it and
refuses others.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sophia_mcp.domain.times import iso, utcnow
from sophia_mcp.domain.vectors import Filter, Metadata, VectorMatch, matches
from sophia_mcp.errors import ConfigurationError, InvalidInput
from sophia_mcp.store.database import Store, dumps

if TYPE_CHECKING:  # the alias exists for type checkers only (ports/embed.py)
    from sophia_mcp.ports.embed import Vectors

MASKS_KEPT = 32
INLINE_VECTORS = 2000  # up to this many vectors a query runs in the calling thread, past it in a worker thread
CHANGES_KEPT = 50_000  # the change log's length: an index further behind than this reloads whole
PRUNE_STEP = 1024  # the log is pruned by at least this many changes at a time
PAGE_ROWS = 4096  # a whole load reads this many rows at a time, so only the matrix is ever held whole

NO_VALUE = -1  # a row's code for a key it does not have


def _interned(value: Any) -> Hashable:
    """A key telling metadata values apart exactly as JSON does: 1, 1.0 and True are three values here (a string
    may stand for itself: it equals none of these keys)."""
    if isinstance(value, list):
        return list, tuple(v if type(v) is str else _interned(v) for v in value)
    if isinstance(value, dict):
        return dict, dumps(value)
    return type(value), value


def _plain(value: Any) -> Any:
    """A kept value as metadata holds it (lists are kept as tuples, so no caller can change the kept one)."""
    return list(value) if isinstance(value, tuple) else value


# Every vector a page at a time, and where the first page starts: along SQLite's rowid (the table's own order, no
# index to read), along the primary key on PostgreSQL (which has no rowid).
PAGES: dict[str, tuple[str, Any]] = {
    "sqlite": ("SELECT rowid AS page, id, vector, metadata FROM vectors WHERE rowid > ? ORDER BY rowid LIMIT ?", -1),
    "postgresql": ("SELECT id AS page, id, vector, metadata FROM vectors WHERE id > ? ORDER BY id LIMIT ?", ""),
}


class MetadataColumns:
    """The rows' metadata by key: for each key, a code per row into that key's distinct values (`NO_VALUE` where
    the row lacks the key). Compact (a few bytes a row, not a dict), and a filter is judged per distinct value."""

    def __init__(self, capacity: int = 0) -> None:
        self._capacity = capacity
        self._codes: dict[str, npt.NDArray[np.int32]] = {}
        self._values: dict[str, list[Any]] = {}
        self._known: dict[str, dict[Hashable, int]] = {}

    def resize(self, capacity: int, rows: int) -> None:
        """Make room for `capacity` rows, keeping the first `rows`."""
        for key, codes in self._codes.items():
            grown = np.full(capacity, NO_VALUE, dtype=np.int32)
            grown[:rows] = codes[:rows]
            self._codes[key] = grown
        self._capacity = capacity

    @property
    def distinct(self) -> int:
        return sum(len(values) for values in self._values.values())

    def set_rows(self, start: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows `start`, `start + 1`, ... take these metadata, replacing what they held."""
        stop = start + len(rows)
        for codes in self._codes.values():
            codes[start:stop] = NO_VALUE
        page: dict[str, list[int]] = {}
        for j, metadata in enumerate(rows):
            for key, value in metadata.items():
                known = self._known.get(key)
                if known is None:
                    known, self._values[key] = self._known.setdefault(key, {}), []
                interned = value if type(value) is str else _interned(value)  # the common case, kept cheap
                code = known.get(interned)
                if code is None:
                    values = self._values[key]
                    code = known[interned] = len(values)
                    values.append(tuple(value) if isinstance(value, list) else value)
                column = page.get(key)
                if column is None:
                    column = page[key] = [NO_VALUE] * len(rows)
                column[j] = code
        for key, column in page.items():
            if key not in self._codes:
                self._codes[key] = np.full(self._capacity, NO_VALUE, dtype=np.int32)
            self._codes[key][start:stop] = column

    def move(self, source: int, target: int) -> None:
        """Row `target` takes row `source`'s metadata; `source` is left empty."""
        for codes in self._codes.values():
            codes[target] = codes[source]
            codes[source] = NO_VALUE

    def rows(self, rows: Sequence[int] | npt.NDArray[np.intp]) -> list[Metadata]:
        """The metadata of these rows, each key's codes taken for all of them at once (not one array read a value)."""
        out: list[Metadata] = [{} for _ in range(len(rows))]
        for key, codes in self._codes.items():
            values = self._values[key]
            for metadata, code in zip(out, codes[rows].tolist(), strict=True):
                if code >= 0:
                    metadata[key] = _plain(values[code])
        return out

    def mask(self, filter: Filter, rows: int) -> npt.NDArray[np.bool_]:
        """Which of the first `rows` rows pass `filter`: the same answer as `matches` on each row's metadata."""
        passing = np.ones(rows, dtype=bool)
        for key, condition in filter.items():
            if key == "$and":
                for part in condition:
                    passing &= self.mask(part, rows)
            elif key == "$or":
                either = np.zeros(rows, dtype=bool)
                for part in condition:
                    either |= self.mask(part, rows)
                passing &= either
            else:
                passing &= self._passing(key, condition, rows)
        return passing

    def _passing(self, key: str, condition: Any, rows: int) -> npt.NDArray[np.bool_]:
        one = {key: condition}
        without = matches({}, one)  # also refuses an unknown operator when no row has the key
        codes = self._codes.get(key)
        if codes is None:
            return np.full(rows, without, dtype=bool)
        values = self._values[key]
        truth = np.fromiter((matches({key: _plain(v)}, one) for v in values), dtype=bool, count=len(values))
        return np.append(truth, without)[codes[:rows]]  # NO_VALUE (-1) picks the last entry: `without`


class LocalVectorIndex:
    name = "local"

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._seen: int | None = None  # the last change in the memory copy; None before the first load
        self._synced = False  # False after a write of this index's own, until a query takes it in
        self._ids: list[str] = []
        self._slots: dict[str, int] = {}
        self._dimension = 0
        self._buffer = np.zeros((0, 0), dtype=np.float32)  # room for more rows; the first len(_ids) are the vectors
        self._columns = MetadataColumns()
        self._masks: dict[str, tuple[npt.NDArray[np.bool_], int]] = {}

    # -- the model --------------------------------------------------------------------------------------

    def _bind(self, model: str, dimension: int) -> None:
        with self.store.transaction() as conn:
            row = conn.execute("SELECT model, dimension FROM vector_model WHERE id = 1").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO vector_model (id, model, dimension, created_at) VALUES (1, ?, ?, ?)",
                    (model, dimension, iso(utcnow())),
                )
            elif (row["model"], row["dimension"]) != (model, dimension):
                raise ConfigurationError(
                    f"The local vector index was built with {row['model']} ({row['dimension']} dimensions), not "
                    f"{model} ({dimension}); vectors of two models cannot be searched together. Re-ingest with "
                    "`sophia-mcp kb reindex` or go back to the first model."
                )

    async def bind(self, model: str, dimension: int) -> None:
        await self.store.run(self._bind, model, dimension)

    # -- writes -----------------------------------------------------------------------------------------

    def _upsert(self, ids: Sequence[str], vectors: Vectors, metadata: Sequence[Metadata]) -> None:
        if len(ids) != len(vectors) or len(ids) != len(metadata):
            raise InvalidInput("ids, vectors and metadata must be as many")
        now = iso(utcnow())
        rows = [
            (i, np.asarray(v, dtype=np.float32).tobytes(), dumps(m), now)
            for i, v, m in zip(ids, vectors, metadata, strict=True)
        ]
        with self.store.transaction() as conn:
            dimension = conn.execute("SELECT dimension FROM vector_model WHERE id = 1").fetchone()
            if dimension is None:
                raise ConfigurationError("bind the vector index to a model before writing to it")
            if vectors.ndim != 2 or (len(ids) and vectors.shape[1] != dimension[0]):
                raise InvalidInput(f"vectors must have {dimension[0]} dimensions, as the index does")
            conn.executemany(
                """
                INSERT INTO vectors (id, vector, metadata, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET vector = excluded.vector, metadata = excluded.metadata,
                    updated_at = excluded.updated_at
                """,
                rows,
            )
            _prune(conn)
        self._synced = False

    async def upsert(self, ids: list[str], vectors: Vectors, metadata: list[Metadata]) -> None:
        await self.store.run(self._upsert, ids, vectors, metadata)

    def _delete(self, ids: Sequence[str]) -> None:
        with self.store.transaction() as conn:
            conn.executemany("DELETE FROM vectors WHERE id = ?", [(i,) for i in ids])
            _prune(conn)
        self._synced = False

    async def delete(self, ids: list[str]) -> None:
        await self.store.run(self._delete, ids)

    @property
    def size(self) -> int:
        """Vectors in the memory copy; before the first load or after a write, "many" (a load may be slow)."""
        return len(self._ids) if self._synced else sys.maxsize

    # -- the memory copy ----------------------------------------------------------------------------------

    def _fresh(self) -> None:
        """Bring the memory copy up to the store's newest change to a vector: only the rows changed since the
        last one it took in, or everything when it is further behind than the log keeps."""
        row = self.store.query_one(
            "SELECT (SELECT max(seq) FROM vector_changes) AS newest, through FROM vector_changes_pruned WHERE id = 1"
        )
        newest, pruned = (int(row["newest"] or 0), int(row["through"])) if row else (0, 0)
        seen = self._seen
        if newest == seen:
            self._synced = True
            return
        if seen is None or pruned > seen or newest - seen > max(PAGE_ROWS, len(self._ids)):
            self._load(newest)
            return
        # The rows as they are now (this read is newer than `newest`), for each id changed up to `newest`; an id
        # with no row was deleted. A change after `newest` read here already is read again next time: harmless.
        changed = self.store.query(
            """
            SELECT c.vector_id AS id, v.vector, v.metadata
            FROM (SELECT DISTINCT vector_id FROM vector_changes WHERE seq > ? AND seq <= ?) c
            LEFT JOIN vectors v ON v.id = c.vector_id
            """,
            (seen, newest),
        )
        # Read after the changes: had a prune taken some of them before that read, it shows here.
        after = self.store.query_one("SELECT through FROM vector_changes_pruned WHERE id = 1")
        if after is not None and int(after["through"]) > seen:
            self._load(newest)
            return
        self._remove([r["id"] for r in changed if r["vector"] is None])
        self._put([r for r in changed if r["vector"] is not None])
        if self._columns.distinct > 4 * len(self._ids) + 4096:  # values of rows long gone: keep only live ones
            self._columns = self._compacted()
        self._seen, self._synced, self._masks = newest, True, {}

    def _load(self, newest: int) -> None:
        """Read every row again, a page at a time, into a fresh matrix (the old one is let go first)."""
        self._ids, self._slots, self._masks, self._dimension = [], {}, {}, 0
        self._buffer = np.zeros((0, 0), dtype=np.float32)
        self._columns = MetadataColumns()
        count = self.store.query_one("SELECT count(*) FROM vectors")
        expected = int(count[0]) if count else 0
        sql, after = PAGES[self.store.dialect]
        while rows := self.store.query(sql, (after, PAGE_ROWS)):
            after = rows[-1]["page"]
            if not self._ids and rows:
                self._dimension = len(rows[0]["vector"]) // 4
                self._reserve(expected)
            self._put(rows)  # a row deleted and written again while this reads may come twice: it keeps one slot
        self._seen, self._synced = newest, True

    def _reserve(self, rows: int) -> None:
        """Room for `rows` vectors and some more; the room beyond the rows written costs no memory until used."""
        capacity = self._buffer.shape[0]
        if rows <= capacity and self._buffer.shape[1] == self._dimension:
            return
        capacity = rows + rows // 4 + 1024
        grown = np.empty((capacity, self._dimension), dtype=np.float32)
        if self._buffer.shape[1] == self._dimension:
            kept = len(self._ids)
            grown[:kept] = self._buffer[:kept]
        else:
            kept = 0
        self._buffer = grown
        self._columns.resize(capacity, kept)

    def _put(self, rows: Sequence[sqlite3.Row]) -> None:
        """Write these rows (id, vector, metadata) into the memory copy: in their slot when known, else at the end."""
        if not rows:
            return
        if not self._ids:
            self._dimension = len(rows[0]["vector"]) // 4
        data = b"".join(r["vector"] for r in rows)
        if len(data) != len(rows) * self._dimension * 4:
            raise ConfigurationError(
                f"the local vector index holds vectors of more than one size (this one has {self._dimension}); "
                "re-ingest with `sophia-mcp kb reindex`"
            )
        block = np.frombuffer(data, dtype=np.float32).reshape(len(rows), self._dimension)
        metadata = [json.loads(r["metadata"]) for r in rows]
        slots = []
        for r in rows:
            slot = self._slots.get(r["id"])
            if slot is None:
                slot = self._slots[r["id"]] = len(self._ids)
                self._ids.append(r["id"])
            slots.append(slot)
        self._reserve(len(self._ids))
        first = slots[0]
        if slots == list(range(first, first + len(slots))):
            self._buffer[first : first + len(slots)] = block
            self._columns.set_rows(first, metadata)
            return
        for j, (slot, one) in enumerate(zip(slots, metadata, strict=True)):
            self._buffer[slot] = block[j]
            self._columns.set_rows(slot, [one])

    def _remove(self, ids: Sequence[str]) -> None:
        """Take these ids out of the memory copy, each slot filled by the last row (the matrix stays dense)."""
        for vector_id in ids:
            slot = self._slots.pop(vector_id, None)
            if slot is None:
                continue
            last = len(self._ids) - 1
            if slot != last:
                moved = self._ids[last]
                self._buffer[slot] = self._buffer[last]
                self._columns.move(last, slot)
                self._ids[slot] = moved
                self._slots[moved] = slot
            else:
                self._columns.set_rows(last, [{}])
            self._ids.pop()

    def _compacted(self) -> MetadataColumns:
        columns = MetadataColumns(self._buffer.shape[0])
        columns.set_rows(0, self._columns.rows(np.arange(len(self._ids))))
        return columns

    # -- search -----------------------------------------------------------------------------------------

    def _mask(self, filter: Filter) -> tuple[npt.NDArray[np.bool_], int]:
        """Which rows pass `filter`, and how many; kept per filter until the vectors change."""
        key = dumps(filter)
        if key not in self._masks:
            if len(self._masks) >= MASKS_KEPT:
                self._masks.pop(next(iter(self._masks)))
            mask = self._columns.mask(filter, len(self._ids))
            self._masks[key] = mask, int(mask.sum())
        return self._masks[key]

    def query_now(
        self, vector: Vectors, top_k: int, filter: Filter | None = None, metadata: bool = True
    ) -> list[VectorMatch]:
        with self._lock:
            self._fresh()
            if not self._ids:
                return []
            query = np.asarray(vector, dtype=np.float32).reshape(-1)
            if query.shape[0] != self._dimension:
                raise InvalidInput(f"the query vector has {query.shape[0]} dimensions, the index {self._dimension}")
            scores = self._buffer[: len(self._ids)] @ query
            if filter:
                mask, passing = self._mask(filter)
                if not passing:
                    return []
                scores = np.where(mask, scores, -np.inf)
            k = min(top_k, int(np.isfinite(scores).sum()))
            if k <= 0:
                return []
            best = np.argpartition(-scores, k - 1)[:k]
            best = best[np.argsort(-scores[best])]
            ids, found = self._ids, zip(best.tolist(), scores[best].tolist(), strict=True)
            if not metadata:
                return [VectorMatch(ids[i], score, {}) for i, score in found]
            return [
                VectorMatch(ids[i], score, m) for (i, score), m in zip(found, self._columns.rows(best), strict=True)
            ]

    @property
    def answers_here(self) -> bool:
        """A small index answers a query here (a fraction of a millisecond, less than a trip to a worker thread); a
        large one, one that must load first, or one whose changes are read from a database server, in a worker."""
        return self.store.reads_here and self.size <= INLINE_VECTORS

    async def query(
        self, vector: Vectors, top_k: int, filter: Filter | None = None, *, metadata: bool = True
    ) -> list[VectorMatch]:
        """The `top_k` nearest vectors passing `filter`, best first (with their metadata unless `metadata` is False);
        here or in a worker thread (`answers_here`)."""
        if self.answers_here:
            return await self.store.read(self.query_now, vector, top_k, filter, metadata)
        return await self.store.run(self.query_now, vector, top_k, filter, metadata)


def _prune(conn: sqlite3.Connection) -> None:
    """Drop the oldest changes once the log holds more than `CHANGES_KEPT`, saying up to which one it dropped."""
    newest = int(conn.execute("SELECT coalesce(max(seq), 0) FROM vector_changes").fetchone()[0])
    through = int(conn.execute("SELECT through FROM vector_changes_pruned WHERE id = 1").fetchone()[0])
    cutoff = newest - CHANGES_KEPT
    if cutoff - through >= PRUNE_STEP:
        conn.execute("DELETE FROM vector_changes WHERE seq <= ?", (cutoff,))
        conn.execute("UPDATE vector_changes_pruned SET through = ? WHERE id = 1", (cutoff,))
