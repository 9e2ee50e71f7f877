"""The `sophia-mcp` command line: serving, the workflows, the store."""

import gc


def main() -> None:
    """The command's entry point: the command line, with no garbage collection while the program starts.

    A start imports and builds what lives as long as the process (pydantic's and the SDK's models, typer's command
    tree, a server's tools and their schemas); the collector, run again and again as those pile up, walks them all
    and frees nothing. `started` turns it back on once a command is about to do its work."""
    gc.disable()
    from sophia_mcp.cli.main import app  # imported after gc.disable(): loading it is most of the start

    app()


def started() -> None:
    """The start is over: what it made is set aside from the collector's walks (`gc.freeze`), which resume."""
    gc.freeze()
    gc.enable()
