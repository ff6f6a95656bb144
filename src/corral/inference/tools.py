"""Tool calling for a model whose chat template knows no tools (the ``prompt`` format).

corral describes the tools in the system prompt and constrains the output with a JSON
schema of the allowed calls, so ``required`` and a named choice always yield a valid
call, ``none`` never does, and ``auto`` lets the model pick between a call and a plain
answer. History turns (assistant tool calls, tool results) are written in plain words
(``_engine_messages``): a small model copies what it sees, so it is never shown the
grammar's JSON wrapper. Three rules, each chosen on the tool-use evals
(docs/evals.md), keep ``auto`` from calling where it should answer:

- only the tools that share a subject word with the request may be called, and a
  request that shares none with any tool is answered in words (``offered``): a 135M
  model allowed tools calls one nearly always, the wrong one often. The prompt still
  describes every tool the request carries, so it is one prefix from turn to turn
  (the engine's cache reads it again); the grammar narrows;
- a call the answer already made, or whose result is already in the history, is
  dropped (``parse_output``): the model repeats what it saw;
- an answer left with neither text nor a call is asked again without the grammar,
  from the same prompt (``in_words``).

An answer in words is read through ``tool_stream.WordsGuard``: the model writes words,
and where it writes corral's wrapper anyway only its content is said.

Models whose template knows tools get them in their own format instead
(``inference.native_tools``, the ``native`` format; catalog ``tool_format``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from corral.core.ids import new_id
from corral.engines.base import Body
from corral.inference.native_tools import native_messages
from corral.inference.tool_stream import ToolStream, content_of, words_text
from corral.protocol.chat import (
    AssistantMessage,
    ChatCompletionRequest,
    FunctionCall,
    Message,
    NamedToolChoice,
    SystemMessage,
    Tool,
    ToolCall,
    ToolMessage,
    UserMessage,
    content_text,
)

# ``words``: tools described, none allowed (``auto`` where no tool fits the request).
Mode = Literal["off", "words", "auto", "forced"]
MAX_PARALLEL_CALLS = 8
# Bounding the calls by the output budget: a call's shortest text is priced at a token a
# character (JSON punctuation and digits are about that, and the grammar lets a model
# indent) and the wrapper at this many tokens, so a small model cannot repeat a call
# until ``max_tokens`` cuts it (seen: 37 tokens for one ``add`` call with its wrapper).
WRAPPER_TOKENS = 8


@dataclass(frozen=True)
class ToolPlan:
    mode: Mode
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    # ``call_key`` of the calls with a result in the history
    answered: frozenset[tuple[str, str]] = frozenset()
    # The native format: the tools and choice the engine gets beside the messages.
    native: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | None = None
    # The request's own JSON answer format, for an answer asked in words (the tools'
    # grammar carries it in its answer branch).
    answer_format: dict[str, Any] | None = None

    def spoken(self, text: str) -> str:
        """An answer in words as it is said: corral's wrapper never shown, unless the
        request asked for a JSON answer (then the text is that JSON)."""
        return text if self.answer_format is not None else words_text(text)

    def needs_answer(self, parsed: ParsedOutput) -> bool:
        """``auto`` left nothing to say (only repeated calls, or empty text): the model
        is asked again, without the grammar, and answers in words."""
        return self.mode == "auto" and not parsed.tool_calls and not (parsed.content or "").strip()


@dataclass(frozen=True)
class ParsedOutput:
    content: str | None
    tool_calls: list[ToolCall] | None


def _engine_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation in plain words: a past call as the assistant saying what it
    called, a result as the user turn that reports what the call returned. A small model
    copies what it sees, so the output grammar's JSON wrapper never appears here."""
    calls: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, AssistantMessage) and message.tool_calls:
            described = [
                call_text(c.function.name, c.function.arguments) for c in message.tool_calls
            ]
            calls.update((c.id, d) for c, d in zip(message.tool_calls, described, strict=True))
            said = content_text(message.content) if message.content else ""
            text = "\n".join(t for t in (said, CALLED.format(calls=", ".join(described))) if t)
            if text:
                out.append({"role": "assistant", "content": text})
        elif isinstance(message, ToolMessage):
            call = calls.get(message.tool_call_id, "The tool")
            result = content_text(message.content)
            out.append({"role": "user", "content": RESULT.format(call=call, result=result)})
        else:
            out.append(_engine_message(message))
    return out


CALLED = "I called {calls}."
RESULT = "{call} returned: {result}"


def call_text(name: str, arguments: str) -> str:
    """A call as a line of code: ``get_weather(city="Paris")``."""
    value = _loads_or_text(arguments)
    if isinstance(value, dict):
        inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in value.items())
    else:
        inner = str(value)
    return f"{name}({inner})"


def _engine_message(message: Message) -> dict[str, Any]:
    if isinstance(message, SystemMessage):
        # "developer" is OpenAI's newer name for system; templates know "system".
        return {"role": "system", "content": content_text(message.content)}
    return {"role": message.role, "content": content_text(message.content)}


def _loads_or_text(arguments: str) -> Any:
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _allowed_tools(req: ChatCompletionRequest) -> tuple[Mode, list[Tool]]:
    tools = req.tools or []
    choice = req.tool_choice
    if not tools or choice == "none":
        return "off", []
    if isinstance(choice, NamedToolChoice):
        return "forced", [t for t in tools if t.function.name == choice.function.name]
    return ("forced" if choice == "required" else "auto"), tools


def _call_schema(tool: Tool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool.function.name},
            "arguments": tool.function.parameters,
        },
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def max_calls(tools: list[Tool], output_limit: int | None) -> int:
    """How many calls the grammar allows so that they all fit in ``output_limit``: at
    least one (a cut answer is then salvaged), at most ``MAX_PARALLEL_CALLS``."""
    if output_limit is None:
        return MAX_PARALLEL_CALLS
    per_call = min(len(json.dumps(_shortest_call(t))) for t in tools)
    return max(1, min(MAX_PARALLEL_CALLS, (output_limit - WRAPPER_TOKENS) // per_call))


def _shortest_call(tool: Tool) -> dict[str, Any]:
    properties = (tool.function.parameters or {}).get("properties") or {}
    required = (tool.function.parameters or {}).get("required") or []
    arguments = {k: 0 for k in required if isinstance(k, str) and k in properties}
    return {"name": tool.function.name, "arguments": arguments}


def output_schema(
    mode: Mode,
    tools: list[Tool],
    parallel: bool,
    limit: int = MAX_PARALLEL_CALLS,
    answer_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``answer_schema``: the request's own JSON answer (``response_format``), which an
    answer in words must then be (text otherwise)."""
    calls = [_call_schema(t) for t in tools]
    calls_schema = {
        "type": "array",
        "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
        "minItems": 1,
        "maxItems": limit if parallel else 1,
    }
    forced = {
        "type": "object",
        "properties": {"tool_calls": calls_schema},
        "required": ["tool_calls"],
        "additionalProperties": False,
    }
    if mode == "forced":
        return forced
    answer = {
        "type": "object",
        "properties": {"content": answer_schema or {"type": "string"}},
        "required": ["content"],
        "additionalProperties": False,
    }
    return {"anyOf": [forced, answer]}


def _described(messages: list[dict[str, Any]], tools: list[Tool]) -> list[dict[str, Any]]:
    """The conversation with every tool described in its system text, and how to call."""
    described = [
        {
            "name": t.function.name,
            "description": t.function.description or "",
            "parameters": t.function.parameters,
        }
        for t in tools
    ]
    prompt = "You can call these tools:\n" + json.dumps(described) + HOW_TO_CALL
    if messages and messages[0]["role"] == "system":
        return [
            {"role": "system", "content": f"{messages[0]['content']}\n\n{prompt}"},
            *messages[1:],
        ]
    return [{"role": "system", "content": prompt}, *messages]


# The last sentence is for the answer in words, which reads this prompt unconstrained:
# without it, after a tool's result, the model once said "I returned a JSON response
# with the weather data" instead of the weather (the tool-use eval: 24-26 of 42 with it,
# as without; the format said after the conversation instead, for the constrained pass
# only: 21-22).
HOW_TO_CALL = (
    '\nTo call tools, reply with only JSON: {"tool_calls": [{"name": <tool name>, '
    '"arguments": <arguments object>}]}. If no tool is needed, reply with only JSON: '
    '{"content": <your answer>}. When a tool has returned what the user asked, answer '
    "the user with it."
)


def plan_tools(req: ChatCompletionRequest, native: bool = False) -> ToolPlan:
    """How the request's tools reach the model: in its template's format (``native``),
    or in corral's prompt under a grammar.

    The system text describes every tool the request carries, whatever its choice and
    its latest turn, and the grammar narrows what may be called. An agent resends the
    same tools each turn, so the prompt stays one prefix from turn to turn and session
    to session, and an answer asked again in words reads the same prompt from the
    engine's cache (issue 30: with the prompt holding only the tools ``offered`` for
    the latest turn, and the words pass a prompt without them, each turn computed the
    whole conversation again)."""
    mode, tools = _allowed_tools(req)
    if native and mode != "forced":
        return _native_plan(req, mode, tools)
    # ``required`` and a named choice always take corral's grammar: an engine's own does
    # not force a call for every template (llama.cpp here wrote prose under `required`
    # for a Hermes-style template on the embedded weights).
    messages = _engine_messages(req.messages)
    if mode == "off":
        return ToolPlan("off", messages, None)
    messages = _described(messages, req.tools or [])
    own = request_format(req)
    if mode == "auto":
        tools = offered(req.messages, tools)
        if not tools:  # no tool fits the request: answered in words (``WordsGuard``)
            return ToolPlan("words", messages, None, answer_format=own)
    # A named choice is one call, as OpenAI's is; otherwise as many as the budget holds.
    named = isinstance(req.tool_choice, NamedToolChoice)
    limit = 1 if named else max_calls(tools, req.output_limit)
    parallel = req.parallel_tool_calls and not named
    schema = output_schema(mode, tools, parallel, limit, _answer_schema(own))
    response_format = {"type": "json_schema", "json_schema": {"name": "tools", "schema": schema}}
    # Only ``auto`` may drop a repeated call: ``required`` must call, whatever it repeats.
    answered = answered_calls(req.messages) if mode == "auto" else frozenset()
    return ToolPlan(mode, messages, response_format, answered, answer_format=own)


def request_format(req: ChatCompletionRequest) -> dict[str, Any] | None:
    """The request's own ``response_format`` as the engine takes it (None: text)."""
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    return fmt.model_dump(by_alias=True, exclude_none=True)


def _answer_schema(own: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON an answer must be where the request asked for one beside its tools: the
    tools' grammar replaces the request's, so the answer branch carries it."""
    if own is None:
        return None
    schema = (own.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else {"type": "object"}


def _native_plan(req: ChatCompletionRequest, mode: Mode, tools: list[Tool]) -> ToolPlan:
    messages = native_messages(req)
    if mode == "off":
        return ToolPlan("off", messages, None, native=True)
    offered = [t.model_dump(exclude_none=True) for t in tools]
    return ToolPlan(mode, messages, None, native=True, tools=offered, tool_choice="auto")


def call_key(name: str, arguments: str) -> tuple[str, str]:
    """One call's identity: its name and its arguments' value (spacing and key order
    do not make two calls different)."""
    value = json.dumps(_loads_or_text(arguments), sort_keys=True, ensure_ascii=False)
    return name, value


def answered_calls(messages: list[Message]) -> frozenset[tuple[str, str]]:
    """The calls in the history whose result came back."""
    results = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return frozenset(
        call_key(c.function.name, c.function.arguments)
        for m in messages
        if isinstance(m, AssistantMessage)
        for c in m.tool_calls or ()
        if c.id in results
    )


# Words that say nothing about what a tool is for: verbs every API uses, articles,
# prepositions. What is left of a tool's name and description are its subject words.
GENERIC_WORDS = frozenset(
    "get set find calculate calc compute determine fetch retrieve make create check run do "
    "perform search lookup look show list update delete add new info information data "
    "detail details result results value values the a an of for to in on by with and or is "
    "are from at as be this that it its given math tool function api query request service "
    "util utils helper number numbers you your me my can please what how which".split()
)
STEM = 5  # words compared by their first letters: "weather"/"weathers", "hypot"/"hypotenuse"


def _subject_words(text: str) -> set[str]:
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # camelCase names
    words = (w.lower() for w in re.findall(r"[A-Za-z]+", text))
    return {w[:STEM] for w in words if len(w) > 2 and w not in GENERIC_WORDS}


def offered(messages: list[Message], tools: list[Tool]) -> list[Tool]:
    """The tools ``auto`` offers: those sharing the most subject words (of the name, the
    description or a parameter's name) with the user's latest turn; a tool with no subject
    words, ``lookup`` say, may fit anything. None share a word: the model answers in
    words. A tool the request says less about is a stray call waiting to happen for a
    small model: on BFCL multiple, offering every tool that shares a word gave the right
    tool alone on 107 of 200 items (35 of 40 failures were a right call plus a call of
    another tool); offering those that share the most, on 184, losing none."""
    question = next((m for m in reversed(messages) if isinstance(m, UserMessage)), None)
    if question is None:
        return tools
    asked = _subject_words(content_text(question.content))
    shared = [(len(asked & _subjects(t)), t) for t in tools]
    best = max((n for n, _ in shared), default=0)
    return [t for n, t in shared if not _subjects(t) or (n and n == best)]


def _subjects(tool: Tool) -> set[str]:
    properties = (tool.function.parameters or {}).get("properties") or {}
    names = " ".join(k for k in properties if isinstance(k, str))
    return _subject_words(f"{tool.function.name} {tool.function.description or ''} {names}")


def parse_output(text: str, answered: frozenset[tuple[str, str]] = frozenset()) -> ParsedOutput:
    """Turn constrained output back into content or tool calls: each call once, and
    none that ``answered`` (the history) already holds."""
    parsed = _parsed(text)
    if not parsed.tool_calls:
        return parsed
    seen = set(answered)
    calls = []
    for call in parsed.tool_calls:
        key = call_key(call.function.name, call.function.arguments)
        if key not in seen:
            seen.add(key)
            calls.append(call)
    return ParsedOutput(None, calls or None)


def _parsed(text: str) -> ParsedOutput:
    try:
        data = json.loads(text)
    except ValueError:
        return salvage(text)  # cut short by max_tokens: not valid JSON
    if isinstance(data, dict) and isinstance(data.get("tool_calls"), list):
        calls = [
            ToolCall(
                id=new_id("call"),
                function=FunctionCall(
                    name=str(call["name"]), arguments=json.dumps(call["arguments"])
                ),
            )
            for call in data["tool_calls"]
        ]
        return ParsedOutput(None, calls)
    if isinstance(data, dict) and isinstance(data.get("content"), str):
        return ParsedOutput(data["content"], None)
    if isinstance(data, dict) and isinstance(data.get("content"), dict | list):
        # A JSON answer: its text as the model wrote it (as the stream sent it).
        return ParsedOutput(content_of(ToolStream().feed(text)), None)
    return salvage(text)


def salvage(text: str) -> ParsedOutput:
    """What a cut (or malformed) tool output said: its content so far, the calls it
    finished, or, when it finished none, the call it was cut in. corral's
    ``{"tool_calls": …}`` wrapper is never the answer."""
    stream = ToolStream()
    content: list[str] = []
    names: dict[int, str] = {}
    arguments: dict[int, list[str]] = {}
    for piece in stream.feed(text):
        if piece.kind == "content":
            content.append(piece.text)
        elif piece.kind == "call":
            names[piece.index] = piece.text
        else:
            arguments.setdefault(piece.index, []).append(piece.text)
    raws = {index: "".join(arguments.get(index, ())) for index in names}
    calls = []
    for index, name in names.items():
        try:
            value = json.loads(raws[index])  # arguments open with "{": only a whole object
        except ValueError:
            continue
        function = FunctionCall(name=name, arguments=json.dumps(value))
        calls.append(ToolCall(id=new_id("call"), function=function))
    if not calls and names:
        # Cut inside its first call: the call as far as it got (its arguments not valid
        # JSON), as OpenAI returns a call cut by max_tokens and as the stream sent it.
        first = min(names)
        function = FunctionCall(name=names[first], arguments=raws[first])
        calls = [ToolCall(id=new_id("call"), function=function)]
    if calls:
        return ParsedOutput(None, calls)
    return ParsedOutput("".join(content), None)


def in_words(body: Body, plan: ToolPlan, spent: dict[str, Any]) -> Body | None:
    """The request again, without the grammar, with what is left of its output budget
    (None when nothing is). Its prompt is the first pass's, so the engine reads it from
    the slot instead of computing it again; what it writes is read through
    ``WordsGuard``."""
    words = {k: v for k, v in body.items() if k != "response_format"}
    if plan.answer_format is not None:
        words["response_format"] = plan.answer_format
    if "max_tokens" in body:
        left = int(body["max_tokens"]) - int(spent.get("completion_tokens", 0))
        if left <= 0:
            return None
        words["max_tokens"] = left
    return words
