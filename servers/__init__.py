"""The MCP surface: one module per server (gong, crm, knowledge, alerts, linear, composite). This folder sits at the
project's top level and installs as `sophia_mcp.servers` (see `package-dir` in pyproject.toml), so nothing named plainly
`servers` lands in site-packages."""
