"""Serving a server over Streamable HTTP or SSE: authentication, limits, connections."""
