"""The local vector index shared by processes: each one's memory copy follows the others' writes, reading only
what changed, and answers exactly as a search of the stored rows would; on both engines (SQLite, and a real
PostgreSQL server, whose half is marked `postgres`)."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from sophia_mcp.domain.vectors import matches
from sophia_mcp.store import vectors as vectors_module
from sophia_mcp.store.database import Store
from sophia_mcp.store.engine import open_store
from sophia_mcp.store.vectors import LocalVectorIndex

pytestmark = pytest.mark.anyio

DIMENSION = 8

FILTERS: list[dict[str, Any] | None] = [
    None,
    {"type": "playbook"},
    {"type": {"$in": ["pricing", "faq"]}},
    {"tags": {"$in": ["t1"]}, "date": {"$gte": 3}},
    {"$or": [{"type": "faq"}, {"date": {"$lt": 2}}]},
    {"date": {"$exists": False}},
    {"type": {"$ne": "playbook"}},
]


class Reads:
    """The reads a store makes, spied through its public methods: each statement and how many rows it returned."""

    def __init__(self, store: Store) -> None:
        self.seen: list[tuple[str, int]] = []
        query, query_one = store.query, store.query_one

        def spied_query(sql: str, params: Any = ()) -> Any:
            rows = query(sql, params)
            self.seen.append((" ".join(sql.split()), len(rows)))
            return rows

        def spied_query_one(sql: str, params: Any = ()) -> Any:
            row = query_one(sql, params)
            self.seen.append((" ".join(sql.split()), int(row is not None)))
            return row

        store.query = spied_query  # type: ignore[method-assign]
        store.query_one = spied_query_one  # type: ignore[method-assign]

    def vector_rows(self) -> int:
        """Rows read from the vectors table (blobs and metadata) since the last call."""
        rows = sum(n for sql, n in self.seen if "vector, " in sql or "v.vector" in sql)
        self.seen.clear()
        return rows


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def two(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[LocalVectorIndex, LocalVectorIndex]]:
    """Two indexes on one store (a SQLite file, or a PostgreSQL database) through their own connections, as two
    processes have."""
    url = SecretStr(request.getfixturevalue("postgres_url")) if request.param == "postgresql" else None
    stores = [open_store(tmp_path / "sophia.db", url), open_store(tmp_path / "sophia.db", url)]
    first, second = (LocalVectorIndex(s) for s in stores)
    await first.bind("test-model", DIMENSION)
    yield first, second
    for store in stores:
        store.close()


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def metadata_for(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["playbook", "pricing", "faq"])
    metadata: dict[str, Any] = {"type": kind, "tags": rng.sample(["t1", "t2", "t3"], rng.randint(0, 2))}
    if rng.random() < 0.7:
        metadata["date"] = rng.randint(0, 5)
    return metadata


def expected(store: Store, query: np.ndarray, flt: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """Every stored vector passing `flt`, best first: the search done by hand on the stored rows."""
    rows = [r for r in store.query("SELECT id, vector, metadata FROM vectors") if matches(json.loads(r[2]), flt)]
    scored = sorted(rows, key=lambda r: -float(np.frombuffer(r[1], dtype=np.float32) @ query))
    return [(r[0], json.loads(r[2])) for r in scored]


async def answers(index: LocalVectorIndex, query: np.ndarray, flt: dict[str, Any] | None) -> list[tuple[str, Any]]:
    return [(m.id, m.metadata) for m in await index.query(query, 10_000, flt)]


async def test_a_commit_to_another_table_reads_no_vector_and_keeps_the_answers(
    two: tuple[LocalVectorIndex, LocalVectorIndex],
) -> None:
    first, second = two
    rng = np.random.default_rng(1)
    await first.upsert([f"v{i}" for i in range(50)], unit(rng, 50), [{"type": "faq", "n": i} for i in range(50)])
    reads = Reads(first.store)
    query = unit(rng, 1)[0]
    before = await answers(first, query, {"type": "faq"})
    assert reads.vector_rows() == 50 and len(before) == 50
    second.store.execute("INSERT INTO health_alert_state VALUES ('c', 'k', 1, '{}', 'call', 'now', NULL, 'now')")
    assert await answers(first, query, {"type": "faq"}) == before
    assert reads.vector_rows() == 0  # the commit moved SQLite's data_version, not the vectors


async def test_another_connections_writes_are_seen_reading_only_their_rows(
    two: tuple[LocalVectorIndex, LocalVectorIndex],
) -> None:
    first, second = two
    rng = np.random.default_rng(2)
    vectors = unit(rng, 40)
    await first.upsert([f"v{i}" for i in range(40)], vectors, [{"type": "faq"} for _ in range(40)])
    reads = Reads(first.store)
    assert len(await first.query(vectors[0], 100)) == 40
    reads.vector_rows()
    # Another process ingests a document: its new chunks in, the old version's out, one chunk changed in place.
    await second.upsert(
        ["new0", "new1", "v5"], np.stack([vectors[0], vectors[1], -vectors[5]]), [{"type": "playbook"}] * 3
    )
    await second.delete(["v0", "v1", "missing"])
    got = await first.query(vectors[0], 100)
    assert reads.vector_rows() == 5  # the three written and the two deleted (read as gone), not all forty
    assert got[0].id == "new0" and got[0].metadata == {"type": "playbook"}
    assert {m.id for m in got} == {f"v{i}" for i in range(2, 40)} | {"new0", "new1"}
    assert {m.id for m in await first.query(vectors[5], 100, {"type": "playbook"})} == {"new0", "new1", "v5"}
    assert (await first.query(-vectors[5], 1))[0].id == "v5"


@pytest.mark.parametrize("kept", [None, 30])
async def test_two_indexes_answer_as_the_stored_rows_do_through_any_mix_of_writes(
    two: tuple[LocalVectorIndex, LocalVectorIndex], monkeypatch: pytest.MonkeyPatch, kept: int | None
) -> None:
    """Upserts of new and existing ids, deletes, whole rewrites and unrelated commits from both connections, in a
    seeded random order; with `kept`, a change log so short that an index left behind must reload whole."""
    if kept is not None:
        monkeypatch.setattr(vectors_module, "CHANGES_KEPT", kept)
        monkeypatch.setattr(vectors_module, "PRUNE_STEP", 5)
        monkeypatch.setattr(vectors_module, "PAGE_ROWS", 7)
    first = two[0]
    rng, pick = np.random.default_rng(3), random.Random(3)
    ids = [f"v{i}" for i in range(60)]
    for step in range(120):
        writer = pick.choice(two)
        action = pick.random()
        if action < 0.5:
            chosen = pick.sample(ids, pick.randint(1, 8))
            await writer.upsert(chosen, unit(rng, len(chosen)), [metadata_for(pick) for _ in chosen])
        elif action < 0.8:
            await writer.delete(pick.sample(ids, pick.randint(1, 8)))
        elif action < 0.9:
            writer.store.execute(
                "INSERT INTO health_alert_state VALUES (?, 'k', 1, '{}', 'c', 'n', NULL, 'n')", (step,)
            )
        else:
            await writer.delete(ids)
        if pick.random() < 0.4:  # sometimes one index falls behind by several writes
            continue
        query, flt = unit(rng, 1)[0], pick.choice(FILTERS)
        truth = expected(first.store, query, flt)
        for index in two:
            assert await answers(index, query, flt) == truth, (step, flt)


async def test_metadata_comes_back_as_written_and_filters_mean_what_pinecone_means(
    two: tuple[LocalVectorIndex, LocalVectorIndex],
) -> None:
    first, second = two
    written: list[dict[str, Any]] = [
        {"type": "a", "n": 1, "tags": ["x", "y"]},
        {"type": "b", "n": 1.0, "flag": True},
        {"n": True, "tags": []},
        {"type": "a", "date": 5, "tags": ["y"]},
        {},
    ]
    ids = [f"m{i}" for i in range(len(written))]
    await first.upsert(ids, unit(np.random.default_rng(4), len(ids)), written)
    query = np.ones(DIMENSION, dtype=np.float32)
    stored = {m.id: m.metadata for m in await second.query(query, 10)}
    assert stored == dict(zip(ids, written, strict=True))
    assert [type(stored[i]["n"]) for i in ids[:3]] == [int, float, bool]  # 1, 1.0 and True stay three values
    for flt in [
        {"type": "a"}, {"type": {"$ne": "a"}}, {"tags": {"$in": ["y"]}}, {"tags": {"$nin": ["y"]}},
        {"date": {"$gt": 4, "$lte": 5}}, {"date": {"$lt": 5}}, {"$or": [{"type": "b"}, {"date": 5}]},
        {"date": {"$exists": True}}, {"flag": {"$exists": False}}, {"n": 1}, {"$and": [{"type": "a"}, {"n": 1}]},
    ]:  # fmt: skip
        want = {i for i, m in zip(ids, written, strict=True) if matches(m, flt)}
        assert {m.id for m in await second.query(query, 10, flt)} == want, flt
    with pytest.raises(ValueError, match="unknown filter operator"):
        await second.query(query, 10, {"nowhere": {"$regex": "x"}})
