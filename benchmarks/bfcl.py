"""`make eval-bfcl`: tool calling measured with BFCL on corral and on the engine alone.

BFCL (the Berkeley Function Calling Leaderboard, the `bfcl-eval` package) supplies the
data, its OpenAI function-calling handler's conversion of BFCL functions into OpenAI tools
(`dict` -> `object`, `float` -> `number`, `.` in names -> `_`), its decoding of the answer
and its checkers: the AST checker for `simple` (python), `multiple` and `parallel`, and
the irrelevance rule (no function call decoded = pass). Each item is sent once as a chat
completion with the item's tools, `tool_choice: auto` and temperature 0, to

- corral: `corral serve` on a free port, a temporary data dir and a project key;
- the engine alone: llama.cpp's own listener (`engine_direct.py`) on the same model.

Besides pass/fail, every answer is counted for what the issue tracks: tool calls made, a
call repeated identically within one answer, and empty answers (no text, no call).
Results: docs/evals-bfcl.json (every run, per label) and the section of docs/evals.md
between the bfcl markers, rendered from that file so rows of other labels stay.

    python benchmarks/bfcl.py --label before --limit 25 [--target corral|engine|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from corral.bench.bfcl import (
    CATEGORIES,
    TARGETS,
    Outcome,
    answer_shape,
    dumps,
    excerpt,
    merge,
    render,
    replace_section,
    run_key,
    summarize,
)
from corral.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "evals.md"
RESULTS = ROOT / "docs" / "evals-bfcl.json"
MODEL = "smollm2-135m-instruct"


# --- BFCL itself --------------------------------------------------------------------------


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _AnyModel(dict[str, Any]):
    """Stands in for BFCL's model registry, which imports every vendor's SDK. Its AST
    checker reads one flag from it: ``underscore_to_dot``, true for OpenAI function-calling
    models, whose tool names have `.` turned into `_` (as the handler below does)."""

    def __missing__(self, key: str) -> Any:
        return types.SimpleNamespace(underscore_to_dot=True)


@dataclass
class Item:
    id: str
    category: str  # ours
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    functions: list[dict[str, Any]]  # BFCL's, for its checker
    answer: list[Any] | None


class Bfcl:
    """The parts of `bfcl-eval` this script uses. It is installed without its declared
    dependencies (they include sentence-transformers and every vendor's SDK); what these
    modules import is in the `dev` extra."""

    def __init__(self, model: str, workdir: Path) -> None:
        # It makes result/, score/ and lock directories beside itself at import: not there.
        os.environ.setdefault("BFCL_PROJECT_ROOT", str(workdir))
        stub = types.ModuleType("bfcl_eval.constants.model_config")
        stub.MODEL_CONFIG_MAPPING = _AnyModel()  # type: ignore[attr-defined]
        sys.modules.setdefault("bfcl_eval.constants.model_config", stub)

        from bfcl_eval.constants.enums import Language, ReturnFormat
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.model_handler.api_inference.openai_completion import (
            OpenAICompletionsHandler,
        )
        from bfcl_eval.utils import (
            is_empty_output,
            is_function_calling_format_output,
            load_dataset_entry,
            load_ground_truth_entry,
        )

        self.model = model
        self._ast_checker = ast_checker
        self._language = Language.PYTHON
        self._format = ReturnFormat.PYTHON
        self._is_empty = is_empty_output
        self._is_calls = is_function_calling_format_output
        self._load, self._truth = load_dataset_entry, load_ground_truth_entry
        # Its client is never used (requests go out from here, concurrently), but it
        # insists on a key when it is built.
        with _env(OPENAI_API_KEY="unused"):
            self.handler = OpenAICompletionsHandler(
                model_name=model, temperature=0, registry_name=model, is_fc_model=True
            )

    def items(self, category: str, limit: int | None) -> list[Item]:
        name = CATEGORIES[category]
        entries = self._load(name)[:limit]
        truth = {}
        if category != "irrelevance":
            truth = {t["id"]: t["ground_truth"] for t in self._truth(name)}
        out = []
        for entry in entries:
            tools = self.handler._compile_tools({}, entry)["tools"]
            messages = entry["question"][0]  # these categories are single-turn
            out.append(
                Item(
                    entry["id"],
                    category,
                    messages,
                    tools,
                    entry["function"],
                    truth.get(entry["id"]),
                )
            )
        return out

    def check(self, item: Item, response: dict[str, Any]) -> tuple[bool, str | None]:
        """(passed, BFCL's error type), as its eval runner decides it for these categories."""
        from openai.types.chat import ChatCompletion

        try:
            parsed = self.handler._parse_query_response_FC(ChatCompletion.model_validate(response))
        except Exception as exc:  # an answer its parser cannot read fails, as there
            return False, f"unparsable response: {type(exc).__name__}"
        result = parsed["model_responses"]
        if item.category == "irrelevance":
            try:
                decoded = self.handler.decode_ast(result, self._format, False)
                has_call = not self._is_empty(decoded)
            except Exception:
                has_call = False
            return (False, "irrelevance_error:decoder_success") if has_call else (True, None)
        try:
            decoded = self.handler.decode_ast(result, self._format, False)
        except Exception:
            return False, "ast_decoder:decoder_failed"
        if not self._is_calls(decoded):
            return False, "ast_decoder:decoder_wrong_output_format"
        checked = self._ast_checker(
            copy.deepcopy(item.functions),
            decoded,
            copy.deepcopy(item.answer),
            self._language,
            CATEGORIES[item.category],
            self.model,
        )
        if checked["valid"]:  # a pass still carries the checker's default error type
            return True, None
        return False, checked.get("error_type")


# --- running -------------------------------------------------------------------------------


@dataclass
class Endpoint:
    url: str  # ends in /v1
    key: str | None


async def ask(
    http: httpx.AsyncClient, endpoint: Endpoint, model: str, item: Item, max_tokens: int
) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": item.messages,
        "tools": item.tools,
        "tool_choice": "auto",
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    headers = {"Authorization": f"Bearer {endpoint.key}"} if endpoint.key else {}
    response = await http.post(f"{endpoint.url}/chat/completions", json=body, headers=headers)
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


async def one(
    bfcl: Bfcl,
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    item: Item,
    max_tokens: int,
) -> Outcome:
    try:
        response = await ask(http, endpoint, bfcl.model, item, max_tokens)
        message = response["choices"][0]["message"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        detail = exc.response.text[:200] if isinstance(exc, httpx.HTTPStatusError) else ""
        return Outcome(
            item.id, False, f"request: {type(exc).__name__} {detail}".strip(), 0, False, False, ""
        )
    passed, error = bfcl.check(item, response)
    shape = answer_shape(message)
    return Outcome(
        item.id, passed, error, shape.calls, shape.repeated, shape.empty, excerpt(message)
    )


async def run_category(
    bfcl: Bfcl,
    endpoint: Endpoint,
    target: str,
    items: list[Item],
    concurrency: int,
    max_tokens: int,
) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)
    done: list[Outcome] = []
    t0 = time.monotonic()
    step = max(1, len(items) // 10)
    category = items[0].category if items else "?"

    async def guarded(item: Item) -> Outcome:
        async with gate:
            outcome = await one(bfcl, http, endpoint, item, max_tokens)
        done.append(outcome)
        n = len(done)
        if n % step == 0 or n == len(items):
            passed = sum(o.passed for o in done)
            print(
                f"  {target} {category}: {n}/{len(items)} done, {passed} passed, "
                f"{time.monotonic() - t0:.0f} s",
                flush=True,
            )
        return outcome

    async with httpx.AsyncClient(timeout=600) as http:
        return list(await asyncio.gather(*(guarded(i) for i in items)))


def git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def commit(rev: str | None) -> str:
    """What was measured: ``rev`` (an archived copy), or HEAD and whether the working
    tree's inference code differs from it."""
    if rev is not None:
        return git("rev-parse", "--short", rev)
    dirty = git("status", "--porcelain", "--", "src/corral/inference")
    head = git("rev-parse", "--short", "HEAD")
    return f"{head} + uncommitted changes in src/corral/inference" if dirty else head


def checkout(rev: str, into: Path) -> Path:
    """``src/`` of commit ``rev``, unpacked (git archive: the repository is not touched);
    PYTHONPATH puts it before the editable install, for the server and its engine child."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


@contextlib.contextmanager
def started(target: str, logs: Path, src: Path | None) -> Iterator[Endpoint]:
    """corral (`corral serve`, a project key) or the engine alone, on a fresh data dir;
    from ``src`` when given (see ``checkout``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import systems

    env = {**os.environ, "CORRAL_DATA_DIR": str(logs / f"data-{target}")}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    log = logs / f"{target}.log"
    running = (
        systems.start_corral(env, log)
        if target == "corral"
        else systems.start_engine_direct(env, log)
    )
    try:
        yield Endpoint(running.target.base_url, running.target.api_key)
    finally:
        running.stop()


async def measure(
    bfcl: Bfcl,
    endpoint: Endpoint,
    target: str,
    args: argparse.Namespace,
    measured: str,
    saved: Callable[[dict[str, Any]], None],
) -> None:
    """Each category in turn; the results are saved after each, so a long run that is
    stopped keeps what it measured (marked partial)."""
    t0 = time.monotonic()
    meta = {
        "model": bfcl.model,
        "commit": measured,
        "max_tokens": args.max_tokens,
        "concurrency": args.concurrency,
        "engine_threads": Settings().engine.n_threads,  # what both targets read
        "planned": args.categories,
    }
    result: dict[str, Any] = {"meta": meta, "categories": {}, "items": {}}
    for category in args.categories:
        chosen = bfcl.items(category, args.limit)
        print(f"{TARGETS[target]}: {category}, {len(chosen)} items", flush=True)
        outcomes = await run_category(
            bfcl, endpoint, target, chosen, args.concurrency, args.max_tokens
        )
        result["categories"][category] = summarize(outcomes)
        result["items"][category] = [asdict(o) for o in outcomes]
        meta["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        meta["seconds"] = round(time.monotonic() - t0, 1)
        saved(result)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", choices=["corral", "engine", "both"], default="both")
    p.add_argument("--categories", default=",".join(CATEGORIES), help="comma-separated")
    p.add_argument("--limit", type=int, default=None, help="first N items of each category")
    p.add_argument("--label", default="current", help="the row set in docs/evals.md")
    p.add_argument("--model", default=MODEL)
    p.add_argument("--concurrency", type=int, default=4)
    # BFCL sets none; a cap keeps a runaway answer of a small model from taking minutes.
    # A tool call of these categories is well under it.
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument(
        "--url",
        help="an OpenAI-compatible base URL (…/v1) already serving: measured as the one "
        "--target named (corral or engine), nothing is started",
    )
    p.add_argument("--api-key", default=None)
    p.add_argument(
        "--commit",
        help="measure this commit's code (git archive of src/), not the working tree's",
    )
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--doc", type=Path, default=DOC)
    args = p.parse_args(argv)
    args.categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    unknown = [c for c in args.categories if c not in CATEGORIES]
    if unknown:
        p.error(f"unknown categories {unknown}; choose from {list(CATEGORIES)}")
    if args.url and args.target == "both":
        p.error("--url measures one target: say --target corral or --target engine")
    return args


def save(args: argparse.Namespace, target: str, result: dict[str, Any]) -> None:
    document = json.loads(args.results.read_text()) if args.results.exists() else {}
    document = merge(document, run_key(args.label, args.limit), args.limit, target, result)
    document["bfcl_eval"] = version("bfcl-eval")
    args.results.write_text(dumps(document))
    args.doc.write_text(replace_section(args.doc.read_text(), render(document)))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # Stopped with a signal (a background run ignores SIGINT), the servers still stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    targets = list(TARGETS) if args.target == "both" else [args.target]
    with tempfile.TemporaryDirectory(prefix="bfcl-") as tmp:
        logs = Path(tmp)
        bfcl = Bfcl(args.model, logs / "bfcl")
        src = checkout(args.commit, logs / "checkout") if args.commit else None
        measured = "(not known: --url)" if args.url else commit(args.commit)
        for target in targets:
            with contextlib.ExitStack() as stack:
                if args.url:
                    endpoint = Endpoint(args.url.rstrip("/"), args.api_key)
                else:
                    print(f"starting {TARGETS[target]} …", flush=True)
                    endpoint = stack.enter_context(started(target, logs, src))
                asyncio.run(
                    measure(
                        bfcl,
                        endpoint,
                        target,
                        args,
                        measured,
                        functools.partial(save, args, target),
                    )
                )
    document = json.loads(args.results.read_text())
    print()
    print(render(document))
    print(f"\nwritten: {args.results}, {args.doc}")


if __name__ == "__main__":
    main()
