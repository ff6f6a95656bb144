"""Opaque ids in OpenAI's style (``chatcmpl-…``)."""

from __future__ import annotations

import secrets


def new_id(prefix: str, sep: str = "-") -> str:
    """``sep``: the Responses API's objects use ``_`` (``resp_…``, ``msg_…``, ``fc_…``)."""
    return f"{prefix}{sep}{secrets.token_urlsafe(18).replace('-', 'x').replace('_', 'y')}"
