"""Documents to text, and text to chunks: pure functions over bytes and strings.

Every format becomes Markdown-like text (headings as `#` lines, paragraphs separated by blank lines) so one
chunker serves all: PDF through pypdf, DOCX through python-docx (heading styles become headings, tables rows),
HTML through selectolax (lexbor) (scripts, styles and navigation dropped), Markdown and plain text as they are. Chunks
come from semantic-text-splitter's Markdown splitter, which cuts at headings, then paragraphs, then sentences,
within a token budget and with overlap; each chunk carries the heading path it sits under (its section).
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from typing import Any

from sophia_mcp.domain.knowledge import Format
from sophia_mcp.domain.model import Model
from sophia_mcp.errors import InvalidInput

FORMAT_OF_SUFFIX: dict[str, Format] = {
    ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".md": "markdown", ".markdown": "markdown",
    ".txt": "text", ".text": "text",
}  # fmt: skip

HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


class ParsedDocument(Model):
    title: str | None
    text: str
    format: Format


class Chunk(Model):
    seq: int
    section: str
    text: str
    start_char: int
    end_char: int


def _decode(data: bytes, what: str) -> str:
    if b"\x00" in data[:8192]:
        raise InvalidInput(f"This {what} file holds binary data; it is not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"This {what} file is not UTF-8 text") from None


def _first_heading(text: str) -> str | None:
    found = HEADING.search(text)
    return found.group(2).strip() if found else None


def _pdf(data: bytes) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, OSError) as exc:
        raise InvalidInput(f"This PDF cannot be read ({type(exc).__name__}); it may be damaged") from None
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise InvalidInput("This PDF has no text layer (a scan?); nothing could be read from it")
    return ParsedDocument(title=str(title).strip() if title else None, text=text, format="pdf")


MAX_MEMBERS = 10_000  # parts in one DOCX; Word writes a few dozen
READ_SIZE = 64 * 1024


def _is_markup(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels"))


def unpack_docx(data: bytes, max_unpacked: int) -> bytes:
    """The DOCX repacked with its XML parts only (media emptied: no text is read from them), refusing it when
    they unpack to more than `max_unpacked` bytes. Sizes are checked as the archive declares them before any is
    inflated, and counted while inflating, in case a declaration lies; python-docx then reads only what was
    counted."""
    damaged = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError, ValueError)
    too_big = InvalidInput(
        f"This DOCX unpacks to more than {max_unpacked / 1e6:g} MB of text and markup "
        "(SOPHIA_KNOWLEDGE__MAX_UNPACKED_MB); split it, or raise the limit if it is genuine"
    )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise InvalidInput(f"This DOCX holds {len(members)} parts, more than a document has; it was refused")
        if sum(m.file_size for m in members if _is_markup(m.filename)) > max_unpacked:
            raise too_big
        packed, unpacked = io.BytesIO(), 0
        with zipfile.ZipFile(packed, "w", zipfile.ZIP_STORED) as out:
            for member in members:
                if member.is_dir():
                    continue
                if not _is_markup(member.filename):
                    out.writestr(member.filename, b"")
                    continue
                pieces = []
                with archive.open(member) as stream:
                    while piece := stream.read(READ_SIZE):
                        unpacked += len(piece)
                        if unpacked > max_unpacked:
                            raise too_big
                        pieces.append(piece)
                out.writestr(member.filename, b"".join(pieces))
    except damaged as exc:
        raise InvalidInput(f"This DOCX cannot be read ({type(exc).__name__}); it may be damaged") from None
    return packed.getvalue()


def _docx(data: bytes, max_unpacked: int) -> ParsedDocument:
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.opc.exceptions import OpcError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(unpack_docx(data, max_unpacked)))
        # Style names by id, once: python-docx looks a paragraph's style up among all styles on every ask.
        names = {s.style_id: s.name or "" for s in document.styles if s.type == WD_STYLE_TYPE.PARAGRAPH}
        default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
        default_name = (default.name or "") if default is not None else ""
        lines: list[str] = []
        title = (document.core_properties.title or "").strip() or None
        for block in document.element.body.iterchildren():
            tag = block.tag.rsplit("}", 1)[-1]
            if tag == "p":
                text = Paragraph(block, document).text.strip()
                if not text:
                    continue
                style = names.get(block.style, default_name) if block.style else default_name
                if style == "Title":
                    title = title or text
                    lines.append(f"# {text}")
                elif style.startswith("Heading") and style[7:].strip().isdigit():
                    lines.append(f"{'#' * min(6, int(style[7:].strip()))} {text}")
                else:
                    lines.append(text)
            elif tag == "tbl":
                table = Table(block, document)
                for row in table.rows:
                    cells = [c.text.strip() for c in row.cells]
                    if any(cells):
                        lines.append(" | ".join(cells))
    except (OpcError, SyntaxError, KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        # lxml's XMLSyntaxError is a SyntaxError: malformed XML in a part
        raise InvalidInput(f"This DOCX cannot be read ({type(exc).__name__}); it may be damaged") from None
    text = "\n\n".join(lines)
    return ParsedDocument(title=title or _first_heading(text), text=text, format="docx")


def _html(data: bytes) -> ParsedDocument:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(data.decode("utf-8", errors="replace"))
    for node in tree.css("script, style, noscript, nav, footer, header, aside, form, svg"):
        node.decompose()
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else None
    lines: list[str] = []
    for node in tree.css("h1, h2, h3, h4, h5, h6, p, li, pre, blockquote, td, th, dt, dd"):
        text = " ".join(node.text(separator=" ").split())
        if not text:
            continue
        tag = node.tag or ""
        if tag[:1] == "h" and tag[1:].isdigit():
            lines.append(f"{'#' * int(tag[1:])} {text}")
        else:
            lines.append(f"- {text}" if tag == "li" else text)
    return ParsedDocument(title=title or _first_heading("\n".join(lines)), text="\n\n".join(lines), format="html")


def parse_document(data: bytes, format: Format, max_unpacked: int = 50_000_000) -> ParsedDocument:
    """A file's text as Markdown-like text, with its title when the file says one. A DOCX whose XML unpacks to
    more than `max_unpacked` bytes is refused."""
    if format == "pdf":
        return _pdf(data)
    if format == "docx":
        return _docx(data, max_unpacked)
    if format == "html":
        return _html(data)
    text = _decode(data, format).replace("\r\n", "\n")
    return ParsedDocument(title=_first_heading(text) if format == "markdown" else None, text=text, format=format)


def _sections(text: str, title: str) -> list[tuple[int, str]]:
    """(offset, heading path) at every heading, starting with the document's title alone at 0."""
    out = [(0, title)]
    stack: list[tuple[int, str]] = []
    for found in HEADING.finditer(text):
        level, name = len(found.group(1)), found.group(2).strip()
        stack = [(lvl, n) for lvl, n in stack if lvl < level] + [(level, name)]
        path = [n for _, n in stack]
        if path and path[0].casefold() == title.casefold():
            path = path[1:]
        out.append((found.start(), " › ".join([title, *path])))
    return out


_SPLITTERS: dict[tuple[int, tuple[int, int], int], tuple[Any, Any]] = {}  # key -> (tokenizer kept alive, splitter)


def _splitter(tokenizer: Any, capacity: tuple[int, int], overlap: int) -> Any:
    """A splitter per tokenizer and budget: building one copies the tokenizer, which takes longer than splitting."""
    from semantic_text_splitter import MarkdownSplitter

    key = (id(tokenizer), capacity, overlap)
    if key not in _SPLITTERS:
        splitter = MarkdownSplitter.from_huggingface_tokenizer(tokenizer, capacity=capacity, overlap=overlap)
        _SPLITTERS[key] = (tokenizer, splitter)
    return _SPLITTERS[key][1]


def chunk_text(
    text: str, title: str, tokenizer: Any, max_tokens: int, min_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """Cut text into chunks of `min_tokens`..`max_tokens` tokens (by `tokenizer`, a Hugging Face tokenizer),
    at headings, then paragraphs, then sentences, each sharing up to `overlap_tokens` with the previous one."""
    splitter = _splitter(tokenizer, (min(min_tokens, max_tokens), max_tokens), min(overlap_tokens, max_tokens // 2))
    sections = _sections(text, title)
    chunks: list[Chunk] = []
    for start, piece in splitter.chunk_indices(text):
        body = piece.strip()
        if not body or all(HEADING.fullmatch(line) or not line.strip() for line in body.splitlines()):
            continue  # a heading alone says nothing; it is carried as the section of what follows it
        section = title
        for offset, path in sections:
            if offset > start + (len(piece) - len(piece.lstrip())):
                break
            section = path
        chunks.append(Chunk(seq=len(chunks), section=section, text=body, start_char=start, end_char=start + len(piece)))
    return chunks
