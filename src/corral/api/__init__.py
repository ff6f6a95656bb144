"""HTTP only: routers, request parsing, SSE, error mapping."""
