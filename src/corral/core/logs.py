"""Logging: text or JSON lines, each stamped with the request id it belongs to.

The request id lives in a context variable set where a request is admitted, so every
line logged while serving it (in any layer, in any task it starts) carries it.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("corral_request_id", default=None)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                rename_fields={"levelname": "level", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # One line per engine call (embedded child, upstreams) would double the log and cost
    # the hot path; corral's own request line already says what happened.
    if root.level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    # MCP connections carry a request's headers and tokens, which are never logged: the
    # MCP SDK and its HTTP client stay quiet below warnings, at every level.
    for name in ("mcp", "httpx2", "httpcore2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
