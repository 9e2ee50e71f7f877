"""What the knowledge base holds and answers: documents, their chunks, and search hits that cite them."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

Format = Literal["pdf", "docx", "html", "markdown", "text"]


class DocumentInfo(Model):
    id: str
    title: str
    source: str = Field(description="The file it came from, or `text:` and a name for text given directly.")
    type: str = Field(description="playbook, product_note, competitor_note, pricing_policy, meeting_notes, ...")
    format: Format
    tags: list[str]
    date: dt.date | None = Field(description="The document's own date, when known.")
    content_hash: str
    chars: int
    chunk_count: int
    embedding_model: str
    created_at: dt.datetime
    updated_at: dt.datetime


class ChunkRecord(Model):
    id: str
    document_id: str
    seq: int = Field(description="Position of the chunk in its document, from 0.")
    section: str = Field(description="The heading path the chunk sits under, e.g. 'Pricing policy › Discounts'.")
    text: str
    start_char: int
    end_char: int


class DocumentFilter(Model):
    types: list[str] | None = None
    tags: list[str] | None = Field(default=None, description="Documents with any of these tags.")
    date_from: dt.date | None = None
    date_to: dt.date | None = None


class SearchHit(Model):
    chunk_id: str
    document_id: str
    title: str
    source: str
    type: str
    section: str
    position: int = Field(description="The chunk's position in its document, from 0.")
    text: str
    score: float = Field(description="Fused rank score (reciprocal-rank fusion of vector and full-text ranks).")
    vector_rank: int | None = Field(description="1-based rank among vector matches; null if not among them.")
    lexical_rank: int | None = Field(description="1-based rank among full-text matches; null if not among them.")
    citation: str = Field(description="How to cite it: title, section and chunk position.")
