"""The `VectorIndex` port on a Pinecone index's data plane (REST, API version 2025-04).

Spoken over the shared HTTP layer rather than the `pinecone` SDK: the data plane is four calls, and going
through `ServiceClient` gives them the same pacing, 429/Retry-After handling, retries and secret redaction as
every other service, and lets `index_host` point anywhere (a test's fake). Upserts go in batches of 100, deletes
of 1,000. The model that built the index is kept in a reserved record of the namespace, so another model is
refused, as on the local index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from sophia_mcp.adapters.http import ServiceClient
from sophia_mcp.domain.vectors import Filter, Metadata, VectorMatch
from sophia_mcp.errors import ConfigurationError, InvalidInput
from sophia_mcp.settings import PineconeSettings

if TYPE_CHECKING:
    from sophia_mcp.ports.embed import Vectors

API_VERSION = "2025-04"
UPSERT_BATCH = 100
DELETE_BATCH = 1000
MODEL_RECORD = "__sophia_model__"


def pinecone_client(settings: PineconeSettings, transport: httpx.AsyncBaseTransport | None = None) -> ServiceClient:
    if settings.api_key is None or not settings.index_host:
        raise ConfigurationError(
            "The pinecone backend needs SOPHIA_PINECONE__API_KEY and SOPHIA_PINECONE__INDEX_HOST (the index's host, "
            "from the Pinecone console or describe_index)"
        )
    host = settings.index_host if "://" in settings.index_host else f"https://{settings.index_host}"
    key = settings.api_key.get_secret_value()
    section = settings.model_copy(update={"base_url": host})
    headers = {"Api-Key": key, "X-Pinecone-API-Version": API_VERSION}
    return ServiceClient("Pinecone", section, headers=headers, secrets=[key], transport=transport)


class PineconeIndex:
    name = "pinecone"
    answers_here = False  # every query is a request to Pinecone

    def __init__(self, http: ServiceClient, namespace: str) -> None:
        self.http = http
        self.namespace = namespace

    async def aclose(self) -> None:
        await self.http.aclose()

    async def check(self) -> str:
        _, stats = await self.http.request("POST", "/describe_index_stats", json={})
        count = ((stats or {}).get("namespaces") or {}).get(self.namespace, {}).get("vectorCount", 0)
        return f"Pinecone index at {self.http.settings.base_url}: {count} vectors in namespace {self.namespace!r}"

    async def bind(self, model: str, dimension: int) -> None:
        _, stats = await self.http.request("POST", "/describe_index_stats", json={})
        size = (stats or {}).get("dimension")
        if size is not None and size != dimension:
            raise ConfigurationError(
                f"The Pinecone index holds {size}-dimension vectors; {model} makes {dimension}. Use an index created "
                "for this model (SOPHIA_PINECONE__INDEX_HOST) or the model the index was built for."
            )
        _, found = await self.http.request(
            "GET", "/vectors/fetch", params={"ids": MODEL_RECORD, "namespace": self.namespace}
        )
        record = ((found or {}).get("vectors") or {}).get(MODEL_RECORD)
        if record is not None:
            built_with = (record.get("metadata") or {}).get("model")
            if built_with != model:
                raise ConfigurationError(
                    f"The Pinecone namespace {self.namespace!r} was built with {built_with}, not {model}; vectors of "
                    "two models cannot be searched together. Use another namespace (SOPHIA_PINECONE__NAMESPACE)."
                )
            return
        values = [0.0] * dimension
        values[0] = 1.0  # Pinecone refuses all-zero vectors for cosine indexes
        await self._upsert([{"id": MODEL_RECORD, "values": values, "metadata": {"model": model, "kind": "model"}}])

    async def _upsert(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), UPSERT_BATCH):
            await self.http.request(
                "POST",
                "/vectors/upsert",
                json={"vectors": records[start : start + UPSERT_BATCH], "namespace": self.namespace},
            )

    async def upsert(self, ids: list[str], vectors: Vectors, metadata: list[Metadata]) -> None:
        if len(ids) != len(vectors) or len(ids) != len(metadata):
            raise InvalidInput("ids, vectors and metadata must be as many")
        records = [
            {"id": i, "values": [float(x) for x in v], "metadata": m}
            for i, v, m in zip(ids, vectors, metadata, strict=True)
        ]
        await self._upsert(records)

    async def delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), DELETE_BATCH):
            await self.http.request(
                "POST", "/vectors/delete", json={"ids": ids[start : start + DELETE_BATCH], "namespace": self.namespace}
            )

    async def query(
        self, vector: Vectors, top_k: int, filter: Filter | None = None, *, metadata: bool = True
    ) -> list[VectorMatch]:
        body: dict[str, Any] = {
            "vector": [float(x) for x in vector],
            "topK": top_k + 1,  # room for the model record, which has no place in results
            "namespace": self.namespace,
            "includeMetadata": metadata,
            "includeValues": False,
        }
        if filter:
            body["filter"] = dict(filter)
        _, answer = await self.http.request("POST", "/query", json=body)
        matches = [
            VectorMatch(id=m["id"], score=float(m.get("score", 0.0)), metadata=m.get("metadata") or {})
            for m in (answer or {}).get("matches") or []
            if m.get("id") != MODEL_RECORD
        ]
        return matches[:top_k]
