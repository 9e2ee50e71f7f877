"""The `sophia-mcp` command line: serving, the workflows, the store."""

import gc
import sys


def main() -> None:
    """The command's entry point: the command line, with no garbage collection while the program starts.

    A start imports and builds what lives as long as the process (pydantic's and the SDK's models, typer's command
    tree, a server's tools and their schemas); the collector, run again and again as those pile up, walks them all
    and frees nothing. `started` turns it back on once a command is about to do its work.

    `sophia-mcp serve NAME`, as an MCP client starts a server over stdio (mcp.json), goes straight to the server:
    the client waits for that start, and the rest of the command line (typer, rich, every command) is not needed
    for it. Anything else, `serve` with options included, is parsed by the command line."""
    gc.disable()
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        from sophia_mcp.cli.serve import SERVER_NAMES, run_server

        if sys.argv[2] in SERVER_NAMES:
            started()
            run_server(sys.argv[2], "stdio", "127.0.0.1", 8000)
            return
    from sophia_mcp.cli.main import app  # imported after gc.disable(): loading it is most of the start

    app()


def started() -> None:
    """The start is over: what it made is set aside from the collector's walks (`gc.freeze`), which resume."""
    gc.freeze()
    gc.enable()
