"""The MCP surface shared by every server: the server class, its middleware, bounded input types, cursors."""
