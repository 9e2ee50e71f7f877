"""The knowledge base: ingest files and text, delete them, and search them (vectors and full text, fused).

Ingesting parses, chunks and embeds first, writing nothing; then the new vectors go to the index under ids
that name the content (so they never overwrite the vectors of the version being replaced), then the document
and its chunks are written in one store transaction, and only then are the old version's vectors removed. A
failure at any point leaves the previous version whole. The same content ingested again is a no-op.

The index may be another service, outside the store's transactions, so vectors are noted in the store before
they are written or removed (`Documents.start_writing`); a process killed midway leaves its note, and the
next ingestion, deletion or first search of a process removes what it left (`sweep_vectors`), so leftovers never
take a search's candidate places for long.
"""

from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import anyio.to_thread
from pydantic import Field, TypeAdapter

from sophia_mcp.adapters.document_worker import read_document
from sophia_mcp.adapters.local_tokenizer import local_tokenizer
from sophia_mcp.analysis.documents import FORMAT_OF_SUFFIX, chunk_text
from sophia_mcp.app.services import Services
from sophia_mcp.domain.knowledge import DocumentFilter, DocumentInfo, Format, SearchHit
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.times import utcnow
from sophia_mcp.domain.vectors import Metadata
from sophia_mcp.errors import InvalidInput, NotFound, SophiaError
from sophia_mcp.ports.progress import Progress
from sophia_mcp.store.database import Store
from sophia_mcp.store.documents import Documents, Passage, Removal, chunk_id
from sophia_mcp.workflows.runs import start_run

log = logging.getLogger(__name__)

A = TypeVar("A")
B = TypeVar("B")

RRF_K = 60  # reciprocal-rank fusion: a hit's score is the sum of 1 / (RRF_K + rank) over the rankings it is in
CANDIDATES = 50  # hits taken from each ranking before fusing
_HITS = TypeAdapter(list[SearchHit])
STAGES = 5  # progress: reading, chunking, embedding, indexing, saving


class IngestReport(Model):
    run_id: str | None = Field(description="The ingestion run; null when nothing needed doing.")
    status: Literal["new", "updated", "unchanged"]
    document: DocumentInfo


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _vector_metadata(document: DocumentInfo) -> Metadata:
    metadata: Metadata = {"document_id": document.id, "type": document.type, "tags": list(document.tags)}
    if document.date:
        metadata["date"] = int(document.date.strftime("%Y%m%d"))
    return metadata


def vector_filter(flt: DocumentFilter | None) -> dict[str, Any] | None:
    """The document filter in the vector index's (Pinecone's) terms."""
    if flt is None:
        return None
    out: dict[str, Any] = {}
    if flt.types:
        out["type"] = {"$in": flt.types}
    if flt.tags:
        out["tags"] = {"$in": flt.tags}
    dates = {}
    if flt.date_from:
        dates["$gte"] = int(flt.date_from.strftime("%Y%m%d"))
    if flt.date_to:
        dates["$lte"] = int(flt.date_to.strftime("%Y%m%d"))
    if dates:
        out["date"] = dates
    return out or None


def vector_id(document_id: str, content_hash: str, seq: int) -> str:
    return f"{document_id}#{content_hash[:10]}.{seq}"


async def ingest(
    services: Services,
    data: bytes,
    *,
    document_id: str,
    source: str,
    fmt: Format,
    title: str | None = None,
    type: str | None = None,
    tags: list[str] | None = None,
    doc_date: date | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest one document's bytes (parsed as `fmt`) under `document_id`; with no `type`, a document keeps the type
    it had (a new one is a `document`)."""
    documents = services.documents
    settings = services.settings.knowledge
    embedder, index = services.embedder, services.vectors
    if progress is not None:
        await progress(0, STAGES, f"reading {Path(source).name}")
    parsed = await read_document(
        data, fmt, time_limit_s=settings.parse_timeout_s, max_unpacked=int(settings.max_unpacked_mb * 1e6)
    )
    if not parsed.text.strip():
        raise InvalidInput(f"{source} holds no text to ingest")
    name = (title or parsed.title or Path(source).stem or document_id).strip()
    tags = sorted({t.strip() for t in tags or [] if t.strip()})
    previous = await documents.get(document_id)
    type = type or (previous.type if previous else "document")
    content_hash = _hash(parsed.text, name, type, tags, doc_date, embedder.model)
    if previous is not None and previous.content_hash == content_hash:
        return IngestReport(run_id=None, status="unchanged", document=previous)

    async with start_run(services.runs, "ingest_document", document_id, {"source": source, "type": type}) as run:

        async def report(done: int, message: str) -> None:
            if progress is not None:
                await progress(done, STAGES, message)

        await report(1, f"cutting {name} into chunks")
        chunks = await run.step(
            "chunk",
            lambda: anyio.to_thread.run_sync(
                chunk_text, parsed.text, name, local_tokenizer(), settings.chunk_tokens, settings.min_chunk_tokens,
                settings.overlap_tokens,
            ),
            lambda c: {"chunks": len(c)},
        )  # fmt: skip
        if not chunks:
            raise InvalidInput(f"{source} holds only headings; there is nothing to search in it")
        await report(2, f"embedding {plural(len(chunks), 'chunk')}")
        vectors = await run.step("embed", lambda: embedder.embed([f"{c.section}\n\n{c.text}" for c in chunks]))
        now = utcnow()
        document = DocumentInfo(
            id=document_id, title=name, source=source, type=type, format=parsed.format, tags=tags, date=doc_date,
            content_hash=content_hash, chars=len(parsed.text), chunk_count=len(chunks),
            embedding_model=embedder.model, created_at=previous.created_at if previous else now, updated_at=now,
        )  # fmt: skip
        ids = [vector_id(document_id, content_hash, c.seq) for c in chunks]
        await report(3, "indexing")

        async def index_vectors() -> None:
            await index.bind(embedder.model, embedder.dimension)
            await index.upsert(ids, vectors, [_vector_metadata(document) | {"seq": c.seq} for c in chunks])

        await sweep_vectors(services)
        written = await documents.start_writing(document_id, content_hash, len(chunks))
        try:
            await run.step("index vectors", index_vectors)
            await report(4, "saving")
            removal = await run.step("save document", lambda: documents.save(document, chunks, written))
        except BaseException:
            with anyio.CancelScope(shield=True):  # also when the call was cancelled
                try:
                    await documents.release(written)
                    await sweep_vectors(services)  # what was written goes, unless it was saved after all
                except Exception as exc:  # the failure being raised says more; the note stays for a later sweep
                    kind = exc.__class__.__name__
                    log.warning("cannot take back the vectors of %s yet (%s: %s)", document_id, kind, exc)
            raise
        if removal is not None:
            await run.step(
                "remove the old version's vectors", lambda: _remove(services, removal), lambda done: {"done": done}
            )
        await report(STAGES, "done")
        run.output = {"document_id": document_id, "chunks": len(chunks)}
    return IngestReport(run_id=run.id, status="updated" if previous else "new", document=document)


async def ingested_batch(services: Services) -> None:
    """What follows a batch of ingests (the demo's documents, a folder): the full-text index merged, so searches
    read one segment rather than one per document."""
    await services.documents.merge_index()


def _shown(path: str) -> str:
    """A path as a refusal echoes it: quoted, and cut short if long."""
    return repr(path if len(path) <= 200 else path[:200] + "…")


def allowed_path(
    path: str,
    roots: Sequence[Path],
    max_bytes: int,
    *,
    narrow_to: Sequence[Path] = (),
    name_folders: bool = False,
) -> tuple[Path, Format]:
    """The real file `path` names, if it is under one of `roots` (and, when `narrow_to` is given, under one of
    those too), not too big, and of a format we read. A path outside them and a path that does not exist are
    refused in the same words, so a refusal never tells which paths exist; `name_folders` lists the folders in
    it, for a caller on this machine."""
    if not roots:
        raise InvalidInput(
            "No folder is open for ingestion: the server's SOPHIA_KNOWLEDGE__ROOTS is not set (a client's roots "
            "cannot open one); send the text with ingest_text instead"
        )
    if "\x00" in path:
        raise InvalidInput("The path holds a NUL character, which no file name can; send the file's path as it is")
    real_roots = [root.resolve() for root in roots]
    narrower = [root.resolve() for root in narrow_to]
    where = "one of the folders open for ingestion (SOPHIA_KNOWLEDGE__ROOTS)"
    if name_folders:
        where += f": {', '.join(str(r) for r in real_roots)}"
        if narrower:
            where += f"; and inside a root the client shares: {', '.join(str(r) for r in narrower)}"
    refusal = InvalidInput(f"{_shown(path)} is not a file that may be ingested: name a file inside {where}")
    try:
        given = Path(path).expanduser()
    except RuntimeError:  # ~user of no such user
        raise refusal from None
    candidates = [given] if given.is_absolute() else [root / given for root in roots]
    for candidate in candidates:
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, unreadable, a loop, too long: all alike to the caller
            continue
        inside = any(real.is_relative_to(root) for root in real_roots)
        if not inside or (narrower and not any(real.is_relative_to(root) for root in narrower)):
            continue
        if not real.is_file():
            raise InvalidInput(f"{_shown(path)} is not a file")
        fmt = FORMAT_OF_SUFFIX.get(real.suffix.lower())
        if fmt is None:
            kinds = ", ".join(sorted(FORMAT_OF_SUFFIX))
            raise InvalidInput(f"{real.name} is not a format the knowledge base reads ({kinds})")
        size = real.stat().st_size
        if size > max_bytes:
            raise InvalidInput(f"{real.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB")
        return real, fmt
    raise refusal


async def ingest_file(
    services: Services,
    path: str,
    progress: Progress | None = None,
    *,
    narrow_to: Sequence[Path] = (),
    name_folders: bool = False,
    **meta: Any,
) -> IngestReport:
    """Ingest the file at `path`, from the folders SOPHIA_KNOWLEDGE__ROOTS opens (only they open any), narrowed to
    `narrow_to` when given (the roots of a client on this machine)."""
    settings = services.settings.knowledge
    max_bytes = int(settings.max_file_mb * 1e6)
    real, fmt = allowed_path(path, settings.roots, max_bytes, narrow_to=narrow_to, name_folders=name_folders)
    data = await anyio.to_thread.run_sync(real.read_bytes)
    document_id = file_document_id(real)
    return await ingest(services, data, document_id=document_id, source=str(real), fmt=fmt, progress=progress, **meta)


def file_document_id(real: Path) -> str:
    """The id a file's document has in the knowledge base: from its real path, so re-ingesting it replaces it."""
    return "doc-" + hashlib.sha256(str(real).encode()).hexdigest()[:16]


async def ingest_text(
    services: Services, title: str, text: str, document_id: str | None = None, **meta: Any
) -> IngestReport:
    document_id = document_id or "txt-" + hashlib.sha256(title.strip().casefold().encode()).hexdigest()[:16]
    fmt: Format = "markdown" if text.lstrip().startswith("#") else "text"
    return await ingest(
        services, text.encode(), document_id=document_id, source=f"text:{title}", fmt=fmt, title=title, **meta
    )


async def delete_document(services: Services, document_id: str) -> DocumentInfo:
    documents = services.documents
    document = await documents.get(document_id)
    if document is None:
        raise NotFound(f"No document with id {document_id!r}; list_documents shows the ids")
    await sweep_vectors(services)
    existed, removal = await documents.delete(document_id)  # searches stop finding it at once
    if not existed:
        raise NotFound(f"No document with id {document_id!r}; list_documents shows the ids")
    if removal is not None:
        await _remove(services, removal)
    return document


async def _remove(services: Services, removal: Removal) -> bool:
    """Remove a noted version's vectors from the index and settle the note; on failure give the note up to the
    next sweep (the store no longer refers to them, so searches pass them over meanwhile)."""
    ids = [vector_id(removal.document_id, removal.content_hash, seq) for seq in range(removal.chunk_count)]
    try:
        await services.vectors.delete(ids)
    except SophiaError as exc:
        log.warning(
            "could not remove %d vectors of %s yet (%s); a later sweep will", len(ids), removal.document_id, exc
        )
        await services.documents.release(removal.note)
        return False
    except BaseException:
        with anyio.CancelScope(shield=True):
            await services.documents.release(removal.note)
        raise
    await services.documents.settle(removal.note)
    return True


async def sweep_vectors(services: Services) -> int:
    """Remove the vectors that processes which died (or gave up) while writing or removing them left in the index,
    where they would take the candidate places of a search; how many document versions were cleared."""
    leftovers = await services.documents.claim_leftovers()
    return sum([await _remove(services, removal) for removal in leftovers])


# Stores whose leftovers this process swept before its first search.
_swept: weakref.WeakSet[Store] = weakref.WeakSet()


async def search(services: Services, query: str, flt: DocumentFilter | None = None, limit: int = 10) -> list[SearchHit]:
    """Vector and full-text search, fused by reciprocal rank; each hit cites its document, section and position."""
    if not query.strip():
        raise InvalidInput("The query is empty; ask in words what you are looking for")
    if services.store not in _swept:
        _swept.add(services.store)
        await sweep_vectors(services)
    vector = (await services.embedder.embed([query]))[0]
    budget = services.settings.knowledge.lexical_budget_ms / 1000

    async def by_vectors() -> list[str]:
        if not vector.any():  # no word the model knows: words alone
            return []
        return [m.id for m in await services.vectors.query(vector, CANDIDATES, vector_filter(flt), metadata=False)]

    held = await services.documents.held()

    async def by_words() -> list[str]:
        return await services.documents.lexical(query, flt, CANDIDATES, budget, held)

    if services.vectors.answers_here and services.documents.ranks_here(held):
        # A small local base answers both here, without waiting: one after the other costs less than a task group.
        vector_ids, lexical = await by_vectors(), await by_words()
    else:  # both at once: over a large base each takes milliseconds in a worker thread, or a request to a service
        vector_ids, lexical = await _both(by_vectors, by_words)
    hits, stale = await _fuse(services.documents, vector_ids, lexical, limit)
    if stale:  # vectors of no current version: most often one being written or removed now, which it leaves alone
        await sweep_vectors(services)
    return hits


async def _both(first: Callable[[], Awaitable[A]], second: Callable[[], Awaitable[B]]) -> tuple[A, B]:
    """The answers of two calls run concurrently; if one fails, the other is cancelled and its error raised as
    itself (not inside the task group's ExceptionGroup), so the server maps it as it maps any error."""
    answers: dict[int, Any] = {}
    failed: list[Exception] = []

    async def one(n: int, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            answers[n] = await call()
        except Exception as exc:
            failed.append(exc)
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        group.start_soon(one, 0, first)
        group.start_soon(one, 1, second)
    if failed:
        raise failed[0]
    return answers[0], answers[1]


async def _fuse(
    documents: Documents, vector_ids: list[str], lexical: list[str], limit: int
) -> tuple[list[SearchHit], bool]:
    """The full-text ranks beside the vector ranks, fused by reciprocal rank, as cited hits; and whether some
    vectors found were of no current document version."""
    chunk_of_vector = await _chunks_for_vectors(documents, vector_ids)
    vector_rank: dict[str, int] = {}
    for rank, vid in enumerate(vector_ids, 1):
        if (cid := chunk_of_vector.get(vid)) is not None:
            vector_rank[cid] = rank
    lexical_rank = {cid: rank for rank, cid in enumerate(lexical, 1)}
    # Each chunk's reciprocal ranks summed once, vector first (the same float sum, so the same order of hits).
    scores = {cid: 1 / (RRF_K + rank) for cid, rank in vector_rank.items()}
    for cid, rank in lexical_rank.items():
        scores[cid] = scores.get(cid, 0) + 1 / (RRF_K + rank)
    fused = sorted(scores, key=scores.__getitem__, reverse=True)[:limit]  # stable: ties keep their order
    found = await documents.passages(fused)
    hits = []
    for cid in fused:
        if (passage := found.get(cid)) is None:
            continue
        hits.append({
            "chunk_id": cid, "document_id": passage.document_id, "title": passage.title, "source": passage.source,
            "type": passage.type, "section": passage.section, "position": passage.seq, "text": passage.text,
            "score": round(scores[cid], 6), "vector_rank": vector_rank.get(cid), "lexical_rank": lexical_rank.get(cid),
            "citation": _citation(passage),
        })  # fmt: skip
    # The hits validated in one call of pydantic-core, not a model built in Python per hit.
    return _HITS.validate_python(hits), len(chunk_of_vector) < len(vector_ids)


def _citation(passage: Passage) -> str:
    section, seq = passage.section, passage.seq
    where = section.split(" › ", 1)[1] if " › " in section else ""
    return f"{passage.title}{', ' + where if where else ''} (chunk {seq + 1} of {passage.chunk_count})"


async def _chunks_for_vectors(documents: Documents, vector_ids: list[str]) -> dict[str, str]:
    """Vector id -> chunk id, for vectors whose document version is the current one."""
    named: list[tuple[str, str, str, int]] = []  # (vector id, document id, content hash prefix, position)
    for vid in vector_ids:
        document_id, _, rest = vid.partition("#")
        prefix, _, position = rest.partition(".")
        if position.isdigit():
            named.append((vid, document_id, prefix, int(position)))
    versions = await documents.versions(list(dict.fromkeys([n[1] for n in named])))
    out: dict[str, str] = {}
    for vid, document_id, prefix, number in named:
        version = versions.get(document_id)
        if version is not None and version[0].startswith(prefix) and number < version[1]:
            out[vid] = chunk_id(document_id, number)
    return out
