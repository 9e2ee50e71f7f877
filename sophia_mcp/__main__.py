from sophia_mcp.cli.serve import main

main()
