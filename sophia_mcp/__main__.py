from sophia_mcp.serving import main

main()
