"""Vector stores with the official `openai` SDK against a live server on the embedded
model, on SQLite and on PostgreSQL: files uploaded and indexed in the background to
`completed`, search finding the file that holds the answer (a word only one file has,
and a question in other words than the file's), attribute filters, file batches."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import NOT_GIVEN

from tests.conftest import MODEL, LiveServer, _postgres_available, fresh_postgres_database
from tests.vector_stores.test_parsing import minimal_pdf

pytestmark = pytest.mark.slow

DOCS = {
    "cafeteria.md": "# Cafeteria\n\nThe staff cafeteria on the ground floor serves lunch "
    "every weekday from noon until two o'clock. Soup and salad are always on the menu.",
    "parking.txt": "Parking. Employees park their cars in the garage under building B. "
    "Each car needs a permit sticker on the windscreen, issued by the security desk.",
    "vpn.json": '{"topic": "remote access", "text": "To reach the internal network from '
    'home, install the VPN client and sign in with the code ZX-9042 from your token."}',
    "holidays.py": '"""Vacation rules."""\n\n# Every employee has 25 days of paid vacation '
    "a year.\nVACATION_DAYS = 25\nCARRY_OVER_MAX = 5  # unused days carried to next year\n",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    env = {"CORRAL_VECTOR_STORES__POLL_S": "0.2"}
    drop = None
    if request.param == "postgresql":
        if not _postgres_available():
            if os.environ.get("CORRAL_REQUIRE_POSTGRES"):
                pytest.fail("PostgreSQL required but not reachable")
            pytest.skip("no PostgreSQL reachable")
        url, drop = fresh_postgres_database()
        env["CORRAL_DATABASE_URL"] = url
    live = LiveServer(tmp_path_factory.mktemp(f"vs-{request.param}"), env=env)
    try:
        live.wait_ready()
        yield live
    finally:
        live.stop()
        if drop is not None:
            drop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def upload(client: openai.OpenAI, docs: dict[str, str]) -> dict[str, str]:
    """Each document uploaded for assistants: its file id by name."""
    return {
        name: client.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants").id
        for name, text in docs.items()
    }


def indexed(client: openai.OpenAI, made: Any) -> Any:
    """The store once no file of it is in progress (two minutes at most)."""
    deadline = time.monotonic() + 120
    current = made
    while current.file_counts.in_progress and time.monotonic() < deadline:
        time.sleep(0.3)
        current = client.vector_stores.retrieve(made.id)
    return current


@pytest.fixture(scope="module")
def store(client: openai.OpenAI) -> tuple[str, dict[str, str]]:
    """A store made from uploaded files, waited on until every file is indexed."""
    ids = upload(client, DOCS)
    made = client.vector_stores.create(
        name="handbook", file_ids=list(ids.values()), metadata={"owner": "hr"}
    )
    assert made.status == "in_progress" and made.file_counts.total == len(DOCS)
    current = indexed(client, made)
    assert current.status == "completed", current
    assert current.file_counts.completed == len(DOCS) and current.usage_bytes > 0
    return made.id, ids


def first_file(client: openai.OpenAI, store_id: str, query: str, vectors_only: bool = False) -> str:
    # `hybrid_search` is the Responses file_search tool's ranking option; corral's search
    # takes it too (text weight 0: the vector half alone).
    weights = {"hybrid_search": {"text_weight": 0.0, "embedding_weight": 1.0}}
    page = client.vector_stores.search(
        store_id,
        query=query,
        max_num_results=3,
        ranking_options=weights if vectors_only else NOT_GIVEN,  # type: ignore[arg-type]
    )
    results = list(page)
    assert results, query
    assert all(0 < r.score <= 1 for r in results)
    return results[0].filename


def test_a_word_only_one_file_has(client: openai.OpenAI, store: tuple[str, dict[str, str]]) -> None:
    store_id, _ = store
    assert first_file(client, store_id, "ZX-9042") == "vpn.json"
    assert first_file(client, store_id, "permit sticker") == "parking.txt"
    assert first_file(client, store_id, "How many days off do I get?") == "holidays.py"


def test_a_question_in_other_words(
    client: openai.OpenAI, store: tuple[str, dict[str, str]]
) -> None:
    """No word of these questions is in the file that answers them (after stop words):
    the vectors find it. (The embedded 135M chat model is a weak embedder: on a set of 9
    questions over these files, vectors alone put the right file first for 4, keywords
    alone for 6, the fusion for 7; docs/vector-stores.md.)"""
    store_id, _ = store
    assert first_file(client, store_id, "food at the office") == "cafeteria.md"
    question = "How do I connect to the company network remotely?"
    assert first_file(client, store_id, question, vectors_only=True) == "vpn.json"


def test_files_listed_and_filtered_by_attributes(
    client: openai.OpenAI, store: tuple[str, dict[str, str]]
) -> None:
    store_id, ids = store
    listed = client.vector_stores.files.list(store_id, filter="completed")
    assert {f.id for f in listed} == set(ids.values())
    updated = client.vector_stores.files.update(
        ids["parking.txt"], vector_store_id=store_id, attributes={"site": "lisbon", "floor": 0}
    )
    assert updated.attributes == {"site": "lisbon", "floor": 0}
    page = client.vector_stores.search(
        store_id,
        query="where do I leave my car",
        filters={"type": "eq", "key": "site", "value": "lisbon"},
    )
    assert {r.file_id for r in page} == {ids["parking.txt"]}
    none = client.vector_stores.search(
        store_id, query="car", filters={"type": "gt", "key": "floor", "value": 3}
    )
    assert list(none) == []


def test_a_file_batch_uploads_and_polls(client: openai.OpenAI) -> None:
    made = client.vector_stores.create(name="batch")
    files = [("a.md", io.BytesIO(b"# Alpha\n\nThe alpha release ships in March."))]
    files.append(("b.txt", io.BytesIO(b"The beta release ships in October.")))
    files.append(("c.pdf", io.BytesIO(minimal_pdf("The gamma release ships in June."))))
    batch = client.vector_stores.file_batches.upload_and_poll(
        made.id, files=files, poll_interval_ms=300
    )
    assert batch.object == "vector_store.files_batch" and batch.status == "completed"
    assert batch.file_counts.completed == 3
    in_batch = client.vector_stores.file_batches.list_files(batch.id, vector_store_id=made.id)
    assert len(list(in_batch)) == 3
    assert first_file(client, made.id, "gamma") == "c.pdf"
    content = client.vector_stores.files.content(in_batch.data[0].id, vector_store_id=made.id)
    assert "release ships" in next(iter(content)).text
    deleted = client.vector_stores.delete(made.id)
    assert deleted.deleted and deleted.object == "vector_store.deleted"
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve(made.id)


def test_bad_requests_are_400(client: openai.OpenAI, store: tuple[str, dict[str, str]]) -> None:
    store_id, _ = store
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.search(store_id, query="x", max_num_results=51)
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(
            chunking_strategy={
                "type": "static",
                "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150},
            }
        )
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.files.create(vector_store_id=store_id, file_id="file-missing")


def test_a_file_search_answer_cites_the_right_file(
    client: openai.OpenAI, store: tuple[str, dict[str, str]]
) -> None:
    """The Responses `file_search` tool over this store, on SQLite and on PostgreSQL
    (tests/e2e/test_file_search.py has the tool's other behaviour, on SQLite)."""
    store_id, ids = store
    response = client.responses.create(
        model=MODEL,
        input="Where do employees park their cars?",
        tools=[{"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 2}],
        tool_choice={"type": "file_search"},
        include=["file_search_call.results"],
        max_output_tokens=256,
        temperature=0,
    )
    (call,) = [o for o in response.output if o.type == "file_search_call"]
    assert call.status == "completed" and call.results
    # Two results: the model's own queries (not repeatable, even greedy) are searched
    # beside the question, and have once put another file first.
    assert "parking.txt" in [r.filename for r in call.results]
    cited = [
        a.file_id
        for o in response.output
        if o.type == "message"
        for part in o.content
        for a in getattr(part, "annotations", [])
    ]
    assert ids["parking.txt"] in cited
