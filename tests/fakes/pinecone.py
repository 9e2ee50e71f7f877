"""A fake Pinecone index data plane, per ../shared/apis/pinecone.md.

`Api-Key` auth (401 otherwise); upsert (at most 1,000 vectors and 2 MB per request; a dimension mismatch is a
400 with code 3; metadata of strings, numbers, booleans and lists of strings only), query (cosine, topK, filter
with `$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`), fetch, delete by ids or all, describe_index_stats,
list by id prefix; namespaces; 429 and 500 faults on demand. Errors are `{"code", "message", "details"}`.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

API_KEY = "pcsk_fake_pinecone_key_0000"


@dataclass
class PineconeState:
    dimension: int
    namespaces: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    # An upsert of ids starting with this is stored, then left unanswered until `release` is set: its client can
    # be killed at the moment its vectors are in the index and nothing else is done.
    stall_upserts_of: str | None = None
    stalled: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": []}, status)


def _check(value: Any, op: str, operand: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    comparisons = {
        "$eq": lambda v: v == operand, "$ne": lambda v: v != operand, "$in": lambda v: v in operand,
        "$nin": lambda v: v not in operand, "$gt": lambda v: v > operand, "$gte": lambda v: v >= operand,
        "$lt": lambda v: v < operand, "$lte": lambda v: v <= operand,
    }  # fmt: skip
    if op in ("$ne", "$nin"):
        return all(comparisons[op](v) for v in values)
    return any(comparisons[op](v) for v in values)


def passes(metadata: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    for key, condition in (flt or {}).items():
        if key == "$and":
            if not all(passes(metadata, c) for c in condition):
                return False
        elif key == "$or":
            if not any(passes(metadata, c) for c in condition):
                return False
        else:
            conditions = condition if isinstance(condition, dict) else {"$eq": condition}
            for op, operand in conditions.items():
                if op == "$exists":
                    if (key in metadata) != bool(operand):
                        return False
                elif key not in metadata:
                    if op not in ("$ne", "$nin"):
                        return False
                elif not _check(metadata[key], op, operand):
                    return False
    return True


def _valid_metadata(metadata: Any) -> bool:
    if not isinstance(metadata, dict):
        return False
    for value in metadata.values():
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                return False
        elif value is None or not isinstance(value, str | int | float | bool):
            return False
    return True


def pinecone_app(state: PineconeState) -> Starlette:
    async def guard(request: Request) -> tuple[Response | None, Any]:
        if request.headers.get("api-key") != API_KEY:
            return _error(401, 16, "Invalid API Key"), None
        fault = state.next_fault()
        if fault == "429":
            return _error(429, 8, "Request failed. You've reached your write unit limit."), None
        if fault == "500":
            return _error(500, 13, "Internal error"), None
        body: Any = dict(request.query_params)
        if request.method == "POST":
            raw = await request.body()
            if len(raw) > 2 * 1024 * 1024:
                return _error(400, 3, "Request size exceeds the limit of 2MB"), None
            body = json.loads(raw or b"{}")
        state.requests.append((request.url.path, body))
        return None, body

    def space(namespace: str | None) -> dict[str, dict[str, Any]]:
        return state.namespaces.setdefault(namespace or "", {})

    async def upsert(request: Request) -> Response:
        refusal, body = await guard(request)
        if refusal is not None:
            return refusal
        vectors = body.get("vectors") or []
        if len(vectors) > 1000:
            return _error(400, 3, "Upsert batch size exceeds the limit of 1000 vectors")
        for vector in vectors:
            if len(vector.get("values") or []) != state.dimension:
                return _error(400, 3, f"Vector dimension {len(vector.get('values') or [])} does not match the "
                                      f"dimension of the index {state.dimension}")  # fmt: skip
            if "metadata" in vector and not _valid_metadata(vector["metadata"]):
                return _error(400, 3, f"Metadata of {vector['id']} must hold strings, numbers, booleans or lists of "
                                      "strings")  # fmt: skip
        target = space(body.get("namespace"))
        for vector in vectors:
            target[vector["id"]] = {"id": vector["id"], "values": vector["values"], "metadata": vector.get("metadata")}
        prefix = state.stall_upserts_of
        if prefix is not None and any(v["id"].startswith(prefix) for v in vectors):
            state.stalled.set()
            await anyio.to_thread.run_sync(state.release.wait, 60)
        return JSONResponse({"upsertedCount": len(vectors)})

    async def query(request: Request) -> Response:
        refusal, body = await guard(request)
        if refusal is not None:
            return refusal
        vector = body.get("vector") or []
        if len(vector) != state.dimension:
            return _error(400, 3, f"Query vector dimension {len(vector)} does not match the dimension of the index "
                                  f"{state.dimension}")  # fmt: skip
        top_k = int(body.get("topK") or 10)
        if not 1 <= top_k <= 10_000:
            return _error(400, 3, "topK must be between 1 and 10000")
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        scored = []
        for record in space(body.get("namespace")).values():
            if not passes(record.get("metadata") or {}, body.get("filter")):
                continue
            other = math.sqrt(sum(x * x for x in record["values"])) or 1.0
            score = sum(a * b for a, b in zip(vector, record["values"], strict=True)) / (norm * other)
            scored.append((score, record))
        scored.sort(key=lambda item: -item[0])
        matches = [
            {"id": r["id"], "score": s, **({"metadata": r["metadata"]} if body.get("includeMetadata") else {})}
            for s, r in scored[:top_k]
        ]
        return JSONResponse({"matches": matches, "namespace": body.get("namespace", ""), "usage": {"readUnits": 5}})

    async def fetch(request: Request) -> Response:
        refusal, _ = await guard(request)
        if refusal is not None:
            return refusal
        target = space(request.query_params.get("namespace"))
        ids = request.query_params.getlist("ids")
        return JSONResponse({"vectors": {i: target[i] for i in ids if i in target}, "namespace": ""})

    async def delete(request: Request) -> Response:
        refusal, body = await guard(request)
        if refusal is not None:
            return refusal
        target = space(body.get("namespace"))
        if body.get("deleteAll"):
            target.clear()
        for i in body.get("ids") or []:
            target.pop(i, None)
        return JSONResponse({})

    async def stats(request: Request) -> Response:
        refusal, _ = await guard(request)
        if refusal is not None:
            return refusal
        namespaces = {ns: {"vectorCount": len(v)} for ns, v in state.namespaces.items()}
        total = sum(len(v) for v in state.namespaces.values())
        return JSONResponse({"dimension": state.dimension, "totalVectorCount": total, "namespaces": namespaces})

    async def listing(request: Request) -> Response:
        refusal, _ = await guard(request)
        if refusal is not None:
            return refusal
        prefix = request.query_params.get("prefix", "")
        ids = sorted(i for i in space(request.query_params.get("namespace")) if i.startswith(prefix))
        return JSONResponse({"vectors": [{"id": i} for i in ids], "namespace": ""})

    return Starlette(
        routes=[
            Route("/vectors/upsert", upsert, methods=["POST"]),
            Route("/query", query, methods=["POST"]),
            Route("/vectors/fetch", fetch, methods=["GET"]),
            Route("/vectors/delete", delete, methods=["POST"]),
            Route("/describe_index_stats", stats, methods=["POST", "GET"]),
            Route("/vectors/list", listing, methods=["GET"]),
        ]
    )
