"""The Embedder and VectorIndex contracts, on the embedded backends and on OpenAI and Pinecone (their fakes)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sophia_mcp.adapters.local_embed import LocalEmbedder
from sophia_mcp.app.backends import build_services
from sophia_mcp.domain.vectors import matches
from sophia_mcp.errors import ConfigurationError, InvalidInput
from sophia_mcp.ports.embed import Embedder
from sophia_mcp.ports.vectors import VectorIndex
from sophia_mcp.store.database import Store
from sophia_mcp.store.vectors import LocalVectorIndex
from tests.fakes import openai as openai_fake
from tests.fakes import pinecone as pinecone_fake
from tests.fakes.server import serve
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio

TEXTS = [
    "Annual prepayment earns a ten percent discount on the subscription price.",
    "AppFolio undercuts us on price for portfolios under five hundred units.",
    "Implementation of a new property management client takes about two weeks.",
    "Late rent reminders go out by text message three days after the due date.",
]


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


@pytest.fixture
def pinecone_state() -> Iterator[tuple[str, pinecone_fake.PineconeState]]:
    state = pinecone_fake.PineconeState(dimension=LocalEmbedder.dimension)
    with serve(pinecone_fake.pinecone_app(state)) as url:
        yield url, state


def pinecone_settings(data_dir: Path, url: str, **more: Any) -> Any:
    section = {"backend": "pinecone", "api_key": pinecone_fake.API_KEY, "index_host": url, "namespace": "test",
               "retry_base_s": 0.01, "rate_per_second": 1000} | more  # fmt: skip
    return make_settings(data_dir, pinecone=section)


@pytest.fixture(params=["local", "pinecone"])
async def index(
    request: pytest.FixtureRequest, tmp_path: Path, pinecone_state: tuple[str, Any]
) -> AsyncIterator[VectorIndex]:
    settings = make_settings(tmp_path) if request.param == "local" else pinecone_settings(tmp_path, pinecone_state[0])
    services = build_services(settings)
    yield services.vectors
    await services.aclose()
    services.close()


@pytest.fixture(params=["local", "openai"])
async def any_embedder(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Embedder]:
    if request.param == "local":
        yield LocalEmbedder()
        return
    with serve(openai_fake.openai_app(openai_fake.OpenAIState())) as url:
        settings = make_settings(
            tmp_path, embeddings={"backend": "openai"}, openai={"api_key": openai_fake.API_KEY, "base_url": f"{url}/v1"}
        )
        services = build_services(settings)
        yield services.embedder
        await services.aclose()
        services.close()


async def test_contract_embeddings_are_unit_rows_in_order(any_embedder: Embedder) -> None:
    vectors = await any_embedder.embed([*TEXTS, "  "])
    assert vectors.shape == (5, any_embedder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:4], axis=1), 1.0, atol=1e-5)
    assert not vectors[4].any()
    again = await any_embedder.embed([TEXTS[2], TEXTS[0]])
    assert np.allclose(again[0], vectors[2], atol=1e-6) and np.allclose(again[1], vectors[0], atol=1e-6)
    assert (await any_embedder.embed([])).shape[0] == 0


async def test_contract_index_search_filters_deletes_and_refuses_another_model(
    index: VectorIndex, embedder: LocalEmbedder
) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot be searched together|dimension"):
        await index.bind(embedder.model, embedder.dimension)
        await index.bind("another-model", embedder.dimension)
    kinds = ["pricing", "competitor", "playbook", "playbook"]
    metadata = [{"type": k, "tags": [k, "all"], "date": 20260100 + i} for i, k in enumerate(kinds)]
    await index.upsert([f"c{i}" for i in range(4)], embedder.embed_now(TEXTS), metadata)  # type: ignore[arg-type]
    query = embedder.embed_now(["how long does onboarding take"])[0]
    best = await index.query(query, 2)
    assert best[0].id == "c2" and len(best) == 2 and best[0].score >= best[1].score
    assert best[0].metadata["type"] == "playbook"
    bare = await index.query(query, 2, metadata=False)  # what a search asks for: ids and scores alone
    assert [(m.id, m.score, m.metadata) for m in bare] == [(m.id, m.score, {}) for m in best]
    only_pricing = await index.query(query, 5, {"type": "pricing"})
    assert [m.id for m in only_pricing] == ["c0"]
    recent = await index.query(query, 5, {"date": {"$gte": 20260102}, "tags": {"$in": ["playbook"]}})
    assert {m.id for m in recent} == {"c2", "c3"}
    await index.delete(["c2"])
    assert "c2" not in {m.id for m in await index.query(query, 4)}
    assert len(await index.query(query, 10)) == 3


async def test_local_index_refusals_and_a_second_process(tmp_path: Path, embedder: LocalEmbedder) -> None:
    store = Store(tmp_path / "sophia.db")
    index = LocalVectorIndex(store)
    with pytest.raises(ConfigurationError, match="bind"):
        await index.upsert(["x"], embedder.embed_now(["x"]), [{}])
    await index.bind(embedder.model, embedder.dimension)
    await index.upsert(["a", "b"], embedder.embed_now(TEXTS[:2]), [{}, {}])
    with pytest.raises(InvalidInput, match="dimensions"):
        await index.query(np.zeros(3, dtype=np.float32), 1)
    other = LocalVectorIndex(Store(tmp_path / "sophia.db"))  # another process on the same store
    assert {m.id for m in await other.query(embedder.embed_now(TEXTS[:1])[0], 5)} == {"a", "b"}
    await index.delete(["a"])
    assert {m.id for m in await other.query(embedder.embed_now(TEXTS[:1])[0], 5)} == {"b"}
    # Read here (on this thread's read-only connection) and in a worker thread by turns: each sees every change.
    vector = embedder.embed_now(TEXTS[:1])[0]
    await index.upsert(["c"], embedder.embed_now(TEXTS[2:3]), [{}])
    assert {m.id for m in await other.store.read(other.query_now, vector, 5)} == {"b", "c"}
    await index.delete(["b"])
    assert {m.id for m in await other.query(vector, 5)} == {"c"}
    await index.upsert(["d"], embedder.embed_now(TEXTS[3:4]), [{}])
    assert {m.id for m in await other.store.read(other.query_now, vector, 5)} == {"c", "d"}
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await other.store.read(other.store.query, "DELETE FROM vectors")


async def test_pinecone_refuses_vectors_of_another_size_and_a_bad_key(
    tmp_path: Path, pinecone_state: tuple[str, Any]
) -> None:
    url, state = pinecone_state
    services = build_services(pinecone_settings(tmp_path, url))
    try:
        with pytest.raises(ConfigurationError, match="holds 256-dimension vectors"):
            await services.vectors.bind("openai/text-embedding-3-small", 1536)
    finally:
        await services.aclose()
        services.close()
    wrong = build_services(pinecone_settings(tmp_path, url, api_key="pcsk_wrong"))
    try:
        with pytest.raises(ConfigurationError, match="Pinecone refused the credentials"):
            await wrong.vectors.bind("m", 256)
    finally:
        await wrong.aclose()
        wrong.close()
    assert all(body.get("namespace", "test") == "test" for _, body in state.requests if isinstance(body, dict))


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
        ({"date": 1}, {"date": {"$exists": True}}, True),
        ({}, {"date": {"$exists": True}}, False),
        ({}, {"date": {"$exists": False}}, True),
    ],
)
def test_filters_mean_what_pinecone_means(metadata: dict, flt: dict | None, expected: bool) -> None:
    assert matches(metadata, flt) is expected


def test_an_unknown_filter_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown filter operator"):
        matches({"a": 1}, {"a": {"$regex": "x"}})
