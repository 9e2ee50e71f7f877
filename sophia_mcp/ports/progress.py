"""The `Progress` port: how a workflow tells whoever started it how far it is (done, total, what it is on)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Progress = Callable[[float, float, str], Awaitable[None]]
