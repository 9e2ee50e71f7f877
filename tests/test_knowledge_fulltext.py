"""Full-text ranking over a knowledge base larger than one ranking scores in full: the commonest words of a query
are left out of the candidates, and the answers still hold what the query asks for; on both engines (SQLite's FTS5
and bm25, PostgreSQL's tsvector and ts_rank)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from sophia_mcp.analysis.documents import Chunk
from sophia_mcp.app.backends import build_services
from sophia_mcp.app.services import Services
from sophia_mcp.domain.knowledge import DocumentFilter, DocumentInfo
from sophia_mcp.domain.times import utcnow
from sophia_mcp.store.documents import POSTINGS
from sophia_mcp.workflows.knowledge import search
from tests.support.settings import make_settings

pytestmark = pytest.mark.anyio

PER_DOCUMENT = 50
COMMON = "the customer team reviews the renewal plan with the account owner every quarter"


def document(number: int, kind: str) -> DocumentInfo:
    now = utcnow()
    return DocumentInfo(
        id=f"note-{number}", title=f"Account note {number}", source="test", type=kind, format="text", tags=[],
        date=None, content_hash=f"{number:016x}", chars=0, chunk_count=PER_DOCUMENT, embedding_model="none",
        created_at=now, updated_at=now,
    )  # fmt: skip


async def large_base(tmp_path: Path, store: dict[str, Any], special: dict[tuple[int, int], str]) -> Services:
    """More chunks than one full-text ranking scores, each holding the common words; `special` puts other text in
    a few (by document and position). Written as ingestion writes them, without vectors: full text alone ranks."""
    # The full-text budget is a time; on a loaded machine it could run out and leave these tests nothing to rank.
    services = build_services(make_settings(tmp_path / "kb", knowledge={"lexical_budget_ms": 60_000}, **store))
    documents = (POSTINGS + PER_DOCUMENT) // PER_DOCUMENT + 1
    for number in range(documents):
        chunks = [
            Chunk(seq=seq, section=f"Account note {number}", text=special.get((number, seq), f"{COMMON} ({seq})."),
                  start_char=0, end_char=0)
            for seq in range(PER_DOCUMENT)
        ]  # fmt: skip
        await services.documents.save(document(number, "playbook" if number % 2 else "meeting_note"), chunks)
    return services


async def test_a_rare_word_among_common_ones_finds_its_chunks_first(
    tmp_path: Path, store_settings: dict[str, Any]
) -> None:
    services = await large_base(
        tmp_path,
        store_settings,
        {
            (3, 7): f"{COMMON}; the escrow clause needs legal review.",
            (11, 2): "An escrow clause appears in the master agreement.",
            (12, 4): "Escrow alone, with nothing else in common.",
        },
    )
    try:
        hits = await search(services, "how does the customer team review the escrow clause with the account owner")
        meetings = await search(
            services, "customer team escrow clause account owner", DocumentFilter(types=["meeting_note"])
        )
    finally:
        services.close()
    assert [h.chunk_id for h in hits[:3]] == ["note-3#7", "note-11#2", "note-12#4"]
    assert all(h.lexical_rank for h in hits)
    assert meetings[0].chunk_id == "note-12#4" and {h.type for h in meetings} == {"meeting_note"}


async def test_a_query_of_common_words_only_ranks_the_chunks_holding_them_all(
    tmp_path: Path, store_settings: dict[str, Any]
) -> None:
    services = await large_base(
        tmp_path, store_settings, {(5, 5): "The renewal plan, again.", (6, 6): "A quarterly review."}
    )
    try:
        hits = await search(services, "renewal plan account owner quarter", limit=5)
    finally:
        services.close()
    assert len(hits) == 5 and all(h.lexical_rank for h in hits)
    assert all(COMMON in h.text for h in hits)


@pytest.mark.postgres
async def test_on_postgresql_the_planner_statistics_stand_in_for_counting_common_words(
    tmp_path: Path, postgres_url: str
) -> None:
    """After ANALYZE the common words' postings come from the statistics, not counted: the answers stay the same,
    a stopword of PostgreSQL's own (no lexeme) still holds nothing, and a word of several lexemes (a phrase) is
    still counted."""
    store = {"store": {"url": postgres_url}}
    services = await large_base(
        tmp_path,
        store,
        {
            (3, 7): f"{COMMON}; the escrow clause needs legal review, see p_0.",
            (11, 2): "An escrow clause appears in the master agreement.",
            (12, 4): "Escrow alone, with nothing else in common.",
        },
    )
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ANALYZE chunks")
    try:
        hits = await search(services, "how does the customer team review the escrow clause with the account owner")
        phrase = await search(services, "customer team renewal p_0")
        stopword = await search(services, "themselves")
    finally:
        services.close()
    assert [h.chunk_id for h in hits[:3]] == ["note-3#7", "note-11#2", "note-12#4"]
    assert phrase[0].chunk_id == "note-3#7"
    assert stopword == []


def gin_pending_pages(url: str) -> int:
    """The pages of the chunks' full-text index still in its pending list (unsorted: each word a search looks up
    reads every one)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        row = conn.execute("SELECT pending_pages FROM pgstatginindex('chunks_fts')").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.postgres
async def test_on_postgresql_chunks_ingested_go_straight_into_the_full_text_index(
    tmp_path: Path, postgres_url: str
) -> None:
    """Ingests leave nothing in the GIN index's pending list for searches to read through (autovacuum would merge
    it only after a fifth of the table is new), and a store migrated from a version that let them merges what was
    left."""
    services = await large_base(tmp_path, {"store": {"url": postgres_url}}, {})
    try:
        assert gin_pending_pages(postgres_url) == 0
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("ALTER INDEX chunks_fts SET (fastupdate = on)")  # as the index was before version 19
            conn.execute("UPDATE chunks SET text = text || ' again'")
            conn.execute("UPDATE schema_version SET version = 18")
        assert gin_pending_pages(postgres_url) > 0
    finally:
        services.close()
    again = build_services(make_settings(tmp_path / "kb", store={"url": postgres_url}))
    try:
        hits = await search(again, "customer renewal plan again")
    finally:
        again.close()
    assert gin_pending_pages(postgres_url) == 0
    assert hits and all(h.text.endswith("again") for h in hits)
