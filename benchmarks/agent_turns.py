"""Agent turns on a cached prefix: the time to the first token of each turn of an agent's
loop, and of a second session with the same instructions and tools.

An agent sends the same long prefix every turn (instructions and ~30 tool definitions)
and adds ~100 tokens a turn: a tool's result after a call, the next request after an
answer. Each turn should compute only what it adds. corral is started with the
embedded model's 32K catalog (``deploy/smollm2-32k.yaml``, as ``make run-32k``), the
prefix is fixed and seeded, each turn is streamed with ``tool_choice: auto`` and its
first token (a content or call delta) timed from the request. The answer's usage says
what the engine read from its cache (``prompt_tokens_details.cached_tokens``).

    .venv/bin/python benchmarks/agent_turns.py --prefix-words 11000 --turns 6

Results: docs/benchmarks-agent-turns.md (and JSON on stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import systems

from corral.bench.prompts import long_text

ROOT = Path(__file__).resolve().parent.parent
# 30 tools of the kinds a coding agent carries: (name, what it does, its parameters).
TOOLS = [
    ("shell", "Run a shell command in the workspace.", ["command", "workdir"]),
    ("read_file", "Read a file of the workspace.", ["path", "offset", "limit"]),
    ("write_file", "Write a file of the workspace.", ["path", "content"]),
    ("apply_patch", "Apply a unified diff to the workspace.", ["patch"]),
    ("list_dir", "List the entries of a directory.", ["path", "depth"]),
    ("grep", "Search files for a regular expression.", ["pattern", "path", "glob"]),
    ("glob", "Find files whose path matches a glob pattern.", ["pattern"]),
    ("web_fetch", "Fetch a web page and return its text.", ["url"]),
    ("todo_write", "Replace the task list.", ["todos"]),
    ("todo_read", "Read the task list.", []),
    ("run_tests", "Run the project's test suite or one test.", ["selector"]),
    ("lint", "Run the linters on a path.", ["path"]),
    ("format_code", "Format the source files under a path.", ["path"]),
    ("git_status", "Show the working tree's status.", []),
    ("git_diff", "Show the diff of the working tree or of a commit.", ["ref"]),
    ("git_log", "Show recent commits.", ["count"]),
    ("git_commit", "Commit the staged changes.", ["message"]),
    ("open_issue", "Read an issue of the tracker.", ["number"]),
    ("comment_issue", "Comment on an issue.", ["number", "body"]),
    ("search_docs", "Search the project's documentation.", ["query"]),
    ("python_eval", "Evaluate a Python expression in a sandbox.", ["expression"]),
    ("http_request", "Send an HTTP request to a local service.", ["method", "url", "body"]),
    ("db_query", "Run a read-only SQL query on the development database.", ["sql"]),
    ("view_image", "Describe an image file of the workspace.", ["path"]),
    ("ask_user", "Ask the user a question and wait for the answer.", ["question"]),
    ("spawn_task", "Start a sub-agent on a task.", ["description", "prompt"]),
    ("notebook_edit", "Edit a cell of a Jupyter notebook.", ["path", "cell", "source"]),
    ("memory_save", "Save a fact for later sessions.", ["fact"]),
    ("memory_search", "Search the saved facts.", ["query"]),
    ("exit_plan", "Leave planning mode with a plan.", ["plan"]),
]


def tools() -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": {p: {"type": "string", "description": f"The {p}."} for p in ps},
                    "required": ps[:1],
                },
            },
        }
        for name, description, ps in TOOLS
    ]


def instructions(words: int) -> str:
    rng = random.Random(words)
    return "You are a coding agent in a workspace. Follow these instructions.\n" + long_text(
        words, rng
    )


# What the user asks turn after turn: each names another tool's subject, as an agent's
# work moves from reading to testing to committing (the tools corral allows a call of
# change from turn to turn; the prompt must not).
ASKS = [
    "Now read the file src/app/module_{n}.py and tell me what it does.",
    "Run the tests for module {n} and report the failures.",
    "Show the git diff of the working tree.",
    "Search the docs for the word parse_{n}.",
    "List the directory src/app with depth {n}.",
    "Commit the staged changes with a message about module {n}.",
]


def added(turn: int, ask: bool) -> str:
    """~100 tokens: what a turn adds (a tool's output, or the next request)."""
    text = long_text(60, random.Random(1000 + turn))
    return f"{text}\n{ASKS[turn % len(ASKS)].format(n=turn)}" if ask else f"Output: {text}"


async def turn(
    http: httpx.AsyncClient, corral: systems.Running, messages: list[dict[str, Any]]
) -> dict[str, Any]:
    target = corral.target
    body = {
        "model": target.model,
        "messages": messages,
        "tools": tools(),
        "tool_choice": "auto",
        "max_tokens": 24,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {target.api_key}"}
    started = time.perf_counter()
    first: float | None = None
    text, calls, usage = "", [], {}
    async with http.stream(
        "POST", target.base_url + "/chat/completions", json=body, headers=headers
    ) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if first is None and (delta.get("content") or delta.get("tool_calls")):
                    first = time.perf_counter() - started
                text += delta.get("content") or ""
                for call in delta.get("tool_calls") or ():
                    if call.get("id"):
                        calls.append({"id": call["id"], "name": call["function"]["name"]})
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {
        "ttft_s": round(first if first is not None else time.perf_counter() - started, 3),
        "total_s": round(time.perf_counter() - started, 3),
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "cached_tokens": cached,
        "text": text,
        "calls": calls,
    }


def follow(messages: list[dict[str, Any]], result: dict[str, Any], number: int) -> None:
    """The client's side of the loop: a call's output, or the next request."""
    if result["calls"]:
        call = result["calls"][0]
        function = {"name": call["name"], "arguments": "{}"}
        messages.append(
            {
                "role": "assistant",
                "tool_calls": [{"id": call["id"], "type": "function", "function": function}],
            }
        )
        messages.append(
            {"role": "tool", "tool_call_id": call["id"], "content": added(number, ask=False)}
        )
    else:
        messages.append({"role": "assistant", "content": result["text"] or "Done."})
        messages.append({"role": "user", "content": added(number, ask=True)})


async def session(corral: systems.Running, words: int, turns: int) -> dict[str, Any]:
    system = {"role": "system", "content": instructions(words)}
    messages = [system, {"role": "user", "content": "Read the file src/main.py."}]
    results = []
    async with httpx.AsyncClient(timeout=1800) as http:
        for number in range(turns):
            result = await turn(http, corral, messages)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "text"}), flush=True)
            follow(messages, result, number)
        second = [system, {"role": "user", "content": "Show the git diff of src/main.py."}]
        other = await turn(http, corral, second)
    later = [r["ttft_s"] for r in results[1:]]
    return {
        "prefix_words": words,
        "turns": [{k: v for k, v in r.items() if k != "text"} for r in results],
        "first_turn_ttft_s": results[0]["ttft_s"],
        "later_turns_ttft_median_s": round(statistics.median(later), 3),
        "later_turns_ttft_max_s": max(later),
        "second_session_ttft_s": other["ttft_s"],
        "second_session_cached": other["cached_tokens"],
        "second_session_prompt": other["prompt_tokens"],
    }


def render(result: dict[str, Any], commit: str) -> str:
    rows = "\n".join(
        f"| {i + 1} | {t['prompt_tokens']:,} | {t['cached_tokens']:,} | "
        f"{t['prompt_tokens'] - t['cached_tokens']:,} | {t['ttft_s']:.2f} | "
        f"{'call ' + t['calls'][0]['name'] if t['calls'] else 'answer'} |"
        for i, t in enumerate(result["turns"])
    )
    return f"""# Agent turns on a cached prefix (`benchmarks/agent_turns.py`)

Embedded model with the 32K catalog (`deploy/smollm2-32k.yaml`), 2 engine threads, this
2-core box, at {commit}. One session: instructions of ~{result["prefix_words"]:,} words
and 30 tools (`tool_choice: auto`), then turns that each add ~100 tokens (a tool's
output after a call, the next request after an answer), greedy, 24 output tokens at
most; time to the first content or call delta.

| turn | prompt tokens | cached | computed | first token (s) | the model |
| ---: | ---: | ---: | ---: | ---: | --- |
{rows}

A turn with about twice its neighbours' prompt tokens ran two passes: its constrained
answer only repeated a call, so it was asked again in words, from the same prompt (read
from the slot, not computed again).

Later turns: median **{result["later_turns_ttft_median_s"]:.2f} s**, max {result["later_turns_ttft_max_s"]:.2f} s.
A second session (same instructions and tools, another request):
**{result["second_session_ttft_s"]:.2f} s** to its first token
({result["second_session_cached"]:,} of {result["second_session_prompt"]:,} prompt tokens read from the cache),
against {result["first_turn_ttft_s"]:.2f} s for the first session's first turn.
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix-words", type=int, default=11000)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-agent-turns.md")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="corral-agent-turns-"))
    env = {
        **os.environ,
        "CORRAL_DATA_DIR": str(data / "data"),
        "CORRAL_ENGINE__N_CTX": "32768",
        "CORRAL_LOG_LEVEL": "warning",
    }
    catalog = ["--catalog", str(ROOT / "deploy" / "smollm2-32k.yaml")]
    corral = systems.start_corral(env, data / "corral.log", catalog)
    try:
        result = asyncio.run(session(corral, args.prefix_words, args.turns))
    finally:
        corral.stop()
    print(json.dumps(result, indent=2))
    commit = os.popen(f"git -C {ROOT} rev-parse --short HEAD").read().strip()
    args.out.write_text(render(result, commit))


if __name__ == "__main__":
    main()
