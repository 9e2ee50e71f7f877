"""The knowledge base's documents and chunks in the store, with SQLite's FTS5 full-text index over the chunks.

Whatever holds the vectors (the local index or Pinecone), the documents, their chunk texts and the full-text
index live here, behind the `Documents` repository: a document and its chunks are written in one transaction, and
deleting a document deletes its chunks and their full-text rows with it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any, NamedTuple

from sophia_mcp.analysis.documents import Chunk
from sophia_mcp.domain.cursors import decode_cursor, encode_cursor
from sophia_mcp.domain.knowledge import ChunkRecord, DocumentFilter, DocumentInfo
from sophia_mcp.domain.times import iso, parse_iso, utcnow
from sophia_mcp.errors import ServiceUnavailable
from sophia_mcp.store.database import Store
from sophia_mcp.store.runs import process_alive

WORD = re.compile(r"\w+", re.UNICODE)
INLINE_CHUNKS = 2000  # up to this many chunks full-text ranking runs in the calling thread, past it in a worker
POSTINGS = 1000  # most chunks one full-text ranking scores over a large base (bm25 costs per chunk it scores)
ALL_OF = 8  # the rarest words a chunk must all hold to come first
MERGE_PAGES = 2000  # most full-text index pages (about 4 KB each) one merge after a batch of ingests writes
log = logging.getLogger(__name__)


def _document(row: sqlite3.Row) -> DocumentInfo:
    return DocumentInfo(
        id=row["id"],
        title=row["title"],
        source=row["source"],
        type=row["type"],
        format=row["format"],
        tags=json.loads(row["tags"]),
        date=date.fromisoformat(row["doc_date"]) if row["doc_date"] else None,
        content_hash=row["content_hash"],
        chars=row["chars"],
        chunk_count=row["chunk_count"],
        embedding_model=row["embedding_model"],
        created_at=parse_iso(row["created_at"]),
        updated_at=parse_iso(row["updated_at"]),
    )


def _chunk(row: sqlite3.Row, id_column: str = "id") -> ChunkRecord:
    return ChunkRecord(
        id=row[id_column],
        document_id=row["document_id"],
        seq=row["seq"],
        section=row["section"],
        text=row["text"],
        start_char=row["start_char"],
        end_char=row["end_char"],
    )


# A document carrying any of the tags, from its tags' JSON list: each engine's own way.
TAGS = {
    "sqlite": "EXISTS (SELECT 1 FROM json_each({alias}.tags) WHERE value IN ({marks}))",
    "postgresql": "EXISTS (SELECT 1 FROM json_array_elements_text({alias}.tags::json) AS t (value) "
    "WHERE value IN ({marks}))",
}
# The full-text match and rank of chunks (alias c) on PostgreSQL: the chunks' generated tsvector (section weighted
# above text, as bm25's weights are on SQLite) against a web-search-style query of the words, parsed once in FROM
# (alias q). Written into the match and the rank instead, a prepared statement's generic plan (psycopg prepares a
# statement run five times) parses it again for every row ranked: a ranking of 6-word sentence queries took twice
# the time (12.3 -> 6.2 ms p50 at 10k chunks).
PG_QUERY = "websearch_to_tsquery('english', ?) AS q (query)"
PG_MATCH = "c.fts @@ q.query"
PG_RANK = "ts_rank(c.fts, q.query) DESC, c.pk"
# How many chunks hold each lexeme, from the planner's statistics of the tsvector column (ANALYZE, which autovacuum
# runs after bulk writes, keeps its most common lexemes): counting the postings of a common word visits up to
# `POSTINGS` rows of the heap (a GIN index holds no row it could count alone), most of the full-text time at 100k
# chunks. Of those held by more than `POSTINGS` chunks (the bound passed first) we take the estimate.
PG_COMMON = """
    common (lexeme) AS (
        SELECT e.lexeme FROM pg_stats s
        JOIN pg_class t ON t.oid = 'chunks'::regclass
        CROSS JOIN unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e (lexeme, freq)
        WHERE s.schemaname = current_schema() AND s.tablename = 'chunks' AND s.attname = 'fts'
            AND e.lexeme IS NOT NULL AND e.freq * greatest(t.reltuples, 0) > ?
    )
"""
# One word's postings: the estimate (capped as a count is) when it is one common lexeme; else counted (a word of
# several lexemes, `p_0`, is a phrase, rarer than its lexemes).
PG_HELD = """
    SELECT coalesce(
        (SELECT ? FROM unnest(tsvector_to_array(to_tsvector('english', ?))) AS w (lexeme)
            HAVING count(*) = 1 AND bool_and(w.lexeme IN (SELECT lexeme FROM common))),
        ({count})
    )
"""


def filter_sql(flt: DocumentFilter | None, alias: str = "d", dialect: str = "sqlite") -> tuple[str, list[Any]]:
    """A WHERE fragment (and its parameters) restricting documents to the filter, in the engine's `dialect`."""
    where, params = ["1 = 1"], []
    if flt and flt.types:
        where.append(f"{alias}.type IN ({', '.join('?' for _ in flt.types)})")
        params += flt.types
    if flt and flt.tags:
        where.append(TAGS[dialect].format(alias=alias, marks=", ".join("?" for _ in flt.tags)))
        params += flt.tags
    if flt and flt.date_from:
        where.append(f"{alias}.doc_date >= ?")
        params.append(flt.date_from.isoformat())
    if flt and flt.date_to:
        where.append(f"{alias}.doc_date <= ?")
        params.append(flt.date_to.isoformat())
    return " AND ".join(where), params


# Words that carry no subject: left out of full-text queries (unless a query has nothing else), since they match
# most chunks and make ranking them cost the most while adding nothing to it.
STOPWORDS = frozenset(
    """a about after all also am an and any are as at be been before being but by can could did do does doing
    for from had has have having he her here hers him his how i if in into is it its itself me more most my no
    nor not of off on once only or other our ours out over own same she should so some such than that the
    their theirs them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours""".split()
)


def query_words(text: str) -> list[str]:
    """The words of free text a full-text query looks for, in order and once each: those that say something (all
    of them if none does)."""
    words = [w for w in WORD.findall(text.lower()) if len(w) > 1 or w.isdigit()]
    return list(dict.fromkeys([w for w in words if w not in STOPWORDS] or words))


def fts_query(words: Sequence[str], operator: str = "OR") -> str:
    """A safe FTS5 query for the words: each quoted, joined by `operator` (OR: any may match, bm25 ranks)."""
    return f" {operator} ".join(f'"{w}"' for w in words)


def websearch_query(words: Sequence[str], operator: str = "OR") -> str:
    """The same for PostgreSQL's `websearch_to_tsquery`: each word quoted, `or` between them (any may match) or
    nothing (all must)."""
    joiner = " or " if operator == "OR" else " "
    return joiner.join(f'"{w}"' for w in words)


class Documents:
    """The documents and chunks repository. Reads of a few keys run here, in the calling thread (`Store.read`);
    whole documents, writes and full-text ranking over a large base go to the store's worker thread."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads --------------------------------------------------------------------------------------------

    def _get(self, document_id: str) -> DocumentInfo | None:
        row = self.store.query_one("SELECT * FROM documents WHERE id = ?", (document_id,))
        return _document(row) if row else None

    async def get(self, document_id: str) -> DocumentInfo | None:
        """The document, or None if there is none."""
        return await self.store.read(self._get, document_id)

    def _page(
        self, flt: DocumentFilter | None, limit: int, cursor: str | None
    ) -> tuple[list[DocumentInfo], str | None]:
        where, params = filter_sql(flt, dialect=self.store.dialect)
        if cursor:
            where += " AND d.id > ?"
            params.append(decode_cursor(cursor, "documents", str)[0])
        rows = self.store.query(f"SELECT * FROM documents d WHERE {where} ORDER BY d.id LIMIT ?", [*params, limit + 1])
        documents = [_document(r) for r in rows[:limit]]
        return documents, encode_cursor("documents", documents[-1].id) if len(rows) > limit else None

    async def page(
        self, flt: DocumentFilter | None, limit: int, cursor: str | None
    ) -> tuple[list[DocumentInfo], str | None]:
        """A page of documents passing the filter, by id, and the next page's cursor (None on the last)."""
        return await self.store.read(self._page, flt, limit, cursor, keys=limit)

    def _versions(self, document_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        if not document_ids:
            return {}
        marks = ", ".join("?" for _ in document_ids)
        rows = self.store.query(
            f"SELECT id, content_hash, chunk_count FROM documents WHERE id IN ({marks})", list(document_ids)
        )
        return {r["id"]: (r["content_hash"], r["chunk_count"]) for r in rows}

    async def versions(self, document_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Document id -> (content hash, chunk count) of the version stored now, for those that exist."""
        return await self.store.read(self._versions, document_ids, keys=len(document_ids))

    def _chunks(self, document_id: str, start: int, limit: int) -> list[ChunkRecord]:
        rows = self.store.query(
            "SELECT * FROM chunks WHERE document_id = ? AND seq >= ? ORDER BY seq LIMIT ?", (document_id, start, limit)
        )
        return [_chunk(r) for r in rows]

    async def chunks(self, document_id: str, start: int = 0, limit: int = -1) -> list[ChunkRecord]:
        """The document's chunks in order, from position `start`; at most `limit` of them (-1: all)."""
        keys = limit if limit >= 0 else sys.maxsize  # all of a document's chunks may be many
        return await self.store.read(self._chunks, document_id, start, limit, keys=keys)

    def _passages(self, chunk_ids: Sequence[str]) -> dict[str, Passage]:
        if not chunk_ids:
            return {}
        marks = ", ".join("?" for _ in chunk_ids)
        rows = self.store.query(
            f"""
            SELECT c.id, c.document_id, d.title, d.source, d.type, c.section, c.seq, c.text, d.chunk_count
            FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})
            """,
            list(chunk_ids),
        )
        return {row[0]: Passage(*row) for row in rows}

    async def passages(self, chunk_ids: Sequence[str]) -> dict[str, Passage]:
        """Chunk id -> the chunk as a search hit quotes it, for those that exist."""
        return await self.store.read(self._passages, chunk_ids, keys=len(chunk_ids))

    def _ranked(
        self, deadline: float, query: tuple[list[str], str], flt: DocumentFilter | None, limit: int
    ) -> list[str] | None:
        """Chunk ids matching the words of `query` (joined by its operator, OR or AND), best first (bm25 on SQLite,
        ts_rank on PostgreSQL); None if the deadline passes first."""
        where, params = filter_sql(flt, dialect=self.store.dialect)
        if self.store.dialect == "postgresql":
            words = websearch_query(*query)
            sql = f"""
                SELECT c.id FROM {PG_QUERY} CROSS JOIN chunks c JOIN documents d ON d.id = c.document_id
                WHERE {PG_MATCH} AND {where} ORDER BY {PG_RANK} LIMIT ?
            """
            answer = self.store.query_within(deadline - time.perf_counter(), sql, [words, *params, limit])
            return None if answer is None else [r["id"] for r in answer[1]]
        if params:
            sql = f"""
                SELECT c.id FROM chunks_fts
                JOIN chunks c ON c.pk = chunks_fts.rowid JOIN documents d ON d.id = c.document_id
                WHERE chunks_fts MATCH ? AND {where} ORDER BY bm25(chunks_fts, 2.0, 1.0) LIMIT ?
            """
        else:  # unfiltered: ranked inside the full-text index first, joined after (a third faster)
            sql = """
                SELECT c.id FROM (
                    SELECT rowid, bm25(chunks_fts, 2.0, 1.0) AS score FROM chunks_fts WHERE chunks_fts MATCH ?
                    ORDER BY score LIMIT ?
                ) f JOIN chunks c ON c.pk = f.rowid ORDER BY f.score
            """
        answer = self.store.query_within(deadline - time.perf_counter(), sql, [fts_query(*query), *params, limit])
        return None if answer is None else [r["id"] for r in answer[1]]

    def _rarest(self, deadline: float, words: list[str]) -> list[tuple[int, str]] | None:
        """The words found in some chunk with how many chunks hold each (counted up to just past `POSTINGS`),
        rarest first; None if the deadline passes first. One statement for all the words (on PostgreSQL one trip
        to the server, not one per word)."""
        if self.store.dialect == "postgresql":
            counted = f"SELECT 1 FROM {PG_QUERY} CROSS JOIN chunks c WHERE {PG_MATCH} LIMIT ?"
            count = PG_HELD.format(count=f"SELECT count(*) FROM ({counted}) held")
            terms = [websearch_query([word]) for word in words]
            sql = f"WITH {PG_COMMON} SELECT " + ", ".join(f"({count}) AS held{n}" for n in range(len(words)))
            per_word = [(POSTINGS + 1, word, term, POSTINGS + 1) for word, term in zip(words, terms, strict=True)]
            return self._held(deadline, words, sql, [POSTINGS, *(p for ps in per_word for p in ps)])
        count = "SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)"
        terms = [fts_query([word]) for word in words]
        sql = "SELECT " + ", ".join(f"({count}) AS held{n}" for n in range(len(words)))
        return self._held(deadline, words, sql, [p for term in terms for p in (term, POSTINGS + 1)])

    def _held(self, deadline: float, words: list[str], sql: str, params: list[Any]) -> list[tuple[int, str]] | None:
        answer = self.store.query_within(deadline - time.perf_counter(), sql, params)
        if answer is None:
            return None
        held = [int(n) for n in answer[1][0]]
        return sorted((n, word) for n, word in zip(held, words, strict=True) if n)

    def _lexical(self, text: str, flt: DocumentFilter | None, limit: int, budget_s: float, chunks: int) -> list[str]:
        words = query_words(text)
        if not words:
            return []
        deadline = time.perf_counter() + budget_s
        if chunks <= POSTINGS:  # any of the words, all ranked: cheap at this size
            found = self._ranked(deadline, (words, "OR"), flt, limit)
        else:
            found = self._rare_first(deadline, words, flt, limit)
        if found is None:
            log.info("full-text ranking for %r ran out of its %.0f ms; the vectors rank alone", text, budget_s * 1000)
            return []
        return found

    def _rare_first(
        self, deadline: float, words: list[str], flt: DocumentFilter | None, limit: int
    ) -> list[str] | None:
        """Over a large base ranking every chunk holding any word costs most with common words, which say least: the
        chunks holding all the rarest words first, then, if too few, those holding any of the rarest words that
        together fill at most `POSTINGS` chunks (always the rarest one)."""
        counted = self._rarest(deadline, words)
        if counted is None:
            return None
        if not counted:
            return []
        rarest = [w for _, w in counted]
        found = self._ranked(deadline, (rarest[:ALL_OF], "AND"), flt, limit)
        if found is None or len(found) >= limit or len(rarest) == 1:
            return found
        some: list[str] = []
        postings = 0
        for held, word in counted:
            if some and postings + held > POSTINGS:
                break
            some.append(word)
            postings += held
        more = self._ranked(deadline, (some, "OR"), flt, limit)
        if more is None:
            if found:
                log.info("full-text ranking ran out of its time after the chunks holding all the rarest words")
            return found or None
        seen = set(found)
        return [*found, *(c for c in more if c not in seen)][:limit]

    def _chunks_held(self) -> int:
        row = self.store.query_one("SELECT max(pk) FROM chunks")
        return int(row[0] or 0) if row else 0

    async def held(self) -> int:
        """About how many chunks there are (the highest row number: never fewer), found in one index lookup."""
        return await self.store.read(self._chunks_held)

    def ranks_here(self, held: int) -> bool:
        """Whether full-text ranking over `held` chunks runs here, in the calling thread: a small base in a local file
        is ranked quicker than a trip to a worker thread, a large one (or one on a database server) there."""
        return self.store.reads_here and held <= INLINE_CHUNKS

    async def lexical(
        self, text: str, flt: DocumentFilter | None, limit: int, budget_s: float = 0.05, held: int | None = None
    ) -> list[str]:
        """Chunk ids matching the words of `text`, best (bm25) first: over a base of more than `POSTINGS` chunks,
        those holding all its rarest words, then those holding any of its rarer words (a word in most chunks says
        little and costs most to rank). Nothing if that takes over `budget_s`: then the vectors rank alone. Ranked
        here or in a worker thread (`ranks_here`); `held` is what `held()` said, if the caller asked already."""
        chunks = await self.held() if held is None else held
        if self.ranks_here(chunks):
            return await self.store.read(self._lexical, text, flt, limit, budget_s, chunks)
        return await self.store.run(self._lexical, text, flt, limit, budget_s, chunks)

    def ids_and_titles(self, typed: str, limit: int) -> list[str]:
        """Ids of documents whose id starts with, or title holds, `typed` (for completions, inside a store read)."""
        rows = self.store.query(
            "SELECT id FROM documents WHERE id LIKE ? OR title LIKE ? ORDER BY title LIMIT ?",
            (f"{typed}%", f"%{typed}%", limit),
        )
        return [r["id"] for r in rows]

    def types(self, typed: str, limit: int) -> list[str]:
        """Document types starting with `typed` (for completions, inside a store read)."""
        rows = self.store.query(
            "SELECT DISTINCT type FROM documents WHERE type LIKE ? ORDER BY type LIMIT ?", (f"{typed}%", limit)
        )
        return [r["type"] for r in rows]

    # -- writes -------------------------------------------------------------------------------------------

    def _save(self, document: DocumentInfo, chunks: Sequence[Chunk], written: int | None) -> Removal | None:
        with self.store.transaction() as conn:
            replaced = conn.execute(
                "SELECT content_hash, chunk_count FROM documents WHERE id = ?", (document.id,)
            ).fetchone()
            conn.execute("DELETE FROM chunks WHERE document_id = ?", (document.id,))
            conn.execute(
                """
                INSERT INTO documents (id, title, source, type, format, tags, doc_date, content_hash, chars,
                    chunk_count, embedding_model, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET title = excluded.title, source = excluded.source,
                    type = excluded.type, format = excluded.format, tags = excluded.tags,
                    doc_date = excluded.doc_date, content_hash = excluded.content_hash, chars = excluded.chars,
                    chunk_count = excluded.chunk_count, embedding_model = excluded.embedding_model,
                    updated_at = excluded.updated_at
                """,
                (
                    document.id, document.title, document.source, document.type, document.format,
                    json.dumps(document.tags), document.date.isoformat() if document.date else None,
                    document.content_hash, document.chars, document.chunk_count, document.embedding_model,
                    iso(document.created_at), iso(document.updated_at),
                ),
            )  # fmt: skip
            conn.executemany(
                """
                INSERT INTO chunks (id, document_id, seq, section, text, start_char, end_char)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    (chunk_id(document.id, c.seq), document.id, c.seq, c.section, c.text, c.start_char, c.end_char)
                    for c in chunks
                ],
            )
            conn.execute("DELETE FROM pending_vectors WHERE id = ?", (written,))
            if replaced is None:
                return None
            return _note_removal(conn, document.id, replaced["content_hash"], replaced["chunk_count"])

    async def save(self, document: DocumentInfo, chunks: Sequence[Chunk], written: int | None = None) -> Removal | None:
        """Replace the document and all its chunks, in one transaction, settling the note `written` (from
        `start_writing`, when its vectors were noted) and noting the replaced version's vectors for removal: that
        removal, unless they need none."""
        return await self.store.run(self._save, document, chunks, written)

    def _delete(self, document_id: str) -> tuple[bool, Removal | None]:
        with self.store.transaction() as conn:
            row = conn.execute(
                "SELECT content_hash, chunk_count FROM documents WHERE id = ?", (document_id,)
            ).fetchone()
            if row is None:
                return False, None
            conn.execute("DELETE FROM documents WHERE id = ?", (document_id,))
            return True, _note_removal(conn, document_id, row["content_hash"], row["chunk_count"])

    def _merge_index(self) -> None:
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('merge', ?)", (-MERGE_PAGES,))

    async def merge_index(self) -> None:
        """Merge the full-text index's segments into one, writing at most `MERGE_PAGES` pages (FTS5's 'merge'; what
        is left is merged by the next). Each ingest commits a segment of its own and a ranking reads every one: the
        demo's 17 documents leave 7, and merged its ranking takes under half the time (67 -> 25 us). The merge holds
        the write lock while it writes, so it runs after a batch of ingests, not after each (FTS5's automerge keeps a
        few segments per level meanwhile). PostgreSQL's GIN index takes each insert into its tree at once (fastupdate
        off): nothing is left to merge."""
        if self.store.dialect == "sqlite":
            await self.store.run(self._merge_index)

    async def delete(self, document_id: str) -> tuple[bool, Removal | None]:
        """Delete the document (its chunks go with it), noting its vectors for removal: whether it existed, and
        the removal (unless someone is writing the same version's vectors again)."""
        return await self.store.run(self._delete, document_id)

    # -- vectors being written or removed ------------------------------------------------------------------
    # The vector index may be another service (Pinecone), outside the store's transactions: vectors are noted
    # here before they are written or removed, and the note goes when the store agrees with the index again.
    # What a process that died midway noted is taken up by the next one (`claim_leftovers`).

    def _start_writing(self, document_id: str, content_hash: str, chunk_count: int) -> int:
        pid, owner = current_owner()
        with self.store.transaction() as conn:
            for row in _notes(conn, document_id, content_hash, "removing"):
                if _alive(row):
                    raise ServiceUnavailable(
                        "The previous vectors of this document are being removed right now; ingest it again in a moment"
                    )
                conn.execute("DELETE FROM pending_vectors WHERE id = ?", (row["id"],))  # ours to overwrite
            return int(
                conn.execute(
                    """
                    INSERT INTO pending_vectors (document_id, content_hash, chunk_count, kind, pid, owner, created_at)
                    VALUES (?, ?, ?, 'writing', ?, ?, ?) RETURNING id
                    """,
                    (document_id, content_hash, chunk_count, pid, owner, iso(utcnow())),
                ).fetchone()[0]
            )

    async def start_writing(self, document_id: str, content_hash: str, chunk_count: int) -> int:
        """Note that this version's vectors are about to be written (the note's id). Refused while a live process
        is removing the same vectors, which would remove them after they are written."""
        return await self.store.run(self._start_writing, document_id, content_hash, chunk_count)

    async def settle(self, note: int) -> None:
        """The noted vectors are where the store says (written and saved, or removed)."""
        await self.store.run(self.store.execute, "DELETE FROM pending_vectors WHERE id = ?", (note,))

    async def release(self, note: int) -> None:
        """This process gives the noted vectors up (it failed midway): the next sweep takes them."""
        await self.store.run(
            self.store.execute, "UPDATE pending_vectors SET pid = NULL, owner = NULL WHERE id = ?", (note,)
        )

    def _left_behind(self) -> bool:
        return any(not _alive(r) for r in self.store.query("SELECT pid, owner FROM pending_vectors"))

    def _claim_leftovers(self) -> list[Removal]:
        claimed = []
        with self.store.transaction() as conn:
            for row in conn.execute("SELECT * FROM pending_vectors").fetchall():
                if _alive(row):
                    continue
                conn.execute("DELETE FROM pending_vectors WHERE id = ?", (row["id"],))
                removal = _note_removal(conn, row["document_id"], row["content_hash"], row["chunk_count"])
                if removal is not None:
                    claimed.append(removal)
        log.info("removing the vectors of %d document versions that processes left midway", len(claimed))
        return claimed

    async def claim_leftovers(self) -> list[Removal]:
        """The vectors that processes which died (or gave up) midway left, claimed by this one for removal; those
        that are the document's current version, or that a live process is writing again, need none."""
        if not await self.store.read(self._left_behind):  # the usual answer: a read, and no write
            return []
        return await self.store.run(self._claim_leftovers)


class Passage(NamedTuple):
    """A chunk as a search hit quotes and cites it: only what the hit shows, read without building its document."""

    chunk_id: str
    document_id: str
    title: str
    source: str
    type: str
    section: str
    seq: int
    text: str
    chunk_count: int


class Removal(NamedTuple):
    """Vectors of one document version noted for removal by this process."""

    note: int
    document_id: str
    content_hash: str
    chunk_count: int


_owner: tuple[int, str] = (0, "")


def current_owner() -> tuple[int, str]:
    """This process, as notes name it: its id, and a token of its own (another process may get the same id)."""
    global _owner
    if _owner[0] != os.getpid():
        _owner = (os.getpid(), uuid.uuid4().hex)
    return _owner


def _alive(note: sqlite3.Row) -> bool:
    """Whether the process that holds the note still runs (this one counts only under its own token)."""
    pid, owner = current_owner()
    if note["pid"] is None:
        return False
    if note["pid"] == pid:
        return bool(note["owner"] == owner)
    return process_alive(note["pid"])


def _notes(conn: sqlite3.Connection, document_id: str, content_hash: str, kind: str) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT * FROM pending_vectors WHERE document_id = ? AND content_hash = ? AND kind = ?",
        (document_id, content_hash, kind),
    ).fetchall()


def _note_removal(conn: sqlite3.Connection, document_id: str, content_hash: str, chunk_count: int) -> Removal | None:
    """Note a version's vectors for removal by this process, unless they need none: the version is the document's
    current one, or a live process is writing them again (and its own note covers them should it fail)."""
    current = conn.execute("SELECT content_hash FROM documents WHERE id = ?", (document_id,)).fetchone()
    if current is not None and current["content_hash"] == content_hash:
        return None
    if any(_alive(row) for row in _notes(conn, document_id, content_hash, "writing")):
        return None
    pid, owner = current_owner()
    note = conn.execute(
        """
        INSERT INTO pending_vectors (document_id, content_hash, chunk_count, kind, pid, owner, created_at)
        VALUES (?, ?, ?, 'removing', ?, ?, ?) RETURNING id
        """,
        (document_id, content_hash, chunk_count, pid, owner, iso(utcnow())),
    ).fetchone()[0]
    return Removal(int(note), document_id, content_hash, chunk_count)


def chunk_id(document_id: str, seq: int) -> str:
    return f"{document_id}#{seq}"
