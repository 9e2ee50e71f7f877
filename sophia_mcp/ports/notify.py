"""The `Notifier` port: how an alert reaches people (the local outbox, or Slack)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from sophia_mcp.domain.notify import Alert


class Notifier(Protocol):
    name: str

    async def send(self, alert: Alert) -> str:
        """Deliver the alert and return the receiver's reference for it (a Slack `ts`, a local id)."""
        ...

    async def already_sent(self, alert: Alert) -> str | None:
        """The reference of an earlier delivery of this alert whose answer was lost, if there was one."""
        ...


@runtime_checkable
class ChannelHistory(Protocol):
    """A notifier that can read a channel's messages (Slack's `conversations.history`): what the slack-bugs
    connector polls."""

    async def channel_messages(self, channel: str, oldest: str) -> tuple[str, list[dict[str, Any]]]:
        """The channel's id and its messages posted after `oldest` (a ts), oldest first."""
        ...
