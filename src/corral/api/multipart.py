"""Streaming multipart/form-data for uploads: the file part goes straight to an ``Upload``
(a temporary file, size-bounded as bytes arrive); other fields are small and bounded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header

from corral.core.errors import CorralError, InvalidRequestError, RequestTooLargeError

MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None


async def read_upload(request: Request, sink: Callable[[bytes], None], file_field: str) -> Form:
    """Parse the body, writing the ``file_field`` part's bytes to ``sink`` as they come."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise InvalidRequestError(
            "Send the file as multipart/form-data with `file` and `purpose` fields.",
            code="invalid_content_type",
        )
    form = Form()
    state: dict[str, object] = {"name": None, "filename": None, "buf": bytearray()}
    headers: dict[bytes, bytes] = {}
    header_field = bytearray()
    header_value = bytearray()
    parts = 0

    def on_part_begin() -> None:
        nonlocal parts
        parts += 1
        if parts > MAX_FIELDS:
            raise InvalidRequestError("Too many form fields.")
        headers.clear()
        state.update(name=None, filename=None, buf=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disp = parse_options_header(headers.get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if b"filename" in disp:
            state["filename"] = disp[b"filename"].decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["name"] == file_field:
            sink(data[start:end])
            return
        buf = state["buf"]
        assert isinstance(buf, bytearray)
        buf.extend(data[start:end])
        if len(buf) > MAX_FIELD_BYTES:
            raise RequestTooLargeError(f"The form field `{state['name']}` is too large.")

    def on_part_end() -> None:
        name = state["name"]
        if name == file_field:
            form.filename = str(state["filename"] or "upload")
        elif isinstance(name, str):
            buf = state["buf"]
            assert isinstance(buf, bytearray)
            form.fields[name] = buf.decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except CorralError:  # ours (too large, too many fields, a stalled body): as raised
        raise
    except Exception as exc:  # the parser's own errors: a malformed body
        raise InvalidRequestError(f"Malformed multipart body: {exc}") from exc
    return form
