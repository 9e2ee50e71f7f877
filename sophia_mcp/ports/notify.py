"""The `Notifier` port: how an alert reaches people (the local outbox, or Slack)."""

from __future__ import annotations

from typing import Protocol

from sophia_mcp.domain.notify import Alert


class Notifier(Protocol):
    name: str

    async def send(self, alert: Alert) -> str:
        """Deliver the alert and return the receiver's reference for it (a Slack `ts`, a local id)."""
        ...

    async def already_sent(self, alert: Alert) -> str | None:
        """The reference of an earlier delivery of this alert whose answer was lost, if there was one."""
        ...
