"""Entries of the outbox: side effects kept before they are delivered, as the outbox repository returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert

OutboxStatus = Literal["pending", "sending", "delivered", "failed"]


class OutboxEntry(Model):
    id: int
    key: str
    kind: str = Field(description="alert, issue or crm (a CRM write).")
    target: str = Field(description="Where it goes: a channel, or a team.")
    status: OutboxStatus
    attempts: int
    last_error: str | None
    external_ref: str | None = Field(description="The receiver's reference: a Slack ts, an issue identifier.")
    run_id: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any] = Field(description="What is sent: the alert (title, text, ...) or the issue draft.")

    @property
    def alert(self) -> Alert:
        return Alert.model_validate(self.payload)

    @property
    def title(self) -> str:
        return str(self.payload.get("title") or (self.payload.get("draft") or {}).get("title") or "")
