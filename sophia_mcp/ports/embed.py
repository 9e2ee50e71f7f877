"""The `Embedder` port: text to unit-length vectors, for the knowledge base's vector index."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # numpy comes with the backends that compute vectors, not with every server that names the type
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    # Which model made the vectors, and their length: an index refuses vectors of another model or size.
    model: str
    dimension: int

    async def embed(self, texts: list[str]) -> Vectors:
        """One unit-length row per text, in order (shape: len(texts) x dimension)."""
        ...
