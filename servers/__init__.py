"""The MCP surface: one module per server (gong, crm, knowledge, alerts, linear, composite). This folder sits at the
project's top level and installs as `sophia_mcp.servers` (see `package-dir` in pyproject.toml), so nothing named plainly
`servers` lands in site-packages.

The server modules do not postpone their annotations (no `from __future__ import annotations`): the SDK reads every
tool's, resource's and prompt's signature as a server is built, and postponed ones are strings it must evaluate one
by one, at every start."""
