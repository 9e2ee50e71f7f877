"""The embedded cache: values kept in this process (Redis shares them between replicas)."""

from __future__ import annotations

import time


class MemoryCache:
    """The embedded cache: values in this process, each until its time is up, the oldest dropped past `size`."""

    name = "memory"

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._items: dict[str, tuple[float, str]] = {}

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[1]

    async def put(self, key: str, value: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        if len(self._items) >= self.size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (time.monotonic() + ttl_s, value)
