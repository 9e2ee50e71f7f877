"""The `CallSource` port and the call records it hands out.

Records follow Gong's vocabulary (parties, monologues, sentences with millisecond timings) because Gong is
the system of record for calls; the local store keeps the same shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sophia_mcp.domain.calls import Call, CallFilter, CallPage, Transcript


class CallSource(Protocol):
    """Where calls and transcripts come from: the local store or Gong."""

    name: str

    async def list_calls(self, filter: CallFilter, limit: int, cursor: str | None) -> CallPage: ...

    async def get_call(self, call_id: str) -> Call:
        """Raise `NotFound` for an unknown id."""
        ...

    async def get_transcript(self, call_id: str) -> Transcript:
        """Raise `NotFound` for an unknown id; a call without a transcript has no monologues."""
        ...


@runtime_checkable
class CallFeed(Protocol):
    """A call source that can list the calls started since a time, as the service shapes them (Gong's
    `/v2/calls/extensive`): what the gong-calls connector polls."""

    def calls_started_since(self, since: datetime) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of calls that started at or after `since`."""
        ...
