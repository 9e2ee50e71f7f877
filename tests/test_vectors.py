"""The local embedding model and the local vector index (groundwork of the knowledge server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sophia_mcp.adapters.local_embed import LocalEmbedder
from sophia_mcp.adapters.local_vectors import LocalVectorIndex
from sophia_mcp.errors import ConfigurationError, InvalidInput
from sophia_mcp.ports.vectors import matches
from sophia_mcp.store import Store

pytestmark = pytest.mark.anyio

TEXTS = [
    "Annual prepayment earns a ten percent discount on the subscription price.",
    "AppFolio undercuts us on price for portfolios under five hundred units.",
    "Implementation of a new property management client takes about two weeks.",
    "Late rent reminders go out by text message three days after the due date.",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder()


def test_embeddings_are_unit_rows_in_order_and_need_no_network(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed_now([*TEXTS, ""])
    assert vectors.shape == (5, embedder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:4], axis=1), 1.0, atol=1e-5)
    assert not vectors[4].any()  # an empty text has no direction: a zero row, not NaN
    assert np.array_equal(embedder.embed_now(TEXTS[:1])[0], vectors[0])
    assert embedder.embed_now([]).shape == (0, embedder.dimension)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what discount do we give for paying yearly", 0),
        ("which competitor is cheaper for small portfolios", 1),
        ("how long does onboarding take", 2),
        ("when are tenants reminded about late rent", 3),
    ],
)
def test_a_question_lands_nearest_its_answer(embedder: LocalEmbedder, question: str, expected: int) -> None:
    scores = embedder.embed_now(TEXTS) @ embedder.embed_now([question])[0]
    assert int(np.argmax(scores)) == expected, scores


async def test_index_search_filters_deletes_and_refuses_another_model(tmp_path: Path, embedder: LocalEmbedder) -> None:
    store = Store(tmp_path / "sophia.db")
    index = LocalVectorIndex(store)
    with pytest.raises(ConfigurationError, match="bind"):
        await index.upsert(["x"], embedder.embed_now(["x"]), [{}])
    await index.bind(embedder.model, embedder.dimension)
    await index.bind(embedder.model, embedder.dimension)  # the same model again is fine
    with pytest.raises(ConfigurationError, match="cannot be searched together"):
        await index.bind("text-embedding-3-small", 1536)
    kinds = ["pricing", "competitor", "playbook", "playbook"]
    metadata = [{"type": k, "tags": [k, "all"], "date": 20260100 + i} for i, k in enumerate(kinds)]
    await index.upsert([f"c{i}" for i in range(4)], embedder.embed_now(TEXTS), metadata)  # type: ignore[arg-type]
    query = embedder.embed_now(["how long does onboarding take"])[0]
    best = await index.query(query, 2)
    assert best[0].id == "c2" and len(best) == 2 and best[0].score >= best[1].score
    assert best[0].metadata["type"] == "playbook"
    only_pricing = await index.query(query, 5, {"type": "pricing"})
    assert [m.id for m in only_pricing] == ["c0"]
    recent = await index.query(query, 5, {"date": {"$gte": 20260102}, "tags": {"$in": ["playbook"]}})
    assert {m.id for m in recent} == {"c2", "c3"}
    with pytest.raises(InvalidInput, match="dimensions"):
        await index.query(np.zeros(3, dtype=np.float32), 1)

    other = LocalVectorIndex(Store(tmp_path / "sophia.db"))  # another process on the same store
    assert [m.id for m in await other.query(query, 1)] == ["c2"]
    await index.delete(["c2"])
    assert "c2" not in {m.id for m in await other.query(query, 4)}


@pytest.mark.parametrize(
    ("metadata", "flt", "expected"),
    [
        ({"type": "a"}, {"type": "a"}, True),
        ({"type": "a"}, {"type": {"$ne": "a"}}, False),
        ({"tags": ["x", "y"]}, {"tags": {"$in": ["y"]}}, True),
        ({"tags": ["x", "y"]}, {"tags": {"$nin": ["y"]}}, False),
        ({"date": 5}, {"date": {"$gt": 4, "$lte": 5}}, True),
        ({"date": 5}, {"date": {"$lt": 5}}, False),
        ({}, {"type": {"$ne": "a"}}, True),
        ({}, {"type": "a"}, False),
        ({"type": "a", "date": 1}, {"$or": [{"type": "b"}, {"date": 1}]}, True),
        ({"type": "a"}, None, True),
    ],
)
def test_filters_mean_what_pinecone_means(metadata: dict, flt: dict | None, expected: bool) -> None:
    assert matches(metadata, flt) is expected


def test_an_unknown_filter_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown filter operator"):
        matches({"a": 1}, {"a": {"$regex": "x"}})
