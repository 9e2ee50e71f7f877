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
from typing import Any, Literal

from sophia_mcp.errors import InvalidInput
from sophia_mcp.model import Model

Format = Literal["pdf", "docx", "html", "markdown", "text"]

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
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = reader.metadata.title if reader.metadata else None
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise InvalidInput(f"This PDF cannot be read ({type(exc).__name__}); it may be damaged") from None
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise InvalidInput("This PDF has no text layer (a scan?); nothing could be read from it")
    return ParsedDocument(title=str(title).strip() if title else None, text=text, format="pdf")


def _docx(data: bytes) -> ParsedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidInput(f"This DOCX cannot be read ({type(exc).__name__}); it may be damaged") from None
    lines: list[str] = []
    title = (document.core_properties.title or "").strip() or None
    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            paragraph = Paragraph(block, document)
            text = paragraph.text.strip()
            if not text:
                continue
            style = (paragraph.style.name if paragraph.style is not None else "") or ""
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


def parse_document(data: bytes, format: Format) -> ParsedDocument:
    """A file's text as Markdown-like text, with its title when the file says one."""
    if format == "pdf":
        return _pdf(data)
    if format == "docx":
        return _docx(data)
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
