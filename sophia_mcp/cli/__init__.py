"""The `sophia-mcp` command line: serving, the workflows, the store."""
