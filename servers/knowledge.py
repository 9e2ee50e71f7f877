"""The knowledge server: ingest documents and text, search them with citations, read and delete them."""

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlparse

from mcp.server.mcpserver import Context, ListRoots, Resolve
from mcp.server.mcpserver.prompts.base import Message, UserMessage
from mcp_types import ListRootsResult
from pydantic import Field

from sophia_mcp.app.services import Services
from sophia_mcp.domain.knowledge import ChunkRecord, DocumentFilter, DocumentInfo, SearchHit
from sophia_mcp.domain.model import Model
from sophia_mcp.errors import NotFound
from sophia_mcp.mcp.server import (
    DEMO_HINT,
    CalendarDate,
    Cursor,
    EmptyNote,
    SophiaServer,
    none_yet,
    offers,
    progress_of,
    server_of,
    services_of,
    tool_hints,
)
from sophia_mcp.settings import Settings
from sophia_mcp.workflows.knowledge import IngestReport, ingest_file, search
from sophia_mcp.workflows.knowledge import delete_document as delete_document_workflow
from sophia_mcp.workflows.knowledge import ingest_text as ingest_text_workflow

INSTRUCTIONS = """\
The revenue team's knowledge base: playbooks, product notes, competitor notes, pricing policy, meeting notes.
search_documents answers a question with the passages that answer it, each with a citation (document, section,
position) to quote. ingest_document adds a file (PDF, DOCX, HTML, Markdown, text) from a folder open for
ingestion; ingest_text adds text directly. list_documents, get_document and delete_document manage them."""

DOCUMENT_ID = r"^[A-Za-z0-9_.:-]{1,80}$"
DocumentId = Annotated[
    str, Field(pattern=DOCUMENT_ID, max_length=80, description="Document id, as list_documents or a search hit gives.")
]
DocType = Annotated[
    str, Field(pattern=r"^[a-z0-9_]{1,40}$", max_length=40, description="e.g. playbook, product_note, policy.")
]
Tag = Annotated[str, Field(min_length=1, max_length=40)]
Tags = Annotated[list[Tag], Field(max_length=20)]
NO_ROOTS: Any = None  # never used: the SDK fills a Resolve(...) parameter before the tool runs


class SearchResults(Model):
    query: str
    hits: list[SearchHit]


class DocumentPage(Model):
    documents: list[DocumentInfo]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")
    note: EmptyNote = None


class DocumentDetail(Model):
    document: DocumentInfo
    chunks: list[ChunkRecord] | None = Field(description="A page of the document's chunks, when asked for.")
    next_chunk: int | None = Field(
        default=None, description="Pass as `chunks_from` for the next page of chunks; null when none are left."
    )


async def _ask_roots(ctx: Context) -> ListRoots | None:
    """Resolver: ask a client on this machine (stdio) that offers roots for them; nothing is asked of a client
    elsewhere (HTTP, SSE), whose roots name folders on its own machine, or of one that offers none."""
    return ListRoots() if server_of(ctx).client_is_local and offers(ctx, "roots") else None


async def _client_roots(answer: Annotated[ListRootsResult | None, Resolve(_ask_roots)]) -> list[Path]:
    """Resolver: the folders the client shares (its file:// roots), which narrow the ones open for ingestion."""
    roots = []
    for root in answer.roots if answer else []:
        url = urlparse(str(root.uri))
        if url.scheme == "file" and url.netloc in ("", "localhost"):
            roots.append(Path(unquote(url.path)))
    return roots


async def ingest_document(
    ctx: Context,
    path: Annotated[str, Field(min_length=1, max_length=1024, description="File path, absolute or under a root.")],
    type: Annotated[
        DocType | None,
        Field(description="e.g. playbook, product_note, policy; by default the type the document had, else document."),
    ] = None,
    tags: Tags | None = None,
    title: Annotated[str | None, Field(max_length=200, description="Title; by default the file's own.")] = None,
    date: Annotated[CalendarDate | None, Field(description="The document's date, YYYY-MM-DD.")] = None,
    shared: Annotated[list[Path], Resolve(_client_roots)] = NO_ROOTS,  # filled by the SDK, not an argument
) -> IngestReport:
    """Add a file on the server's machine to the knowledge base (PDF, DOCX, HTML, Markdown or text) from a folder
    the server opens for ingestion (SOPHIA_KNOWLEDGE__ROOTS; none open, none can be ingested). A client on the
    same machine (stdio) that shares roots narrows these to the files inside its roots too; a client's roots
    never open a folder. Ingesting the same content again changes nothing; a changed file replaces its previous
    version."""
    local = server_of(ctx).client_is_local
    return await ingest_file(
        services_of(ctx), path, progress_of(ctx), narrow_to=shared, name_folders=local,
        title=title, type=type, tags=tags, doc_date=date,
    )  # fmt: skip


async def ingest_text(
    ctx: Context,
    title: Annotated[str, Field(min_length=1, max_length=200)],
    text: Annotated[str, Field(min_length=1, max_length=2_000_000, description="Markdown or plain text.")],
    type: Annotated[
        DocType | None,
        Field(description="e.g. playbook, product_note, policy; by default the type the document had, else document."),
    ] = None,
    tags: Tags | None = None,
    date: Annotated[CalendarDate | None, Field(description="The document's date, YYYY-MM-DD.")] = None,
    document_id: Annotated[
        str | None,
        Field(
            pattern=DOCUMENT_ID, max_length=80, description="Reuse to replace a document; by default from the title."
        ),
    ] = None,
) -> IngestReport:
    """Add text to the knowledge base (notes, a pasted policy, a meeting summary). The same title (or document_id)
    replaces the earlier version; the same content again changes nothing."""
    return await ingest_text_workflow(
        services_of(ctx), title, text, document_id, type=type, tags=tags, doc_date=date, progress=progress_of(ctx)
    )


async def search_documents(
    ctx: Context,
    query: Annotated[str, Field(min_length=1, max_length=1000, description="A question or keywords.")],
    types: Annotated[list[DocType] | None, Field(max_length=20, description="Only these document types.")] = None,
    tags: Annotated[Tags | None, Field(description="Only documents with any of these tags.")] = None,
    date_from: Annotated[
        CalendarDate | None, Field(description="Only documents dated on or after, YYYY-MM-DD.")
    ] = None,
    date_to: Annotated[CalendarDate | None, Field(description="Only documents dated on or before, YYYY-MM-DD.")] = None,
    limit: Annotated[int | None, Field(ge=1, le=50, description="Passages to return, 1-50; null: 8.")] = 8,
) -> SearchResults:
    """Search the knowledge base by meaning and by words together, and return the passages that answer best,
    each with its document, section, position and a citation to quote."""
    flt = DocumentFilter(types=types, tags=tags, date_from=date_from, date_to=date_to)
    return SearchResults(query=query, hits=await search(services_of(ctx), query, flt, limit or 8))


async def get_document(
    ctx: Context,
    document_id: DocumentId,
    include_chunks: Annotated[bool, Field(description="Also return the document's chunks (its text).")] = False,
    chunks_from: Annotated[
        int, Field(ge=0, le=1_000_000, description="First chunk position to return (next_chunk).")
    ] = 0,
    chunk_limit: Annotated[int | None, Field(ge=1, le=100, description="Chunks per page, 1-100; null: 20.")] = 20,
) -> DocumentDetail:
    """Get a document's details (title, source, type, tags, date, size, chunks) and, if asked, its chunks, a page
    at a time."""
    services = services_of(ctx)
    document = await services.documents.get(document_id)
    if document is None:
        raise NotFound(f"No document with id {document_id!r}; list_documents shows the ids")
    if not include_chunks:
        return DocumentDetail(document=document, chunks=None)
    chunk_limit = chunk_limit or 20
    page = await services.documents.chunks(document_id, chunks_from, chunk_limit + 1)
    following = page[chunk_limit].seq if len(page) > chunk_limit else None
    return DocumentDetail(document=document, chunks=page[:chunk_limit], next_chunk=following)


async def list_documents(
    ctx: Context,
    type: Annotated[str | None, Field(max_length=40, description="Only this document type.")] = None,
    tag: Annotated[str | None, Field(max_length=40, description="Only documents with this tag.")] = None,
    limit: Annotated[int | None, Field(ge=1, le=100, description="Documents per page, 1-100; null: 20.")] = 20,
    cursor: Cursor = None,
) -> DocumentPage:
    """List the documents in the knowledge base, optionally of one type or with one tag."""
    services = services_of(ctx)
    flt = DocumentFilter(types=[type] if type else None, tags=[tag] if tag else None)
    documents, following = await services.documents.page(flt, limit or 20, cursor)
    how = f"{DEMO_HINT}; ingest_document and ingest_text add your own"
    note = none_yet(documents, not (type or tag or cursor), "documents", how)
    return DocumentPage(documents=documents, next_cursor=following, note=note)


async def delete_document(ctx: Context, document_id: DocumentId) -> DocumentInfo:
    """Delete a document, its chunks and its vectors from the knowledge base. Returns what was deleted."""
    return await delete_document_workflow(services_of(ctx), document_id)


async def document_resource(document_id: str, ctx: Context) -> str:
    """A document's details as JSON."""
    return (await get_document(ctx, document_id)).model_dump_json(indent=2)


async def chunks_resource(document_id: str, ctx: Context) -> str:
    """A document's text, chunk by chunk, with each chunk's section."""
    services = services_of(ctx)
    detail = await get_document(ctx, document_id)  # the whole text: a resource is read by the client, not a model
    chunks = await services.documents.chunks(document_id)
    parts = [f"# {detail.document.title}"]
    parts += [f"\n[chunk {c.seq + 1}] {c.section}\n{c.text}" for c in chunks]
    return "\n".join(parts)


def answer_from_knowledge(
    question: Annotated[str, Field(max_length=1000, description="The question to answer.")],
) -> list[Message]:
    """Answer a question from the knowledge base, quoting its sources."""
    return [
        UserMessage(
            f"Answer this question from the knowledge base: {question}\nCall search_documents with the question, "
            "read the passages, and answer in a few sentences. Quote the passages you rely on and cite each by its "
            "`citation`. If the passages do not answer it, say so rather than guess."
        )
    ]


def competitor_brief(
    competitor: Annotated[str, Field(max_length=100, description="Competitor name, e.g. AppFolio.")],
) -> list[Message]:
    """Brief a rep on a competitor: where they win, where we win, and what to say."""
    return [
        UserMessage(
            f"Brief me on {competitor} before a sales call. Use search_documents with types=['competitor_note'] and "
            f"the query '{competitor}', then search pricing and product notes for what we say against them. Give "
            "where they win, where we win, and three questions to ask the prospect, each with a citation."
        )
    ]


def _complete_document_ids(services: Services, typed: str, _: dict[str, str]) -> list[str]:
    return services.documents.ids_and_titles(typed, 100)


def _complete_competitors(services: Services, typed: str, _: dict[str, str]) -> list[str]:
    names = [c.name for c in services.settings.competitors]
    return [n for n in names if n.casefold().startswith(typed.casefold())]


def register(server: SophiaServer, prefix: str = "") -> None:
    """Declare the knowledge tools, resources, prompts and completions on `server` (tool names get `prefix`)."""
    hints = tool_hints
    server.declare_tool(
        ingest_document, name="ingest_document", prefix=prefix,
        annotations=hints("Ingest document", read_only=False, idempotent=True),
    )  # fmt: skip
    server.declare_tool(
        ingest_text,
        name="ingest_text",
        prefix=prefix,
        annotations=hints("Ingest text", read_only=False, idempotent=True),
    )
    server.declare_tool(
        search_documents,
        name="search_documents",
        prefix=prefix,
        annotations=hints("Search the knowledge base", read_only=True),
    )
    server.declare_tool(
        get_document, name="get_document", prefix=prefix, annotations=hints("Get document", read_only=True)
    )
    server.declare_tool(
        list_documents, name="list_documents", prefix=prefix, annotations=hints("List documents", read_only=True)
    )
    server.declare_tool(
        delete_document, name="delete_document", prefix=prefix,
        annotations=hints("Delete document", read_only=False, destructive=True, idempotent=False),
    )  # fmt: skip
    server.declare_resource(
        "kb://documents/{document_id}", name="document", title="Knowledge document", mime_type="application/json"
    )(document_resource)
    server.declare_resource(
        "kb://documents/{document_id}/chunks", name="document_chunks", title="Document text", mime_type="text/plain"
    )(chunks_resource)
    server.prompt(name="answer_from_knowledge", title="Answer from the knowledge base")(answer_from_knowledge)
    server.prompt(name="competitor_brief", title="Brief on a competitor")(competitor_brief)
    for ref in ("kb://documents/{document_id}", "kb://documents/{document_id}/chunks"):
        server.add_completer(ref, "document_id", _complete_document_ids)
    server.add_completer("competitor_brief", "competitor", _complete_competitors)


def create_server(settings: Settings | None = None, **kwargs: Any) -> SophiaServer:
    server = SophiaServer("sophia-knowledge", INSTRUCTIONS, settings, **kwargs)
    register(server)
    return server
