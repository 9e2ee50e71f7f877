"""The yardstick: a bare MCPServer with one echo tool, started the way sophia-mcp servers are (stdio)."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("bare-echo")


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


if __name__ == "__main__":
    server.run()
