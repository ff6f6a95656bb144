"""The console in a real Chromium against a live server on the embedded model: sign in with
a project key, stream a playground answer, compare two settings, create / see once /
revoke a key, upload a training file with a bad line, read an eval run's items, sign out.
Each step saves a screenshot: into a temporary folder, so `make test` leaves the tree as it
found it; `make console-shots` retakes docs/console/ (docs/console.md shows them)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MODEL, LiveServer

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = Path(
    os.environ.get("CORRAL_CONSOLE_SHOTS") or Path(tempfile.gettempdir()) / "corral-console-shots"
)
WAIT_MS = 120_000  # a loaded CI box; on a quiet one each wait is a second or two


XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'
HOSTILE_STREAM = (
    "".join(
        f"data: {json.dumps(chunk)}\n\n"
        for chunk in (
            *(
                {"model": MODEL, "choices": [{"index": 0, "delta": {"content": XSS[i : i + 9]}}]}
                for i in range(0, len(XSS), 9)
            ),
            {"model": MODEL, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9}},
        )
    )
    + "data: [DONE]\n\n"
)


def cli(data_dir: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env={**os.environ, "CORRAL_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    data = tmp_path_factory.mktemp("console")
    key = cli(data, "keys", "create", "--project", "console", "--rpm", "1000")
    # No training worker: a job stays queued (training is tests/e2e/test_fine_tuning.py's).
    server = LiveServer(data, env={"CORRAL_FINE_TUNING__WORKER": "false"})
    try:
        server.wait_ready()
        yield server, key
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(server: tuple[LiveServer, str]) -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on(
                "console",
                lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
            )
            yield page
            assert not errors, errors  # no script error, no CSP violation, on any page
        finally:
            browser.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def start_eval_run(url: str, key: str) -> tuple[str, str]:
    """An eval of two items on the embedded model, run by the server while the browser
    does the rest."""
    auth = {"Authorization": f"Bearer {key}"}
    ev = httpx.post(
        url + "/v1/evals",
        headers=auth,
        json={
            "name": "capitals",
            "data_source_config": {
                "type": "custom",
                "item_schema": {
                    "type": "object",
                    "properties": {"q": {"type": "string"}, "a": {"type": "string"}},
                },
                "include_sample_schema": True,
            },
            "testing_criteria": [
                {
                    "type": "string_check",
                    "name": "mentions the answer",
                    "input": "{{sample.output_text}}",
                    "reference": "{{item.a}}",
                    "operation": "ilike",
                }
            ],
        },
    ).json()
    items = [
        {"item": {"q": "What is the capital of France?", "a": "Paris"}},
        {"item": {"q": "What is the capital of Italy? <b>bold</b>", "a": "Rome"}},
    ]
    run = httpx.post(
        f"{url}/v1/evals/{ev['id']}/runs",
        headers=auth,
        json={
            "data_source": {
                "type": "completions",
                "model": MODEL,
                "input_messages": {
                    "type": "template",
                    "template": [
                        {"role": "system", "content": "Answer in one word."},
                        {"role": "user", "content": "{{item.q}}"},
                    ],
                },
                "sampling_params": {"temperature": 0, "seed": 1, "max_completion_tokens": 8},
                "source": {"type": "file_content", "content": items},
            }
        },
    )
    assert run.status_code == 200, run.text
    return ev["id"], run.json()["id"]


def write_metrics(server: LiveServer, job_id: str, losses: list[float]) -> None:
    """Step events as the training worker writes them (type metrics, data.train_loss)."""
    db = sqlite3.connect(server.log.parent / "corral.db")
    with db:
        for step, loss in enumerate(losses, start=1):
            data = {"step": step, "total_steps": len(losses), "train_loss": loss}
            db.execute(
                "INSERT INTO fine_tuning_events (job_id, created_at, level, type, message, data)"
                " VALUES (?, ?, 'info', 'metrics', ?, ?)",
                (
                    job_id,
                    datetime.now(UTC).isoformat(),
                    f"Step {step}: loss={loss}",
                    json.dumps(data),
                ),
            )
    db.close()


def start_batch(url: str, key: str) -> str:
    auth = {"Authorization": f"Bearer {key}"}
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": q}], "max_tokens": 4},
        }
        for i, q in enumerate(("Hi", "Bye"))
    ]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    f = httpx.post(
        url + "/v1/files",
        headers=auth,
        data={"purpose": "batch"},
        files={"file": ("batch.jsonl", body, "application/jsonl")},
    )
    assert f.status_code == 200, f.text
    batch = httpx.post(
        url + "/v1/batches",
        headers=auth,
        json={
            "input_file_id": f.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    assert batch.status_code == 200, batch.text
    return str(batch.json()["id"])


def test_console_in_chromium(server: tuple[LiveServer, str], page: Any) -> None:
    live, key = server
    url = live.url
    eval_id, run_id = start_eval_run(url, key)
    batch_id = start_batch(url, key)

    # --- sign in with a project key
    page.goto(url + "/console")
    assert "/console/sign-in" in page.url
    shot(page, "sign-in")
    page.fill("#key", key)
    page.click("#sign-in")
    page.wait_for_url("**/console/playground")
    assert page.inner_text("#who") == "project console"
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "corral_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert key not in json.dumps(cookies)

    # --- playground: a streamed answer on the embedded model, with its numbers
    page.select_option("#model", MODEL)
    page.fill("#max_tokens", "16")
    page.fill("#seed", "7")
    page.fill("#message", "Name three colours.")
    page.click("#send")
    stats = page.locator("#transcript-a .turn.assistant .stats[data-tokens]").first
    stats.wait_for()
    assert int(stats.get_attribute("data-tokens")) > 0
    text = stats.inner_text()
    assert "TTFT" in text and "tok/s" in text and "$" in text and "smollm2" in text
    answer = page.locator("#transcript-a .turn.assistant .content").first.inner_text()
    assert answer.strip()
    page.click("#view-code")
    assert "client.chat.completions.create(" in page.inner_text("#code-python")
    assert "Name three colours." in page.inner_text("#code-python")
    assert page.inner_text("#code-curl").startswith("curl " + url + "/v1/chat/completions")
    shot(page, "playground")
    page.click("#view-code")  # hidden again

    # --- stop: the answer so far stays, the generation ends
    page.fill("#max_tokens", "400")
    page.fill("#message", "Write a long story about a dragon.")
    page.click("#send")
    second = page.locator("#transcript-a .turn.assistant").nth(1)
    second.locator(".content:not(:empty)").wait_for()
    page.click("#stop-gen")
    second.locator(".stats[data-tokens]").wait_for()
    assert second.locator(".stats").inner_text().startswith("stopped")
    assert page.is_enabled("#send")
    page.fill("#max_tokens", "16")

    # --- tools: a required tool call is shown apart from the text
    page.click("#clear")
    page.click("summary")
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    page.fill("#tools", json.dumps([tool]))
    page.select_option("#tool_choice", "required")
    page.fill("#max_tokens", "48")  # room for the whole call
    page.fill("#message", "What is the weather in Paris?")
    page.click("#send")
    turn = page.locator("#transcript-a .turn.assistant").first
    turn.locator(".stats[data-tokens]").wait_for()
    assert turn.locator(".tool-calls").inner_text().startswith("get_weather("), turn.inner_text()
    page.fill("#max_tokens", "16")
    page.fill("#tools", "")
    page.select_option("#tool_choice", "")

    # --- a JSON schema response format: the answer is JSON of that shape
    page.click("#clear")
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "maxLength": 12}},
        "required": ["colour"],
    }
    page.fill("#schema", json.dumps(schema))
    page.fill("#max_tokens", "48")
    page.fill("#message", "Name a colour.")
    page.click("#send")
    turn = page.locator("#transcript-a .turn.assistant").first
    turn.locator(".stats[data-tokens]").wait_for()
    assert isinstance(json.loads(turn.locator(".content").inner_text())["colour"], str)
    page.fill("#schema", "")
    page.fill("#max_tokens", "16")

    # --- a completion carrying markup is shown as text and runs nothing
    page.click("#clear")
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(
            status=200, headers={"content-type": "text/event-stream"}, body=HOSTILE_STREAM
        ),
    )
    page.fill("#message", "Anything.")
    page.click("#send")
    turn = page.locator("#transcript-a .turn.assistant").first
    turn.locator(".stats[data-tokens]").wait_for()
    assert turn.locator(".content").inner_text() == XSS
    assert turn.locator("img, script").count() == 0
    assert page.evaluate("window.__pwned") is None
    page.unroute("**/v1/chat/completions")

    # --- compare: the same prompt with two settings side by side
    page.click("#clear")
    page.check("#compare")
    page.fill("#temperature", "1.2")
    page.fill("#temperature_b", "0")
    page.fill("#system_b", "You are a pirate. Answer briefly.")
    page.fill("#message", "Say hello.")
    page.click("#send")
    for side in ("a", "b"):
        page.locator(f"#transcript-{side} .turn.assistant .stats[data-tokens]").wait_for()
    assert page.is_visible("#column-b")
    shot(page, "compare")

    # --- keys: create (shown once), use, revoke, refused
    page.goto(url + "/console/keys")
    page.fill("#key-name", "browser-made")
    page.fill("#key-rpm", "60")
    page.click("#key-create")
    page.locator("#key-created:not([hidden])").wait_for()
    new_key = page.inner_text("#key-value").strip()
    assert new_key.startswith("sk-corral-")
    auth = {"Authorization": f"Bearer {new_key}"}
    assert httpx.get(url + "/v1/models", headers=auth).status_code == 200
    shot(page, "keys")
    page.reload()
    assert new_key not in page.content()  # shown once: never again
    row = page.locator("#keys-table tr", has_text="browser-made")
    row.locator("button.revoke").click()
    row.locator("td.state", has_text="revoked").wait_for()
    assert httpx.get(url + "/v1/models", headers=auth).status_code == 401

    # --- usage inside the console
    page.goto(url + "/console/usage")
    assert page.locator("#usage-chart svg").count() == 2
    assert page.locator("#usage-table tbody tr td code").count() >= 1
    shot(page, "usage")

    # --- fine-tuning: a training file with a bad line, the line's error shown
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    content = json.dumps(good) + "\n" + '{"messages": "oops"}\n' + json.dumps(good) + "\n"
    page.goto(url + "/console/fine-tuning")
    page.set_input_files(
        "#upload-file",
        files=[
            {"name": "train.jsonl", "mimeType": "application/jsonl", "buffer": content.encode()}
        ],
    )
    page.click("#upload")
    error = page.locator("#upload-errors li").first
    error.wait_for()
    assert error.inner_text().startswith("line 2: missing `messages`")
    assert "2 valid examples" in page.inner_text("#upload-result")
    shot(page, "fine-tuning")
    page.select_option("#job-model", MODEL)
    page.click("#job-start")
    page.wait_for_url("**/console/fine-tuning/ftjob-*")
    page.locator("#job-status", has_text="failed").wait_for()
    assert "line 2" in page.inner_text("#events")
    assert page.is_hidden("#job-cancel")
    # the status and events are rendered by the server; the chart only by the page's script,
    # which may not have run yet when the status is already there
    page.locator("#loss-chart text", has_text="No training steps yet.").wait_for()
    # a valid job waits for the trainer (off here: training is tests/e2e/test_fine_tuning.py);
    # the live curve is fed the metrics events a training run writes, one per step
    auth = {"Authorization": f"Bearer {key}"}
    good_file = httpx.post(
        url + "/v1/files",
        headers=auth,
        data={"purpose": "fine-tune"},
        files={"file": ("good.jsonl", (json.dumps(good) + "\n").encode(), "application/jsonl")},
    ).json()["id"]
    job = httpx.post(
        url + "/v1/fine_tuning/jobs",
        headers=auth,
        json={"training_file": good_file, "model": MODEL, "suffix": "demo"},
    ).json()["id"]
    page.goto(f"{url}/console/fine-tuning/{job}")
    page.locator("#job-status", has_text="queued").wait_for()
    write_metrics(live, job, [2.9, 2.4, 1.7, 1.1, 0.8, 0.6])
    page.locator("#loss-chart polyline.loss").wait_for()  # drawn by the page's polling
    points = page.locator("#loss-chart polyline.loss").get_attribute("points")
    assert len(points.split()) == 6
    assert "training loss: 0.6000 at step 6" in page.locator("#loss-chart").text_content()
    shot(page, "fine-tuning-job")
    page.click("#job-cancel")
    page.locator("#job-status", has_text="cancelled").wait_for()
    assert page.is_hidden("#job-cancel")
    assert httpx.get(f"{url}/v1/fine_tuning/jobs/{job}", headers=auth).json()["status"] == (
        "cancelled"
    )

    # --- evals: the run's items, input, sample and grade
    deadline = time.monotonic() + 60
    auth = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        run = httpx.get(f"{url}/v1/evals/{eval_id}/runs/{run_id}", headers=auth).json()
        if run["status"] not in ("queued", "in_progress"):
            break
        time.sleep(0.3)
    assert run["status"] == "completed", run
    page.goto(url + "/console/evals")
    page.click(f'a[href="/console/evals/{eval_id}/runs/{run_id}"]')
    page.wait_for_url(f"**/runs/{run_id}")
    rows = page.locator("#items-table tbody tr")
    assert rows.count() == 2
    assert "capital of Italy? <b>bold</b>" in rows.nth(1).inner_text()  # text, not markup
    assert rows.nth(1).locator("b").count() == 0
    assert "%" in page.inner_text("#pass-rate")
    shot(page, "eval-run")
    # start a run from the evals page: a model, a data file, the messages
    rows = "".join(
        json.dumps({"item": {"q": q, "a": a}}) + "\n"
        for q, a in (("Capital of Spain?", "Madrid"), ("Capital of Japan?", "Tokyo"))
    )
    httpx.post(
        url + "/v1/files",
        headers=auth,
        data={"purpose": "evals"},
        files={"file": ("capitals.jsonl", rows.encode(), "application/jsonl")},
    ).raise_for_status()
    page.goto(url + "/console/evals")
    card = page.locator(f"#eval-{eval_id}")
    card.locator("summary", has_text="Start a run").click()
    card.locator("input[name=system]").fill("Answer in one word.")
    assert card.locator("input[name=user]").input_value() == "{{item.q}}"
    card.locator("input[name=max_tokens]").fill("8")
    card.locator("form.run-form button[type=submit]").click()
    page.wait_for_url(lambda u: "/runs/" in u and run_id not in u)
    page.locator("#run-status", has_text="completed").wait_for()  # the page reloads
    assert page.locator("#items-table tbody tr").count() == 2
    page.goto(url + "/console/evals")
    page.click("text=Compare A and B")
    page.wait_for_url("**/compare?**")
    assert page.locator("#compare-table tbody tr").count() == 2
    shot(page, "eval-compare")

    # --- batches: progress and the output to download
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = httpx.get(f"{url}/v1/batches/{batch_id}", headers=auth).json()
        if state["status"] == "completed":
            break
        time.sleep(0.3)
    page.goto(url + "/console/batches")
    row = page.locator("#batches-table tr", has_text=batch_id)
    assert "completed" in row.inner_text() and "2/2" in row.inner_text()
    href = row.locator("a", has_text="output").get_attribute("href")
    out = page.evaluate("(h) => fetch(h).then(r => r.text())", href)
    assert [json.loads(x)["custom_id"] for x in out.splitlines()] in (["r0", "r1"], ["r1", "r0"])
    shot(page, "batches")

    # --- a phone-sized playground still works
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(url + "/console/playground")
    assert page.is_visible("#send")
    shot(page, "playground-375")
    page.set_viewport_size({"width": 1280, "height": 860})

    # --- sign out: the console and the API refuse the old session
    page.click("#sign-out")
    page.wait_for_url("**/console/sign-in")
    page.goto(url + "/console/keys")
    assert "/console/sign-in" in page.url
    status = page.evaluate("fetch('/v1/models').then(r => r.status)")
    assert status == 401


def test_vector_stores_in_chromium(server: tuple[LiveServer, str], page: Any) -> None:
    """A project's vector stores and a store's files, indexed by the embedded model; the
    store of another project is not found."""
    live, key = server
    url = live.url
    auth = {"Authorization": f"Bearer {key}"}
    text = "# Handbook\n\nThe VPN code is ZX-9042. Lunch is served from noon until two.\n"
    upload = httpx.post(
        url + "/v1/files",
        headers=auth,
        data={"purpose": "assistants"},
        files={"file": ("handbook.md", text.encode(), "text/markdown")},
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["id"]
    made = httpx.post(
        url + "/v1/vector_stores",
        headers=auth,
        json={"name": "handbook", "file_ids": [file_id], "metadata": {"team": "it"}},
    )
    assert made.status_code == 200, made.text
    store_id = made.json()["id"]
    other = cli(live.log.parent, "keys", "create", "--project", "elsewhere")
    theirs = httpx.post(
        url + "/v1/vector_stores", headers={"Authorization": f"Bearer {other}"}, json={}
    ).json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        store = httpx.get(f"{url}/v1/vector_stores/{store_id}", headers=auth).json()
        if not store["file_counts"]["in_progress"]:
            break
        time.sleep(0.3)
    assert store["status"] == "completed" and store["usage_bytes"] > 0, store

    page.goto(url + "/console/playground")
    if "/console/sign-in" in page.url:  # signed out by the test before, or run alone
        page.fill("#key", key)
        page.click("#sign-in")
        page.wait_for_url("**/console/playground")
    page.click('nav a[href="/console/vector-stores"]')
    page.wait_for_url("**/console/vector-stores")
    row = page.locator("#vector-stores-table tbody tr", has_text=store_id)
    assert "handbook" in row.inner_text() and "1/1 indexed" in row.inner_text()
    assert row.locator("td.state").inner_text() == "completed"
    assert row.locator("td.bytes").inner_text() == str(store["usage_bytes"])
    created = row.locator("td.time").first.inner_text()
    assert created and created != str(store["created_at"])  # the script made it local time
    assert page.locator("#vector-stores-table", has_text=theirs).count() == 0
    shot(page, "vector-stores")
    row.locator(f'a[href="/console/vector-stores/{store_id}"]').click()
    page.wait_for_url(f"**/console/vector-stores/{store_id}")
    assert page.inner_text("#store-status") == "completed"
    file_row = page.locator("#store-files-table tbody tr", has_text=file_id)
    assert "handbook.md" in file_row.inner_text()
    assert file_row.locator("td.state").inner_text() == "completed"
    shot(page, "vector-store")
    missing = page.goto(f"{url}/console/vector-stores/{theirs}")
    assert missing is not None and missing.status == 404
