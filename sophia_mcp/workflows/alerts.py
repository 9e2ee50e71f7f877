"""Sending an alert: routed to its topic's channel, kept in the outbox, sent once per key within a window.

The alert is written to the outbox before it is sent, so Slack being down loses nothing: it stays pending and
goes out on a later retry (the server retries in the background, `retry_alerts` and `outbox deliver` on demand).
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from pydantic import Field

from sophia_mcp.app.services import Services
from sophia_mcp.domain.model import Model
from sophia_mcp.domain.notify import Alert, Severity
from sophia_mcp.domain.outbox import OutboxEntry
from sophia_mcp.errors import InvalidInput, NotFound
from sophia_mcp.workflows.delivery import deliver, deliver_pending


class SentAlert(Model):
    entry: OutboxEntry
    new: bool = Field(description="False when the same alert (same key) was already raised within the window.")


def default_key(channel: str, severity: str, title: str, text: str) -> str:
    """An alert without a key is keyed by its content: the same message to the same channel is one alert."""
    return "alert:" + hashlib.sha256(f"{channel}\n{severity}\n{title}\n{text}".encode()).hexdigest()[:20]


async def send_alert(
    services: Services,
    text: str,
    *,
    severity: Severity = "warning",
    channel: str | None = None,
    topic: str | None = None,
    title: str | None = None,
    blocks: list[dict[str, Any]] | None = None,
    key: str | None = None,
    once: bool = False,
) -> SentAlert:
    """Keep and send an alert, unless one of its key was kept within the dedupe window (`once`: ever)."""
    if not text.strip():
        raise InvalidInput("text is blank: give the alert's message, in plain text")
    settings = services.settings.alerts
    target = channel or settings.channel_for(topic)
    heading = (title or "").strip() or text.strip().splitlines()[0][:120]
    alert = Alert(
        key=key or default_key(target, severity, heading, text), channel=target, severity=severity, title=heading,
        text=text, blocks=blocks or [],
    )  # fmt: skip
    window = timedelta(minutes=settings.dedupe_minutes) if settings.dedupe_minutes > 0 else None
    entry, new = await (services.outbox.enqueue(alert) if once else services.outbox.enqueue_within(alert, window))
    if new:
        entry = await deliver(services, entry.id)
    return SentAlert(entry=entry, new=new)


async def retry_alerts(services: Services, ids: list[int] | None = None) -> list[OutboxEntry]:
    """Send again what is pending: the entries named, or every pending one."""
    if not ids:
        return await deliver_pending(services)
    out = []
    for entry_id in ids:
        try:
            out.append(await deliver(services, entry_id))
        except LookupError:
            raise NotFound(f"No alert {entry_id}; list_alerts shows them") from None
    return out
