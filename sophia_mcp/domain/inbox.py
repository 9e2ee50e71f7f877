"""Events from outside (a provider's webhook, or a polling connector), as the inbox keeps them.

An event is identified by its source and the id the source gives it (Slack's `event_id`, HubSpot's `eventId`,
Linear's delivery, a Gong call's id, GitHub's `X-GitHub-Delivery`, Vercel's event `id`, a file's path and content
hash), so the same event received twice (a retry, a replay, a webhook and a poll that saw the same call) is kept
once and acted on once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from sophia_mcp.domain.model import Model

InboxStatus = Literal["pending", "working", "done", "ignored", "dead"]
Source = Literal["slack", "hubspot", "linear", "gong", "folder", "github", "vercel"]
Via = Literal["webhook", "poll"]


@dataclass(frozen=True)
class Incoming:
    """An event as received, before the inbox keeps it. `kind` names the action that handles it
    (`workflows.event_actions.ACTIONS`): `slack.message`, `hubspot.contact`, `linear.issue`, `gong.call`,
    `folder.file`, `github.pull_request`, `vercel.deployment`."""

    source: Source
    event_id: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    via: Via = "webhook"


class InboxEvent(Model):
    id: int
    source: Source
    event_id: str = Field(description="The source's own id for the event; an event is kept once per id.")
    kind: str = Field(description="What it is, and so what handles it: slack.message, hubspot.contact, ...")
    via: Via
    status: InboxStatus = Field(
        description="pending (waiting, or waiting to retry), working, done, ignored (nothing to do), dead (gave up)."
    )
    attempts: int
    deliveries: int = Field(description="How many times it was received (the first delivery and any repeats).")
    received_at: datetime
    next_at: datetime = Field(description="When it is (next) due to be processed.")
    finished_at: datetime | None
    last_error: str | None
    result: dict[str, Any] | None = Field(description="What processing it came to.")
    payload: dict[str, Any]
