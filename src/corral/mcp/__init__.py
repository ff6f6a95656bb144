"""Remote MCP servers: connections corral makes for a request's tools, where allowed."""
