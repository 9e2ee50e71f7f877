"""A bug report kept while its issue is filed and watched: who reported it where, and what its channel last heard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class BugReport:
    issue_key: str  # the idempotency key of its issue (and of the outbox entry that opens it)
    reporter: str
    channel: str
    issue_id: str | None  # None until the tracker has the issue
    last_state: str | None  # the state its channel last heard
    created_at: datetime
    updated_at: datetime
    entry_id: int | None = None  # the outbox entry that opens its issue, once enqueued
