"""The `Notifier` port: how an alert reaches people (the local outbox, or Slack)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

Severity = Literal["info", "warning", "critical"]


class Attachment(Model):
    filename: str
    mime_type: str = Field(description="e.g. text/calendar for a meeting invite.")
    content: str


class Alert(Model):
    """A message for a channel. `key` names what it is about, so the same alert is never sent twice."""

    key: str = Field(description="Idempotency key, e.g. health-alert:{client_id}:{call_id}.")
    channel: str
    severity: Severity = "warning"
    title: str
    text: str = Field(description="Plain text; also the fallback where rich blocks are not shown.")
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list, description="Files it carries (an invite).")
    thread_ts: str | None = Field(
        default=None, description="A reply in this message's thread (Slack's ts of its first message), not the channel."
    )
