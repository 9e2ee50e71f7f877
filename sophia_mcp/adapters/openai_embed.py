"""The `Embedder` port on OpenAI's embeddings endpoint (or any OpenAI-compatible one: `base_url` is settable)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import openai

from sophia_mcp.errors import ConfigurationError, CredentialsRefused, RateLimited, ServiceUnavailable, of_service
from sophia_mcp.settings import OpenAISettings

if TYPE_CHECKING:
    from sophia_mcp.ports.embed import Vectors

BATCH = 256
SERVICE = "OpenAI"  # named on every error, as the HTTP layer names its services
DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAIEmbedder:
    def __init__(self, settings: OpenAISettings) -> None:
        if settings.api_key is None:
            raise ConfigurationError("The openai embeddings backend needs SOPHIA_OPENAI__API_KEY")
        self.settings = settings
        self.model = f"openai/{settings.embedding_model}"
        self.dimension = DIMENSIONS.get(settings.embedding_model, 1536)
        self._client: Any = None

    def _openai(self) -> Any:
        if self._client is None:
            key = self.settings.api_key.get_secret_value() if self.settings.api_key else ""
            self._client = openai.AsyncOpenAI(
                api_key=key,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout_s,
                max_retries=self.settings.max_retries,
            )
        return self._client

    async def embed(self, texts: list[str]) -> Vectors:
        """Rows in order; a blank text (which OpenAI refuses) gets a zero row, as on the local model."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        wanted = [i for i, t in enumerate(texts) if t.strip()]
        for start in range(0, len(wanted), BATCH):
            rows = wanted[start : start + BATCH]
            try:
                answer = await self._openai().embeddings.create(
                    model=self.settings.embedding_model, input=[texts[i] for i in rows]
                )
            except openai.AuthenticationError:
                raise of_service(
                    CredentialsRefused("OpenAI refused the API key (SOPHIA_OPENAI__API_KEY)"), SERVICE
                ) from None
            except openai.RateLimitError:
                raise of_service(RateLimited("OpenAI embeddings: rate limited; try again later"), SERVICE) from None
            except openai.APIError as exc:
                raise of_service(
                    ServiceUnavailable(f"OpenAI embeddings failed: {type(exc).__name__}"), SERVICE
                ) from None
            for item in answer.data:
                vector = np.asarray(item.embedding, dtype=np.float32)
                if vector.shape[0] != self.dimension:
                    raise of_service(
                        ServiceUnavailable(
                            f"OpenAI answered {vector.shape[0]} dimensions for {self.model}, not {self.dimension}"
                        ),
                        SERVICE,
                    )
                norm = float(np.linalg.norm(vector))
                out[rows[item.index]] = vector / norm if norm else vector
        return out

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
