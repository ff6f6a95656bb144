"""Constrained tool output read as it is decoded, so a stream can send it as it comes.

In tool mode the model writes one JSON document (``inference.tools.output_schema``):
``{"tool_calls": [{"name": …, "arguments": {…}}, …]}`` or, in ``auto`` mode,
``{"content": "…"}`` (or ``{"content": {…}}`` where the request asked for a JSON answer:
its raw JSON text is the content). ``ToolStream.feed`` takes the text as the engine streams it and
returns what can be said already: content text (unescaped), a call's start once its
name is complete, and its arguments' raw JSON text piece by piece. A JSON library's
incremental parser would give values, not these pieces of text, and the grammar fixes
the document's shape, so a small scanner of its structure does: it tracks strings,
escapes and nesting, and where in the document each character falls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["content", "call", "arguments"]


@dataclass(frozen=True)
class Piece:
    kind: Kind
    text: str  # content text, a call's name, or a piece of its arguments' JSON
    index: int = 0  # the call's index


@dataclass
class _Frame:
    container: Literal["object", "array"]
    key: str | None = None  # objects: the key whose value comes next (or is being read)
    expecting_key: bool = True
    index: int = 0  # arrays: the element being read


@dataclass
class ToolStream:
    calls: int = 0  # calls started so far
    _stack: list[_Frame] = field(default_factory=list)
    _in_string: bool = False
    _escaped: bool = False
    _is_key: bool = False
    _raw: list[str] = field(default_factory=list)  # the string being read, undecoded
    _sent: int = 0  # content characters already returned
    _arguments_depth: int | None = None  # stack depth where an arguments object opened
    _object_depth: int | None = None  # stack depth where a JSON answer's object opened

    def feed(self, text: str) -> list[Piece]:
        pieces: list[Piece] = []
        for char in text:
            self._char(char, pieces)
        if self._in_content():
            self._content(pieces, final=False)
        return _merged(pieces)

    # --- where we are ----------------------------------------------------------------

    def _path(self) -> list[str | int]:
        path: list[str | int] = []
        for frame in self._stack:
            if frame.container == "array":
                path.append(frame.index)
            elif frame.key is not None:
                path.append(frame.key)
        return path

    def _in_content(self) -> bool:
        return self._in_string and not self._is_key and self._path() == ["content"]

    def _in_arguments(self) -> bool:
        return self._arguments_depth is not None

    # --- characters ------------------------------------------------------------------

    def _char(self, char: str, pieces: list[Piece]) -> None:
        inside, answer = self._in_arguments(), self._object_depth is not None
        if inside:
            pieces.append(Piece("arguments", char, self.calls - 1))
        elif answer:
            pieces.append(Piece("content", char))
        self._structure(char, pieces)
        if not inside and self._in_arguments():  # the brace that opened them
            pieces.append(Piece("arguments", char, self.calls - 1))
        elif not answer and self._object_depth is not None:
            pieces.append(Piece("content", char))

    def _structure(self, char: str, pieces: list[Piece]) -> None:
        if self._in_string:
            self._string_char(char, pieces)
        elif char == '"':
            top = self._stack[-1] if self._stack else None
            self._is_key = top is not None and top.container == "object" and top.expecting_key
            self._in_string, self._raw, self._sent = True, [], 0
        elif char in "{[":
            self._open(char)
        elif char in "}]":
            self._stack.pop()
            if self._arguments_depth is not None and len(self._stack) < self._arguments_depth:
                self._arguments_depth = None
            if self._object_depth is not None and len(self._stack) < self._object_depth:
                self._object_depth = None
        elif char == ":" and self._stack:
            self._stack[-1].expecting_key = False
        elif char == "," and self._stack:
            top = self._stack[-1]
            if top.container == "array":
                top.index += 1
            else:
                top.key, top.expecting_key = None, True

    def _open(self, char: str) -> None:
        path = self._path()
        if char == "{" and len(path) == 2 and path[0] == "tool_calls":
            self.calls += 1  # a call object opens
        if char == "{" and len(path) == 3 and path[0] == "tool_calls" and path[2] == "arguments":
            self._arguments_depth = len(self._stack) + 1
        if path == ["content"]:  # a JSON answer (the request's own schema)
            self._object_depth = len(self._stack) + 1
        self._stack.append(_Frame("object" if char == "{" else "array"))

    def _string_char(self, char: str, pieces: list[Piece]) -> None:
        if self._escaped:
            self._escaped = False
        elif char == "\\":
            self._escaped = True
        elif char == '"':
            self._end_string(pieces)
            return
        self._raw.append(char)

    def _end_string(self, pieces: list[Piece]) -> None:
        content = self._in_content()
        if content:
            self._content(pieces, final=True)
        self._in_string = False
        value = decode_body("".join(self._raw)) or ""
        if self._is_key:
            self._stack[-1].key = value
            return
        path = self._path()
        if len(path) == 3 and path[0] == "tool_calls" and path[2] == "name":
            pieces.append(Piece("call", value, self.calls - 1))

    def _content(self, pieces: list[Piece], final: bool) -> None:
        """Content decoded so far, less a trailing half of an escape or surrogate pair."""
        text = decoded_prefix("".join(self._raw), final)
        if len(text) > self._sent:
            pieces.append(Piece("content", text[self._sent :]))
            self._sent = len(text)


def decoded_prefix(raw: str, final: bool = False) -> str:
    """A JSON string's body (undecoded, maybe cut short) decoded as far as it is certain:
    less a trailing half of an escape, or of a surrogate pair unless ``final``."""
    text = decode_body(raw)
    while text is None and raw:  # an escape cut short: decode up to it
        raw = raw[: raw.rfind("\\")]
        text = decode_body(raw)
    text = text or ""
    if not final and text and "\ud800" <= text[-1] <= "\udbff":
        text = text[:-1]  # the pair's second half comes next
    return text


def decode_body(raw: str) -> str | None:
    try:
        value = json.loads('"' + raw + '"')
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _merged(pieces: list[Piece]) -> list[Piece]:
    """Consecutive pieces of one kind and call as one."""
    merged: list[Piece] = []
    for piece in pieces:
        last = merged[-1] if merged else None
        if last and piece.kind != "call" and (last.kind, last.index) == (piece.kind, piece.index):
            merged[-1] = Piece(piece.kind, last.text + piece.text, piece.index)
        else:
            merged.append(piece)
    return merged


def _wrapper(held: str) -> bool | None:
    """Whether text opens with corral's wrapper (``{"content"`` or ``{"tool_calls"``,
    spaced as JSON allows); None while its first characters cannot tell."""
    text = held.lstrip()
    if not text or text[0] != "{":
        return None if not text else False
    rest = text[1:].lstrip()
    if not rest or rest[0] != '"':
        return None if not rest else False
    key = rest[1:]
    for name in ('content"', 'tool_calls"'):
        if key.startswith(name):
            return True
        if name.startswith(key):
            return None
    return False


@dataclass
class WordsGuard:
    """An answer in words read under the tools prompt (``inference.tools.plan_tools``):
    the model was told to reply with corral's JSON, and unconstrained it nearly always
    writes words (8 of 8 and 9 of 9 on the tool-use eval's irrelevance and results
    items). Where it writes the wrapper anyway, its content is the answer and a call
    is dropped: the wrapper is never shown. Text is held only until its first
    characters tell which it is."""

    _held: str = ""
    _stream: ToolStream | None = None
    _plain: bool = False

    def feed(self, text: str) -> str:
        if self._plain:
            return text
        if self._stream is not None:
            return content_of(self._stream.feed(text))
        self._held += text
        wrapper = _wrapper(self._held)
        if wrapper is None:
            return ""
        held, self._held = self._held, ""
        if not wrapper:
            self._plain = True
            return held
        self._stream = ToolStream()
        return content_of(self._stream.feed(held))

    def flush(self) -> str:
        """What is still held at the end: words that never told."""
        held, self._held = self._held, ""
        return held


def content_of(pieces: list[Piece]) -> str:
    """The content text among ``pieces`` (calls and their arguments left out)."""
    return "".join(p.text for p in pieces if p.kind == "content")


def words_text(text: str) -> str:
    """A whole answer in words, as ``WordsGuard`` streams it."""
    guard = WordsGuard()
    return guard.feed(text) + guard.flush()
