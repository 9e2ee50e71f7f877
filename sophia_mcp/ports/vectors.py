"""The `VectorIndex` port: vectors with metadata, nearest neighbours under a metadata filter.

Filters use Pinecone's operators, so one filter means the same on both backends: `{"type": "playbook"}`,
`{"tags": {"$in": ["pricing"]}}`, `{"date": {"$gte": 20260101}}`; several keys are ANDed. Supported: `$eq`,
`$ne`, `$in`, `$nin`, `$gt`, `$gte`, `$lt`, `$lte`, `$exists`. A list-valued metadata field matches when any
element does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sophia_mcp.ports.embed import Vectors
from sophia_mcp.domain.vectors import Filter, Metadata, VectorMatch


class VectorIndex(Protocol):
    async def bind(self, model: str, dimension: int) -> None:
        """Declare the embedding model; an index built by another model or size refuses (ConfigurationError)."""
        ...

    async def upsert(self, ids: list[str], vectors: Vectors, metadata: list[Metadata]) -> None: ...

    async def delete(self, ids: list[str]) -> None: ...

    @property
    def answers_here(self) -> bool:
        """Whether a query is answered in the calling thread, without waiting (a small index in this process): then
        there is nothing to overlap with other work while it runs."""
        ...

    async def query(
        self, vector: Vectors, top_k: int, filter: Filter | None = None, *, metadata: bool = True
    ) -> list[VectorMatch]:
        """The `top_k` nearest (cosine) vectors passing `filter`, best first; with `metadata` False, each match's
        metadata is left empty (a caller that reads only ids and scores spares building them)."""
        ...
