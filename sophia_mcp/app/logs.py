"""Logging for every sophia-mcp process: configured once, at the level `SOPHIA_LOG_LEVEL` asks for, to stderr.

It must happen before anything imports a library that configures logging on import (wordllama calls
`logging.basicConfig(level=INFO)`): that call then finds a handler in place and does nothing, so the level stays
the user's. On a terminal the records go through rich's handler (so they sit above progress bars), elsewhere
(a client's log file, a pipe) as plain lines.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class _ToStderr(logging.StreamHandler[Any]):
    """Plain lines to whatever `sys.stderr` is when a record comes, not what it was when logging was configured: a
    host (or a test's capture) that swaps stderr and closes the old one would otherwise get a logging error."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(level: str) -> None:
    handler: logging.Handler
    if sys.stderr.isatty():
        # Loaded only for a terminal: a client's server logs to a file or a pipe, and waits for the start.
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    else:
        handler = _ToStderr()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
