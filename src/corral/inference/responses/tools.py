"""The tools of a Responses request: what the model is offered, and what is not served.

Client-executed tools are served: flat `function` tools, and `namespace` groups of them
(the model's call names the inner tool; the call item carries the namespace). Tools the
server would run (`web_search`, `file_search`, `code_interpreter`, `mcp` …) cannot run
here: they are left out of what the model sees, out of the response's `tools` echo, and
named in the `x-corral-tools-ignored` header, or refused with 400 where the operator set
`responses.refuse_hosted_tools`. `custom` (free-form) tools are refused: their grammar
would have to be enforced, and is not yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.core.errors import UnsupportedParameterError

Item = dict[str, Any]
SEPARATOR = "__"  # a namespaced tool's name as the core sees it: "<namespace>__<name>"


@dataclass
class ToolSet:
    chat: list[Item] = field(default_factory=list)  # chat tools the core offers the model
    honoured: list[Item] = field(default_factory=list)  # the request's tools, as served
    left_out: list[str] = field(default_factory=list)  # hosted tool types not run
    # chat name → (namespace, name) for namespaced tools
    names: dict[str, tuple[str, str]] = field(default_factory=dict)

    def call_name(self, chat_name: str) -> tuple[str | None, str]:
        """The (namespace, name) a call of the core's tool ``chat_name`` is reported as."""
        return self.names.get(chat_name, (None, chat_name))


def chat_name(namespace: str | None, name: str) -> str:
    return f"{namespace}{SEPARATOR}{name}" if namespace else name


def _function(tool: Item, name: str) -> Item:
    function: Item = {"name": name}
    function.update({k: tool[k] for k in ("description", "parameters") if k in tool})
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _refuse(kind: object, param: str, why: str) -> UnsupportedParameterError:
    return UnsupportedParameterError(f"Tool type `{kind}` is not supported: {why}", param=param)


def _namespace(tool: Item, param: str, tools: ToolSet) -> None:
    namespace = tool.get("name")
    if not isinstance(namespace, str) or not namespace:
        raise UnsupportedParameterError("A namespace needs a `name`.", param=f"{param}.name")
    for index, inner in enumerate(tool.get("tools") or ()):
        if inner.get("type") != "function":
            why = "a namespace serves function tools only."
            raise _refuse(inner.get("type"), f"{param}.tools[{index}].type", why)
        name = chat_name(namespace, str(inner.get("name")))
        tools.chat.append(_function(inner, name))
        tools.names[name] = (namespace, str(inner.get("name")))


def toolset(requested: list[Item] | None, refuse_hosted: bool) -> ToolSet:
    tools = ToolSet()
    for index, tool in enumerate(requested or ()):
        kind, param = tool.get("type"), f"tools[{index}]"
        if kind == "function":
            tools.chat.append(_function(tool, str(tool.get("name"))))
        elif kind == "namespace":
            _namespace(tool, param, tools)
        elif kind == "custom":
            raise _refuse(kind, f"{param}.type", "free-form tools' grammars are not enforced yet.")
        elif refuse_hosted:
            raise _refuse(kind, f"{param}.type", "this server runs client-executed tools only.")
        else:
            tools.left_out.append(str(kind))
            continue
        tools.honoured.append(tool)
    return tools
