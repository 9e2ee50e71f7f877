"""The embedded embedding model: WordLlama's `l2_supercat` static embeddings, 256 dimensions.

Chosen because its wheel (MIT, 19 MB) carries the weights and the tokenizer, so nothing is downloaded at run
time, and it needs numpy, safetensors and tokenizers but no torch or ONNX runtime; it embeds tens of thousands of
sentences a second on one core. Static embeddings trail transformer models on retrieval, which the knowledge
base's hybrid search (vectors fused with full-text ranking) makes up for. The package would look for its tokenizer
in the wrong folder and then try Hugging Face; pointing its cache at its own install keeps it offline.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from sophia_mcp.errors import ConfigurationError

if TYPE_CHECKING:
    from sophia_mcp.ports.embed import Vectors

BATCH = 512
INLINE_CHARS = 2_000


class LocalEmbedder:
    model = "wordllama/l2_supercat-256"
    dimension = 256

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import wordllama
                from wordllama import WordLlama

                try:
                    self._model = WordLlama.load(
                        "l2_supercat", dim=self.dimension, cache_dir=Path(wordllama.__file__).parent,
                        disable_download=True,
                    )  # fmt: skip
                except (FileNotFoundError, ValueError) as exc:
                    raise ConfigurationError(f"The local embedding model could not be loaded: {exc}") from exc
            return self._model

    def embed_now(self, texts: list[str]) -> Vectors:
        """Embed in the calling thread (batched); rows are L2-normalised, so a dot product is the cosine. A blank
        text has no direction: its row is zeros."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        wanted = [i for i, t in enumerate(texts) if t.strip()]
        if not wanted:
            return out
        model = self._load()
        for start in range(0, len(wanted), BATCH):
            rows = wanted[start : start + BATCH]
            out[rows] = np.asarray(model.embed([texts[i] for i in rows], norm=False), dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)

    async def embed(self, texts: list[str]) -> Vectors:
        if self._model is not None and sum(len(t) for t in texts) <= INLINE_CHARS:
            return self.embed_now(texts)  # a query takes microseconds: less than the trip to a worker thread
        return await anyio.to_thread.run_sync(self.embed_now, texts)
