"""Starting a server: what `sophia-mcp serve NAME` runs, over stdio or HTTP."""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from pydantic import ValidationError

from sophia_mcp.app.logs import configure_logging
from sophia_mcp.app.telemetry import configure_from_environment, shutdown
from sophia_mcp.cli import started
from sophia_mcp.settings import Settings, load_settings

SERVER_NAMES = ("composite", "gong", "crm", "knowledge", "alerts", "linear")


def _settings_for(service: str) -> Settings:
    """The settings, with logging and telemetry configured for `service`; exit 2 naming what is wrong in them."""
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(settings_problems(exc), file=sys.stderr)
        raise SystemExit(2) from exc
    configure_logging(settings.log_level)
    configure_from_environment(service)
    return settings


def run_server(name: str, transport: str, host: str, port: int) -> None:
    """Run one server until its transport ends. Under stdio nothing but protocol is written to stdout."""
    settings = _settings_for(f"sophia-{name}")
    try:
        if transport == "stdio":
            with _starting():
                server = _server_module(name).create_server(settings, log_level=settings.log_level)
            server.client_is_local = True  # the client runs here: its file:// roots name this machine's folders
            # Ctrl-C ends the server at once, in one line: stdin is read in a thread that would otherwise hold the
            # process until the next line arrives. Whatever was under way is as after a crash: the store is safe.
            signal.signal(signal.SIGINT, _stopped)
            if sys.stdin.isatty():
                print(
                    f"sophia-mcp: {server.name} speaks MCP on stdin and stdout, for an MCP client to start (see "
                    "mcp.json); for a person, try --transport http, or sophia-mcp --help. Ctrl-C stops it.",
                    file=sys.stderr,
                )
            try:
                server.run("stdio")
            finally:
                server.close()
        else:
            # The HTTP stack (uvicorn's protocols, our auth, limits and connection guards) loads when HTTP is
            # chosen: a desktop client starts its server over stdio, once per session, and waits for that start.
            from sophia_mcp.http.serving import NotSafeToServe, serve_http

            try:
                # The composite has every workflow: it receives the webhooks that start them, beside /mcp.
                serve_http(
                    _server_module(name).create_server, settings, transport, host, port, hooks=name == "composite"
                )
            except NotSafeToServe as exc:
                print(exc, file=sys.stderr)
                raise SystemExit(2) from exc
    finally:
        shutdown()


def run_hooks(host: str, port: int) -> None:
    """Serve only the webhook receivers, and the inbox worker that processes what they keep, until stopped."""
    settings = _settings_for("sophia-hooks")
    from sophia_mcp.http.serving import NotSafeToServe, serve_hooks

    try:
        serve_hooks(settings, host, port)
    except NotSafeToServe as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from exc
    finally:
        shutdown()


def _server_module(name: str) -> Any:
    """Only the server asked for is imported: the others' modules are no part of its start."""
    return importlib.import_module(f"sophia_mcp.servers.{name}")


@contextmanager
def _starting() -> Iterator[None]:
    """No garbage collection while a server is built (its tools and schemas live as long as it does), as during the
    program's own start (`main` in sophia_mcp/cli/__init__.py, the entry point)."""
    gc.disable()
    try:
        yield
    finally:
        started()


def _stopped(signum: int, frame: FrameType | None) -> None:
    print("sophia-mcp: stopped", file=sys.stderr, flush=True)
    os._exit(130)


def settings_problems(error: Any) -> str:
    """A pydantic error about the settings, as one line per setting: its variable and what it needs."""
    lines = []
    for problem in error.errors(include_url=False):
        name = "SOPHIA_" + "__".join(str(part) for part in problem["loc"]).upper()
        given = "" if problem["type"] == "missing" else f" (got {problem['input']!r:.60})"
        lines.append(f"sophia-mcp: {name}: {problem['msg']}{given}")
    return "\n".join(lines)
