"""sophia-mcp: MCP servers over a revenue team's workflows (calls, CRM, knowledge, alerts, issues)."""

__version__ = "0.1.0"
