"""The tools of a Responses request: what the model is offered, and what is not served.

Client-executed tools are served: flat `function` tools, and `namespace` groups of them
(the model's call names the inner tool; the call item carries the namespace). Tools the
server would run (`web_search`, `code_interpreter`, `mcp` …) cannot run here: they are
left out of what the model sees, out of the response's `tools` echo, and named in the
`x-corral-tools-ignored` header, or refused with 400 where the operator set
`responses.refuse_hosted_tools`. `file_search` is run here, over the caller's vector
stores (``responses.file_search``): the model is offered a `file_search` function whose
call corral answers itself.

`custom` (free-form) tools are served on the same core: the model's call is a function
call whose only argument is the ``input`` string, so the core's constrained decoding
holds for them too. A `regex` grammar becomes that string's JSON-schema ``pattern``,
which the engine's constrained decoder (llguidance in llama.cpp, xgrammar in vLLM)
enforces on the decoded string; a `lark` grammar is refused with 400, never ignored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from corral.core.errors import InvalidRequestError, UnsupportedParameterError
from corral.core.field_errors import Loc, param_of, strictly
from corral.inference.mcp import McpRequest, echoed, parse_tool
from corral.inference.regex_grammar import Unsupported, json_safe_pattern
from corral.inference.tool_schema import check_parameters
from corral.inference.tool_stream import decode_body, decoded_prefix
from corral.mcp.client import McpClient
from corral.protocol.responses import (
    CustomToolParam,
    FunctionToolParam,
    NamespaceToolParam,
    ToolParam,
)

Item = dict[str, Any]
SEPARATOR = "__"  # a namespaced tool's name as the core sees it: "<namespace>__<name>"
INPUT = "input"  # a custom tool's call, as the core sees it: {"input": <the free-form text>}


FILE_SEARCH = "file_search"  # the core's function for the file_search tool
MAX_STORES = 2  # vector stores one file_search searches (OpenAI's limit)
MAX_QUERIES = 2  # of 80 characters at most: a call fits in ~200 tokens even digit by digit


@dataclass(frozen=True)
class FileSearch:
    """A request's `file_search` tool: where corral searches when the model asks."""

    vector_store_ids: tuple[str, ...]
    max_num_results: int | None
    filters: Item | None
    ranking_options: Item | None


FILE_SEARCH_FUNCTION: Item = {
    "type": "function",
    "function": {
        "name": FILE_SEARCH,
        "description": "Search the user's files for passages that answer the question.",
        "parameters": {
            "type": "object",
            "properties": {
                "queries": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": 80},
                    "minItems": 1,
                    "maxItems": MAX_QUERIES,
                }
            },
            "required": ["queries"],
            "additionalProperties": False,
        },
    },
}


def _file_search(tool: Item, param: str) -> FileSearch:
    ids = tool.get("vector_store_ids")
    if (
        not isinstance(ids, list)
        or not ids
        or len(ids) > MAX_STORES
        or not all(isinstance(i, str) and i for i in ids)
    ):
        raise InvalidRequestError(
            f"`file_search` needs `vector_store_ids`: 1 to {MAX_STORES} vector store ids.",
            param=f"{param}.vector_store_ids",
        )
    limit = tool.get("max_num_results")
    if limit is not None and (not isinstance(limit, int) or not 1 <= limit <= 50):
        raise InvalidRequestError(
            "`max_num_results` must be an integer from 1 to 50.", param=f"{param}.max_num_results"
        )
    for key in ("filters", "ranking_options"):
        if tool.get(key) is not None and not isinstance(tool[key], dict):
            raise InvalidRequestError(f"`{key}` must be an object.", param=f"{param}.{key}")
    return FileSearch(tuple(ids), limit, tool.get("filters"), tool.get("ranking_options"))


@dataclass
class ToolSet:
    chat: list[Item] = field(default_factory=list)  # chat tools the core offers the model
    honoured: list[Item] = field(default_factory=list)  # the request's tools, as served
    left_out: list[str] = field(default_factory=list)  # hosted tool types not run
    # chat name → (namespace, name) for namespaced tools
    names: dict[str, tuple[str, str]] = field(default_factory=dict)
    custom: set[str] = field(default_factory=set)  # chat names of custom (free-form) tools
    file_search: FileSearch | None = None  # the request's, when corral runs it
    mcp: McpRequest | None = None  # the request's MCP servers, when corral may reach them

    def is_custom(self, chat_name: str) -> bool:
        return chat_name in self.custom

    def call_name(self, chat_name: str) -> tuple[str | None, str]:
        """The (namespace, name) a call of the core's tool ``chat_name`` is reported as."""
        return self.names.get(chat_name, (None, chat_name))


def chat_name(namespace: str | None, name: str) -> str:
    return f"{namespace}{SEPARATOR}{name}" if namespace else name


def _function(tool: Item, name: str, param: str) -> Item:
    if tool.get("parameters") is not None:
        check_parameters(tool["name"], tool["parameters"], f"{param}.parameters")
    function: Item = {"name": name}
    # null is "none given" (the SDK types `parameters` as required but nullable)
    function.update({k: tool[k] for k in ("description", "parameters") if tool.get(k) is not None})
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


# The client tools corral serves, checked field by field as OpenAI checks them.
CHECKED: dict[str, type[BaseModel]] = {
    "function": FunctionToolParam,
    "custom": CustomToolParam,
    "namespace": NamespaceToolParam,
}


def _checked(tool: Item, loc: Loc) -> str:
    """The tool's type, once the tool is checked as its kind is."""
    strictly(ToolParam, tool, loc)
    model = CHECKED.get(tool["type"])
    if model is not None:
        strictly(model, tool, loc)
    return str(tool["type"])


def _refuse(kind: object, param: str, why: str) -> UnsupportedParameterError:
    return UnsupportedParameterError(f"Tool type `{kind}` is not supported: {why}", param=param)


def _namespace(tool: Item, loc: Loc, tools: ToolSet) -> None:
    param = param_of(loc)
    namespace = tool["name"]  # checked (NamespaceToolParam), as each inner tool is
    for index, inner in enumerate(tool["tools"]):
        if _checked(inner, (*loc, "tools", index)) != "function":
            why = "a namespace serves function tools only."
            raise _refuse(inner["type"], f"{param}.tools[{index}].type", why)
        name = chat_name(namespace, inner["name"])
        tools.chat.append(_function(inner, name, f"{param}.tools[{index}]"))
        tools.names[name] = (namespace, inner["name"])


def _input_schema(tool: Item, param: str) -> Item:
    """The JSON schema of a custom tool's ``{"input": …}``: a string, matching the regex
    grammar whole where there is one."""
    text: Item = {"type": "string"}
    fmt = tool.get("format")
    if fmt is None or fmt == {"type": "text"}:
        pass
    elif not isinstance(fmt, dict) or fmt.get("type") not in ("text", "grammar"):
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise InvalidRequestError(
            f"Unknown custom tool format `{kind}`: use text or grammar.", param=f"{param}.format"
        )
    elif fmt.get("type") == "grammar":
        text["pattern"] = _pattern(fmt, f"{param}.format")
    schema: Item = {"type": "object", "properties": {INPUT: text}, "required": [INPUT]}
    return {**schema, "additionalProperties": False}


def _pattern(fmt: Item, param: str) -> str:
    syntax, definition = fmt.get("syntax"), fmt.get("definition")
    if syntax == "lark":
        raise UnsupportedParameterError(
            "Lark grammars are not supported for custom tools: this server cannot enforce "
            "them, and does not ignore them. Use syntax `regex`, or format `text`.",
            param=f"{param}.syntax",
        )
    if syntax != "regex":
        raise InvalidRequestError(
            f"Unknown grammar syntax `{syntax}`: use regex or lark.", param=f"{param}.syntax"
        )
    if not isinstance(definition, str) or not definition:
        raise InvalidRequestError("A grammar needs a `definition`.", param=f"{param}.definition")
    try:
        # Anchored: the whole input must match, as OpenAI's grammar does.
        return json_safe_pattern(definition)
    except re.error as exc:
        raise InvalidRequestError(
            f"The regex grammar does not compile: {exc}.", param=f"{param}.definition"
        ) from exc
    except Unsupported as exc:
        raise UnsupportedParameterError(
            f"This regex grammar cannot be enforced: {exc}.", param=f"{param}.definition"
        ) from exc


def _custom(tool: Item, param: str, tools: ToolSet) -> None:
    name = tool["name"]  # checked (CustomToolParam)
    function: Item = {"name": name, "parameters": _input_schema(tool, param)}
    if tool.get("description"):
        function["description"] = tool["description"]
    tools.chat.append({"type": "function", "function": function})
    tools.custom.add(name)


def toolset(
    requested: list[Item] | None,
    refuse_hosted: bool,
    file_search: bool = False,
    mcp: McpClient | None = None,
) -> ToolSet:
    """``file_search``: corral can run it (vector stores are served here); ``mcp``: the
    client for remote MCP servers (their tools are offered once listed: ``McpRequest``)."""
    tools = ToolSet()
    for index, tool in enumerate(requested or ()):
        kind, param = _checked(tool, ("tools", index)), f"tools[{index}]"
        if kind == "mcp" and mcp is not None:
            tools.mcp = tools.mcp or McpRequest([])
            tools.mcp.servers.append(parse_tool(tool, param, mcp))
            tools.honoured.append(echoed(tool))
            continue
        if kind == "file_search" and file_search:
            if tools.file_search is not None:
                raise InvalidRequestError("One `file_search` tool at most.", param=param)
            tools.file_search = _file_search(tool, param)
            tools.chat.append(FILE_SEARCH_FUNCTION)
        elif kind == "function":
            tools.chat.append(_function(tool, tool["name"], param))
        elif kind == "namespace":
            _namespace(tool, ("tools", index), tools)
        elif kind == "custom":
            _custom(tool, param, tools)
        elif refuse_hosted:
            raise _refuse(kind, f"{param}.type", "this server runs client-executed tools only.")
        else:
            tools.left_out.append(str(kind))
            continue
        tools.honoured.append(tool)
    _check_server_tools(tools)
    return tools


def _check_server_tools(tools: ToolSet) -> None:
    if tools.mcp is not None:
        labels = [s.label for s in tools.mcp.servers]
        if len(set(labels)) < len(labels):
            raise InvalidRequestError(
                "Each `mcp` tool needs its own `server_label`.", param="tools"
            )
        if tools.file_search is not None:
            raise UnsupportedParameterError(
                "`file_search` and `mcp` tools in one request are not supported yet.",
                param="tools",
            )
    names = [t["function"]["name"] for t in tools.chat]
    if tools.file_search is not None and names.count(FILE_SEARCH) > 1:
        raise InvalidRequestError(
            f"A function named `{FILE_SEARCH}` cannot be used beside the file_search tool.",
            param="tools",
        )


def custom_input(arguments: str) -> str:
    """A custom tool call's input, from the core's ``{"input": …}`` arguments."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return partial_input(arguments)  # a call cut by max_tokens: as far as it got
    text = value.get(INPUT) if isinstance(value, dict) else None
    return text if isinstance(text, str) else ""


def partial_input(arguments: str) -> str:
    """What a streamed custom call's ``{"input": "…`` says so far, decoded: the text up to
    the last complete character (an escape cut short waits for its next piece)."""
    match = _OPENING.match(arguments)
    if match is None:
        return ""
    raw = arguments[match.end() :]
    end = _closing_quote(raw)
    if end is not None:
        raw = raw[:end]
    return decoded_prefix(raw, final=end is not None)


_OPENING = re.compile(r'\s*\{\s*"input"\s*:\s*"')
_HIGH_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}$")


class InputDecoder:
    """A streamed custom call's input, decoded piece by piece from the core's
    ``{"input": "…`` arguments: each raw character read once (a long input, a patch say,
    is not decoded again from its start on every token, as ``partial_input`` would)."""

    def __init__(self) -> None:
        self._head = ""  # the arguments until the string opens
        self._opened = False
        self._pending = ""  # raw string body not yet decoded (a cut escape)
        self._escaped = False
        self._closed = False

    def feed(self, text: str) -> str:
        """The input's characters that this piece made certain."""
        if self._closed:
            return ""
        if not self._opened:
            self._head += text
            match = _OPENING.match(self._head)
            if match is None:
                return ""
            self._opened, text = True, self._head[match.end() :]
        end = self._closing(text)
        if end is not None:
            text, self._closed = text[:end], True
        return self._decode(self._pending + text)

    def _closing(self, text: str) -> int | None:
        for index, char in enumerate(text):
            if self._escaped:
                self._escaped = False
            elif char == "\\":
                self._escaped = True
            elif char == '"':
                return index
        return None

    def _decode(self, raw: str) -> str:
        cut = len(raw)
        decoded = decode_body(raw)
        while decoded is None and cut:  # an escape cut short: decode up to it
            cut = raw.rfind("\\", 0, cut)
            cut = max(cut, 0)
            decoded = decode_body(raw[:cut])
        if not self._closed and _HIGH_SURROGATE_ESCAPE.search(raw[:cut]):
            cut -= 6  # the pair's second half comes next
            decoded = decode_body(raw[:cut])
        self._pending = raw[cut:]
        return decoded or ""


def _closing_quote(raw: str) -> int | None:
    escaped = False
    for index, char in enumerate(raw):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return index
    return None
