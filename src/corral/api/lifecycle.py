"""Adds the model lifecycle headers the services noted to each HTTP response."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from corral.catalog.lifecycle import LifecycleNote, current_note


class LifecycleHeaders:
    """Pure ASGI: the note is a mutable holder, so tasks spawned downstream (which copy
    the context) still write into it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        note = LifecycleNote()
        token = current_note.set(note)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and note.headers:
                extra = [(k.encode(), v.encode()) for k, v in note.headers.items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            current_note.reset(token)
