"""The knowledge base's documents and chunks in the store, with SQLite's FTS5 full-text index over the chunks.

Whatever holds the vectors (the local index or Pinecone), the documents, their chunk texts and the full-text
index live here: a document and its chunks are written in one transaction, and deleting a document deletes its
chunks and their full-text rows with it.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Sequence
from datetime import date
from typing import Any

from sophia_mcp.analysis.documents import Chunk
from sophia_mcp.cursors import decode_cursor, encode_cursor
from sophia_mcp.ports.knowledge import ChunkRecord, DocumentFilter, DocumentInfo
from sophia_mcp.store import Store, iso, parse_iso

WORD = re.compile(r"\w+", re.UNICODE)
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


def filter_sql(flt: DocumentFilter | None, alias: str = "d") -> tuple[str, list[Any]]:
    """A WHERE fragment (and its parameters) restricting documents to the filter."""
    where, params = ["1 = 1"], []
    if flt and flt.types:
        where.append(f"{alias}.type IN ({', '.join('?' for _ in flt.types)})")
        params += flt.types
    if flt and flt.tags:
        where.append(
            f"EXISTS (SELECT 1 FROM json_each({alias}.tags) WHERE value IN ({', '.join('?' for _ in flt.tags)}))"
        )
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


def fts_query(text: str) -> str | None:
    """A safe FTS5 query for free text: every word that says something quoted, any of them may match (bm25
    ranks the rest)."""
    words = [w for w in WORD.findall(text.lower()) if len(w) > 1 or w.isdigit()]
    telling = [w for w in words if w not in STOPWORDS] or words
    return " OR ".join(f'"{w}"' for w in dict.fromkeys(telling)) or None


class LocalDocuments:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- reads --------------------------------------------------------------------------------------------

    def get(self, document_id: str) -> DocumentInfo | None:
        row = self.store.query_one("SELECT * FROM documents WHERE id = ?", (document_id,))
        return _document(row) if row else None

    def page(self, flt: DocumentFilter | None, limit: int, cursor: str | None) -> tuple[list[DocumentInfo], str | None]:
        where, params = filter_sql(flt)
        if cursor:
            where += " AND d.id > ?"
            params.append(decode_cursor(cursor, "documents", str)[0])
        rows = self.store.query(f"SELECT * FROM documents d WHERE {where} ORDER BY d.id LIMIT ?", [*params, limit + 1])
        documents = [_document(r) for r in rows[:limit]]
        return documents, encode_cursor("documents", documents[-1].id) if len(rows) > limit else None

    def versions(self, document_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """Document id -> (content hash, chunk count) of the version stored now, for those that exist."""
        if not document_ids:
            return {}
        marks = ", ".join("?" for _ in document_ids)
        rows = self.store.query(
            f"SELECT id, content_hash, chunk_count FROM documents WHERE id IN ({marks})", list(document_ids)
        )
        return {r["id"]: (r["content_hash"], r["chunk_count"]) for r in rows}

    def chunks(self, document_id: str, start: int = 0, limit: int = -1) -> list[ChunkRecord]:
        """The document's chunks in order, from position `start`; at most `limit` of them (-1: all)."""
        rows = self.store.query(
            "SELECT * FROM chunks WHERE document_id = ? AND seq >= ? ORDER BY seq LIMIT ?", (document_id, start, limit)
        )
        return [_chunk(r) for r in rows]

    def chunks_by_id(self, chunk_ids: Sequence[str]) -> dict[str, tuple[ChunkRecord, DocumentInfo]]:
        if not chunk_ids:
            return {}
        marks = ", ".join("?" for _ in chunk_ids)
        rows = self.store.query(
            f"""
            SELECT c.id AS chunk_id, c.document_id, c.seq, c.section, c.text, c.start_char, c.end_char, d.*
            FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id IN ({marks})
            """,
            list(chunk_ids),
        )
        out = {}
        for row in rows:
            out[row["chunk_id"]] = (_chunk(row, "chunk_id"), _document(row))
        return out

    def lexical(self, text: str, flt: DocumentFilter | None, limit: int, budget_s: float = 0.05) -> list[str]:
        """Chunk ids matching the words of `text`, best (bm25) first; none if ranking them takes over `budget_s`
        (words common to a large share of many thousand chunks), and then the vectors rank alone."""
        query = fts_query(text)
        if query is None:
            return []
        where, params = filter_sql(flt)
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
        answer = self.store.query_within(budget_s, sql, [query, *params, limit])
        if answer is None:
            log.info("full-text ranking for %r ran out of its %.0f ms; the vectors rank alone", text, budget_s * 1000)
            return []
        return [r["id"] for r in answer[1]]

    def ids_and_titles(self, typed: str, limit: int) -> list[str]:
        rows = self.store.query(
            "SELECT id FROM documents WHERE id LIKE ? OR title LIKE ? ORDER BY title LIMIT ?",
            (f"{typed}%", f"%{typed}%", limit),
        )
        return [r["id"] for r in rows]

    def types(self, typed: str, limit: int) -> list[str]:
        rows = self.store.query(
            "SELECT DISTINCT type FROM documents WHERE type LIKE ? ORDER BY type LIMIT ?", (f"{typed}%", limit)
        )
        return [r["type"] for r in rows]

    # -- writes -------------------------------------------------------------------------------------------

    def save(self, document: DocumentInfo, chunks: Sequence[Chunk]) -> None:
        """Replace the document and all its chunks, in one transaction."""
        with self.store.transaction() as conn:
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

    def delete(self, document_id: str) -> bool:
        with self.store.transaction() as conn:
            return conn.execute("DELETE FROM documents WHERE id = ?", (document_id,)).rowcount > 0


def chunk_id(document_id: str, seq: int) -> str:
    return f"{document_id}#{seq}"
