"""The HTTP service clients alive in this process, and how many requests each may send at once.

Apart from the HTTP layer itself so that the healing watch, which lowers and restores a service's concurrency, does
not load httpx and tenacity at every server's start (most starts never build a service client)."""

from __future__ import annotations

import weakref
from typing import Protocol

import anyio


class Limited(Protocol):
    """What a service client shows of itself here: its service's name, its slots, and the setting they came from."""

    service: str
    slots: anyio.CapacityLimiter
    max_concurrency: int


LIVE_CLIENTS: weakref.WeakSet[Limited] = weakref.WeakSet()


def set_concurrency(service: str, limit: int | None) -> int:
    """Cap how many requests this process's clients of `service` (its name in any case: the HTTP layer names services
    as people write them, an incident as it records them) send at once (None: back to its setting); returns how many
    clients it changed. The healing watch's remediation after a storm of 429s."""
    changed = 0
    wanted = service.casefold()
    for client in list(LIVE_CLIENTS):
        if client.service.casefold() == wanted:
            client.slots.total_tokens = client.max_concurrency if limit is None else max(1, limit)
            changed += 1
    return changed
