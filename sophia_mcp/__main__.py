from sophia_mcp.cli.main import app

app()
