"""The catalog "done when", end to end: a live `corral serve` with the shipped catalog plus
a test catalog of small local models (the embedded GGUF under several snapshot ids), the
official openai client, and the pages in a real headless Chromium."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import openai
import pytest

from corral.catalog.schema import embedded_model_path, utc_today
from tests.conftest import LiveServer
from tests.lifecycle_catalog import test_catalog as make_catalog

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ASK = [{"role": "user", "content": "Say hi."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("lifecycle")
    catalog = make_catalog(folder, utc_today(), gguf=embedded_model_path())
    live = LiveServer(
        folder / "data",
        env={
            "CORRAL_CATALOG": str(catalog),
            "CORRAL_MODEL": "tiny-a",
            # each test model is declared as 300 MiB: two fit, a third forces an unload
            "CORRAL_LOADING__MEMORY_BUDGET_MIB": "700",
            "CORRAL_ENGINE__N_CTX": "2048",
            "CORRAL_ENGINE__N_PARALLEL": "2",
        },
    )
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_alias_resolves_and_response_names_snapshot(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="tiny-a", messages=ASK, max_tokens=4
    )
    assert raw.parse().model == "tiny-a-new"
    assert raw.headers["x-corral-alias"] == "tiny-a; snapshot=tiny-a-new"
    # the shipped catalog is there too: its embedded model, by its family alias
    r = client.chat.completions.create(model="smollm2-135m-instruct", messages=ASK, max_tokens=2)
    assert r.model == "smollm2-135m-instruct-2024-11-01"


def test_deprecated_snapshot_serves_with_headers(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="tiny-a-old", messages=ASK, max_tokens=4
    )
    assert raw.parse().model == "tiny-a-old"
    today = utc_today()
    deprecated = datetime(today.year, today.month, today.day, tzinfo=UTC) - timedelta(days=10)
    assert raw.headers["deprecation"] == f"@{int(deprecated.timestamp())}"
    sunset = parsedate_to_datetime(raw.headers["sunset"])
    assert sunset == deprecated + timedelta(days=110)
    assert '</v1/models/tiny-a-new>; rel="successor-version"' in raw.headers["link"]


def test_shut_down_snapshot_refuses_with_replacement(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="tiny-a-gone", messages=ASK, max_tokens=4)
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "model_shutdown"
    assert "tiny-a-new" in body["message"]


def test_models_endpoint_fields(client: openai.OpenAI, server: LiveServer) -> None:
    ids = {m.id for m in client.models.list().data}
    assert {"tiny-a", "tiny-a-new", "tiny-a-old"} <= ids
    # What is not downloaded here is listed only with ?all=true (the whole catalog).
    assert "llama3.1-8b-2024-07-23" not in ids and "llama3.1-8b" not in ids
    everything = {m.id for m in client.models.list(extra_query={"all": "true"}).data}
    assert {"llama3.1-8b-2024-07-23", "llama3.1-8b"} <= everything and ids < everything
    assert "tiny-a-gone" not in everything
    card = httpx.get(server.url + "/v1/models/llama-70b-latest").json()
    assert card["alias_for"] == "llama3.3-70b-2024-12-06"
    assert [m["snapshot"] for m in card["alias_history"]] == [
        "llama3.1-70b-2024-07-23",
        "llama3.3-70b-2024-12-06",
    ]
    deps = httpx.get(server.url + "/v1/deprecations").json()["data"]
    assert {d["id"] for d in deps} >= {"tiny-a-old", "tiny-a-gone", "llama3.1-70b-2024-07-23"}


def test_two_models_concurrently_within_budget_forcing_unload(
    client: openai.OpenAI, server: LiveServer
) -> None:
    # tiny-a-new (preloaded) and tiny-a-old are loaded by now (earlier tests), and
    # smollm2 too: the budget holds two, so loads have unloaded the least recently used.
    results: dict[str, str] = {}

    def ask(model: str) -> None:
        results[model] = client.chat.completions.create(
            model=model, messages=ASK, max_tokens=16
        ).model

    threads = [threading.Thread(target=ask, args=(m,)) for m in ("tiny-b", "tiny-a")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == {"tiny-b": "tiny-b-1", "tiny-a": "tiny-a-new"}
    ready = httpx.get(server.url + "/ready").json()
    engines = ready["engines"]
    loaded = sorted(k for k, v in engines.items() if v["state"] == "loaded")
    assert loaded == ["tiny-a-new", "tiny-b-1"], engines
    assert ready["memory"]["used_mib"] <= ready["memory"]["budget_mib"] == 700
    metrics = httpx.get(server.url + "/metrics").text
    unloads = next(
        line for line in metrics.splitlines() if line.startswith("corral_model_unloads_total")
    )
    assert float(unloads.split()[-1]) >= 2  # two loads past the budget so far
    print("engines:", engines)  # load times and measured memory, for the report


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_pages_render_in_chromium(browser: object, server: LiveServer) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.goto(server.url + "/models")
        assert page.title() == "Models · corral"
        rows = page.locator("#overview tbody tr")
        models = [rows.nth(i).get_attribute("data-model") for i in range(rows.count())]
        for alias in ("llama3.1-8b", "llama3.3-70b", "tiny-a", "tiny-b", "smollm2-135m-instruct"):
            assert alias in models
        assert "Llama 3.1 8B Instruct" in page.locator("#flagship").inner_text()
        tiny = page.locator('#overview tr[data-model="tiny-a"]')
        cells = tiny.locator("td").all_inner_texts()
        assert cells[2] == "tiny-a-new" and cells[6] == "$0.50" and cells[8] == "$1.50"
        # the catalog's markup is text, not HTML
        assert "Tiny A <b>test</b> model" in cells[3]
        assert tiny.locator("b").count() == 0
        assert page.locator('#aliases tr[data-alias="tiny-latest"] td').nth(1).inner_text() == (
            "tiny-a-next"
        )
        page.goto(server.url + "/deprecations")
        rows = page.locator("#deprecations tbody tr")
        listed = [rows.nth(i).get_attribute("data-snapshot") for i in range(rows.count())]
        assert listed[0] == "tiny-a-gone"
        assert set(listed) == {"tiny-a-gone", "tiny-a-old", "llama3.1-70b-2024-07-23"}
        old = page.locator('#deprecations tr[data-snapshot="tiny-a-old"] td').all_inner_texts()
        assert old[2] == "deprecated" and old[5] == "tiny-a-new"
    finally:
        page.close()
