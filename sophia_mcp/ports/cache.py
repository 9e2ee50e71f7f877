"""The `Cache` port: text values by key, each for a time (in the process, or in Redis shared by replicas).

A cache is an optimisation: an adapter that cannot reach its store answers "not cached" rather than failing."""

from __future__ import annotations

from typing import Protocol


class Cache(Protocol):
    name: str

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, ttl_s: float) -> None: ...
