from sophia_mcp.cli import main

main()
