"""The embedded vector index: vectors in the store, searched exactly (one matrix product) from a memory copy.

Vectors are rows of the store (float32 blobs with JSON metadata), so several processes share them safely; each
process keeps a matrix of them in memory and reloads it when the database changed under it (SQLite's
`data_version`) or when it wrote itself. Exact search keeps recall at 1.0; at 100k chunks of 256 floats the
product takes a few milliseconds. The index remembers the model and dimension that built it and refuses others.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

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


class LocalVectorIndex:
    name = "local"

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._ids: list[str] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._metadata: list[Metadata] = []
        self._masks: dict[str, npt.NDArray[np.bool_]] = {}

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
        self._version = None

    async def upsert(self, ids: list[str], vectors: Vectors, metadata: list[Metadata]) -> None:
        await self.store.run(self._upsert, ids, vectors, metadata)

    def _delete(self, ids: Sequence[str]) -> None:
        with self.store.transaction() as conn:
            conn.executemany("DELETE FROM vectors WHERE id = ?", [(i,) for i in ids])
        self._version = None

    async def delete(self, ids: list[str]) -> None:
        await self.store.run(self._delete, ids)

    @property
    def size(self) -> int:
        """Vectors in the memory copy; before the first load or after a write, "many" (a load may be slow)."""
        return len(self._ids) if self._version is not None else sys.maxsize

    # -- search -----------------------------------------------------------------------------------------

    def _fresh(self) -> None:
        """Reload the memory copy if the store changed since it was taken."""
        version = self.store.data_version()
        if version == self._version:
            return
        rows = self.store.query("SELECT id, vector, metadata FROM vectors ORDER BY id")
        self._ids = [r["id"] for r in rows]
        self._metadata = [json.loads(r["metadata"]) for r in rows]
        self._matrix = (
            np.vstack([np.frombuffer(r["vector"], dtype=np.float32) for r in rows])
            if rows else np.zeros((0, 0), dtype=np.float32)
        )  # fmt: skip
        self._version = version
        self._masks = {}

    def _mask(self, filter: Filter) -> npt.NDArray[np.bool_]:
        """Which rows pass `filter`; kept per filter until the store changes, since a few filters recur."""
        key = dumps(filter)
        if key not in self._masks:
            if len(self._masks) >= MASKS_KEPT:
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = np.fromiter(
                (matches(m, filter) for m in self._metadata), dtype=bool, count=len(self._ids)
            )
        return self._masks[key]

    def query_now(self, vector: Vectors, top_k: int, filter: Filter | None = None) -> list[VectorMatch]:
        with self._lock:
            self._fresh()
            if not self._ids:
                return []
            query = np.asarray(vector, dtype=np.float32).reshape(-1)
            if query.shape[0] != self._matrix.shape[1]:
                raise InvalidInput(
                    f"the query vector has {query.shape[0]} dimensions, the index {self._matrix.shape[1]}"
                )
            scores = self._matrix @ query
            if filter:
                scores = np.where(self._mask(filter), scores, -np.inf)
            k = min(top_k, int(np.isfinite(scores).sum()))
            if k <= 0:
                return []
            best = np.argpartition(-scores, k - 1)[:k]
            best = best[np.argsort(-scores[best])]
            return [VectorMatch(self._ids[i], float(scores[i]), self._metadata[i]) for i in best]

    async def query(self, vector: Vectors, top_k: int, filter: Filter | None = None) -> list[VectorMatch]:
        """The `top_k` nearest vectors passing `filter`, best first. A small index answers here (a fraction of a
        millisecond, less than a trip to a worker thread); a large one, or one that must load first, in a worker."""
        if self.size <= INLINE_VECTORS:
            return await self.store.read(self.query_now, vector, top_k, filter)
        return await self.store.run(self.query_now, vector, top_k, filter)
