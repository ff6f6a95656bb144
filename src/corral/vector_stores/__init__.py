"""Vector stores: files parsed, chunked, embedded and searched by keyword and vector."""
