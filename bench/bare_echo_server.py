"""The yardstick: a bare MCPServer with one echo tool, started the way sophia-mcp servers are.

stdio by default; `--http PORT` serves Streamable HTTP on 127.0.0.1:PORT at /mcp (logging at WARNING, as the
load bench runs the server it compares with), `--stateless` without sessions, as the composite's replicas run;
`--uvloop` on uvloop's event loop (the loop the composite serves HTTP on) instead of asyncio's, where the SDK's
own `run` puts it.
"""

import functools
import sys

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare-echo", log_level="WARNING" if "--http" in sys.argv else "INFO")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    if "--http" in sys.argv:
        port = int(sys.argv[sys.argv.index("--http") + 1])
        serve = functools.partial(
            server.run_streamable_http_async, host="127.0.0.1", port=port, stateless_http="--stateless" in sys.argv
        )
        anyio.run(serve, backend_options={"use_uvloop": "--uvloop" in sys.argv})
    else:
        server.run()
