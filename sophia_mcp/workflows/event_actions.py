"""What each kind of event from outside does, by kind (`Incoming.kind`): filled below, one action per kind.

An action is idempotent (its side effects carry keys derived from the event), so an event processed again after
a worker died half-way does nothing twice. It returns a summary for the inbox, or raises `Ignored` when the event
asks for nothing (a bot's own message, a property nobody reads).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sophia_mcp.app.services import Services
from sophia_mcp.domain.inbox import InboxEvent
from sophia_mcp.workflows.watched_folder import apply_folder_file


class Ignored(Exception):
    """The event needs nothing done; its text says why (kept as the event's result)."""


Action = Callable[[Services, InboxEvent], Awaitable[dict[str, Any]]]

ACTIONS: dict[str, Action] = {"folder.file": apply_folder_file}
