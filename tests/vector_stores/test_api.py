"""The Vector Stores API over HTTP in process, on SQLite and PostgreSQL: shapes, the
worker taking files to completed, hybrid search finding the right file, filters, paging,
project isolation, limits and bad input (400, never 500), metering."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from corral.accounts.keys import Principal
from corral.core.clock import now
from corral.core.config import VectorStoreSettings
from corral.core.errors import InvalidRequestError, NotFoundError
from corral.protocol.vector_stores import SearchRequest
from corral.storage.tables import Usage, VectorStoreFileRow, VectorStoreRow
from corral.vector_stores import vectors
from corral.vector_stores.ingest import IndexWorker
from tests.vector_stores.conftest import ADMIN, App, vs_settings

DOCS = {
    "refunds.txt": "Refund policy. Customers may return any item within 30 days of delivery "
    "for a full refund. Refunds are paid to the original card.",
    "shipping.md": "# Shipping\n\nOrders ship from the Lisbon warehouse. Express shipping "
    "takes two business days; standard shipping takes five.",
    "team.json": '{"team": "platform", "oncall": "Ada Lovelace", "pager": "pd-4411"}',
}


async def store_with_docs(vs: App, **extra: object) -> tuple[str, dict[str, str]]:
    ids = {name: await vs.upload(name, text) for name, text in DOCS.items()}
    r = await vs.post("/v1/vector_stores", {"name": "kb", "file_ids": list(ids.values()), **extra})
    assert r.status_code == 200, r.text
    return str(r.json()["id"]), ids


async def test_files_are_indexed_in_the_background_then_searched(vs: App) -> None:
    store_id, ids = await store_with_docs(vs, metadata={"team": "support"})
    made = (await vs.get(f"/v1/vector_stores/{store_id}")).json()
    assert made["object"] == "vector_store" and made["status"] == "in_progress"
    assert made["file_counts"] == {
        "in_progress": 3,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "total": 3,
    }
    assert made["metadata"] == {"team": "support"} and made["usage_bytes"] == 0
    await vs.index()
    done = (await vs.get(f"/v1/vector_stores/{store_id}")).json()
    assert done["status"] == "completed" and done["file_counts"]["completed"] == 3
    assert done["usage_bytes"] > 0
    one = (await vs.get(f"/v1/vector_stores/{store_id}/files/{ids['refunds.txt']}")).json()
    assert one["object"] == "vector_store.file" and one["status"] == "completed"
    assert one["chunking_strategy"] == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }
    r = await vs.post(f"/v1/vector_stores/{store_id}/search", {"query": "how many days to return"})
    page = r.json()
    assert page["object"] == "vector_store.search_results.page"
    assert page["search_query"] == ["how many days to return"] and page["has_more"] is False
    first = page["data"][0]
    assert first["file_id"] == ids["refunds.txt"] and first["filename"] == "refunds.txt"
    assert 0 < first["score"] <= 1 and first["content"][0]["type"] == "text"
    assert "30 days" in first["content"][0]["text"]
    content = (
        await vs.get(f"/v1/vector_stores/{store_id}/files/{ids['team.json']}/content")
    ).json()
    assert content["object"] == "vector_store.file_content.page"
    assert "Ada Lovelace" in content["data"][0]["text"]


async def test_keyword_only_match_is_found(vs: App) -> None:
    store_id, ids = await store_with_docs(vs)
    await vs.index()
    r = await vs.post(f"/v1/vector_stores/{store_id}/search", {"query": "pd-4411"})
    assert r.json()["data"][0]["file_id"] == ids["team.json"]
    # A list of queries, results capped, a threshold only the best passes.
    body = {
        "query": ["Lisbon warehouse", "express"],
        "max_num_results": 1,
        "ranking_options": {"ranker": "auto", "score_threshold": 0.5},
        "rewrite_query": True,
    }
    r = await vs.post(f"/v1/vector_stores/{store_id}/search", body)
    assert [d["file_id"] for d in r.json()["data"]] == [ids["shipping.md"]]
    assert r.json()["search_query"] == ["Lisbon warehouse", "express"]


async def test_attribute_filters(vs: App) -> None:
    store_id = (await vs.post("/v1/vector_stores", {"name": "f"})).json()["id"]
    files = [
        {"file_id": await vs.upload(n, t), "attributes": a}
        for (n, t), a in zip(
            DOCS.items(),
            [{"kind": "policy", "year": 2024}, {"kind": "policy", "year": 2026}, {"kind": "org"}],
            strict=True,
        )
    ]
    r = await vs.post(f"/v1/vector_stores/{store_id}/file_batches", {"files": files})
    batch = r.json()
    assert batch["object"] == "vector_store.files_batch" and batch["file_counts"]["total"] == 3
    await vs.index()
    batch = (await vs.get(f"/v1/vector_stores/{store_id}/file_batches/{batch['id']}")).json()
    assert batch["status"] == "completed" and batch["file_counts"]["completed"] == 3

    async def found(filters: Mapping[str, object]) -> set[str]:
        body = {"query": "refund shipping team", "filters": filters}
        r = await vs.post(f"/v1/vector_stores/{store_id}/search", body)
        assert r.status_code == 200, r.text
        return {d["filename"] for d in r.json()["data"]}

    assert await found({"type": "eq", "key": "kind", "value": "org"}) == {"team.json"}
    assert await found({"type": "gte", "key": "year", "value": 2025}) == {"shipping.md"}
    assert await found({"type": "nin", "key": "kind", "value": ["org"]}) == {
        "refunds.txt",
        "shipping.md",
    }
    both = {
        "type": "and",
        "filters": [
            {"type": "eq", "key": "kind", "value": "policy"},
            {"type": "lt", "key": "year", "value": 2025},
        ],
    }
    assert await found(both) == {"refunds.txt"}
    either = {
        "type": "or",
        "filters": [
            {"type": "eq", "key": "kind", "value": "org"},
            {"type": "eq", "key": "year", "value": 2024},
        ],
    }
    assert await found(either) == {"refunds.txt", "team.json"}
    assert await found({"type": "eq", "key": "kind", "value": "nothing"}) == set()
    # New attributes take effect at once.
    team_id = files[2]["file_id"]
    r = await vs.post(
        f"/v1/vector_stores/{store_id}/files/{team_id}", {"attributes": {"kind": "policy"}}
    )
    assert r.json()["attributes"] == {"kind": "policy"}
    assert await found({"type": "eq", "key": "kind", "value": "org"}) == set()


async def test_lists_page_and_filter_by_status(vs: App) -> None:
    stores = [
        (await vs.post("/v1/vector_stores", {"name": f"s{i}"})).json()["id"] for i in range(3)
    ]
    first = (await vs.get("/v1/vector_stores", limit=2)).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [s["id"] for s in first["data"]] == stores[::-1][:2]
    rest = (await vs.get("/v1/vector_stores", limit=2, after=first["last_id"])).json()
    assert [s["id"] for s in rest["data"]] == stores[:1] and rest["has_more"] is False
    asc = (await vs.get("/v1/vector_stores", order="asc")).json()
    assert [s["id"] for s in asc["data"]] == stores

    store_id = stores[0]
    good = [await vs.upload(f"g{i}.txt", f"note number {i}") for i in range(3)]
    bad = await vs.upload("blob.bin", b"\x00\x01\x02binary")
    for file_id in [*good, bad]:
        r = await vs.post(f"/v1/vector_stores/{store_id}/files", {"file_id": file_id})
        assert r.json()["status"] == "in_progress"
    await vs.index()
    failed = (await vs.get(f"/v1/vector_stores/{store_id}/files", filter="failed")).json()
    assert [f["id"] for f in failed["data"]] == [bad]
    assert failed["data"][0]["last_error"]["code"] == "unsupported_file"
    done = (await vs.get(f"/v1/vector_stores/{store_id}/files", filter="completed", limit=2)).json()
    assert done["has_more"] is True
    more = await vs.get(
        f"/v1/vector_stores/{store_id}/files", filter="completed", after=done["last_id"]
    )
    assert {f["id"] for f in done["data"] + more.json()["data"]} == set(good)


async def test_removing_a_file_removes_its_chunks(vs: App) -> None:
    store_id, ids = await store_with_docs(vs)
    await vs.index()
    r = await vs.http.delete(
        f"/v1/vector_stores/{store_id}/files/{ids['refunds.txt']}", headers=vs.a
    )
    assert r.json() == {
        "id": ids["refunds.txt"],
        "object": "vector_store.file.deleted",
        "deleted": True,
    }
    r = await vs.post(f"/v1/vector_stores/{store_id}/search", {"query": "refund"})
    assert ids["refunds.txt"] not in {d["file_id"] for d in r.json()["data"]}
    # The uploaded file itself stays; attaching it again indexes it again.
    r = await vs.post(f"/v1/vector_stores/{store_id}/files", {"file_id": ids["refunds.txt"]})
    assert r.status_code == 200
    await vs.index()
    r = await vs.post(f"/v1/vector_stores/{store_id}/search", {"query": "refund"})
    assert r.json()["data"][0]["file_id"] == ids["refunds.txt"]
    gone = await vs.http.delete(f"/v1/vector_stores/{store_id}", headers=vs.a)
    assert gone.json() == {"id": store_id, "object": "vector_store.deleted", "deleted": True}
    assert (await vs.get(f"/v1/vector_stores/{store_id}")).status_code == 404


async def test_a_cancelled_batch_indexes_nothing(vs: App) -> None:
    store_id = (await vs.post("/v1/vector_stores", {})).json()["id"]
    file_ids = [await vs.upload(f"n{i}.md", f"# note {i}") for i in range(2)]
    batch = (
        await vs.post(f"/v1/vector_stores/{store_id}/file_batches", {"file_ids": file_ids})
    ).json()
    r = await vs.post(f"/v1/vector_stores/{store_id}/file_batches/{batch['id']}/cancel", {})
    assert r.json()["status"] == "cancelled" and r.json()["file_counts"]["cancelled"] == 2
    await vs.index()
    listed = await vs.get(f"/v1/vector_stores/{store_id}/file_batches/{batch['id']}/files")
    assert {f["status"] for f in listed.json()["data"]} == {"cancelled"}
    store = (await vs.get(f"/v1/vector_stores/{store_id}")).json()
    assert store["status"] == "completed" and store["file_counts"]["cancelled"] == 2


async def test_another_project_gets_404_everywhere(vs: App) -> None:
    store_id, ids = await store_with_docs(vs)
    await vs.index()
    file_id = ids["refunds.txt"]
    batch = (
        await vs.post(f"/v1/vector_stores/{store_id}/file_batches", {"file_ids": [file_id]})
    ).json()
    base = f"/v1/vector_stores/{store_id}"
    for path in (
        base,
        f"{base}/files",
        f"{base}/files/{file_id}",
        f"{base}/files/{file_id}/content",
        f"{base}/file_batches/{batch['id']}",
        f"{base}/file_batches/{batch['id']}/files",
    ):
        assert (await vs.get(path, who="b")).status_code == 404, path
    b_file = (
        await vs.http.post(
            "/v1/files",
            data={"purpose": "assistants"},
            files={"file": ("b.txt", b"b's text")},
            headers=vs.b,
        )
    ).json()["id"]
    for path, body in (
        (base, {"name": "x"}),
        (f"{base}/search", {"query": "refund"}),
        (f"{base}/files", {"file_id": b_file}),
        (f"{base}/files/{file_id}", {"attributes": {}}),
        (f"{base}/file_batches", {"file_ids": [b_file]}),
        (f"{base}/file_batches/{batch['id']}/cancel", {}),
    ):
        r = await vs.post(path, body, who="b")
        assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error", path
    assert (await vs.http.delete(base, headers=vs.b)).status_code == 404
    assert (await vs.http.delete(f"{base}/files/{file_id}", headers=vs.b)).status_code == 404
    assert (await vs.get("/v1/vector_stores", who="b")).json()["data"] == []
    # Nor can A attach B's file.
    r = await vs.post(f"{base}/files", {"file_id": b_file})
    assert r.status_code == 404
    assert (await vs.get(base)).status_code == 200


BAD: list[tuple[str, dict[str, object], str | None]] = [
    (
        "",
        {
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 51},
            }
        },
        None,
    ),
    (
        "",
        {
            "chunking_strategy": {
                "type": "static",
                "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0},
            }
        },
        None,
    ),
    ("", {"chunking_strategy": {"type": "fixed"}}, None),
    ("", {"expires_after": {"anchor": "created_at", "days": 1}}, None),
    ("", {"expires_after": {"anchor": "last_active_at", "days": 0}}, None),
    ("", {"metadata": {f"k{i}": "v" for i in range(17)}}, None),
    ("", {"metadata": {"k": "v" * 513}}, None),
    ("", {"file_ids": ["file-nope"]}, "file_id"),
    ("", {"colour": "red"}, "colour"),
    ("/search", {"query": ""}, "query"),
    ("/search", {"query": "x" * 5000}, "query"),
    ("/search", {"query": ["a"] * 11}, "query"),
    ("/search", {"query": "a", "max_num_results": 51}, None),
    ("/search", {"query": "a", "max_num_results": 0}, None),
    ("/search", {"query": "a", "ranking_options": {"score_threshold": 1.5}}, None),
    ("/search", {"query": "a", "ranking_options": {"ranker": "best"}}, None),
    (
        "/search",
        {"query": "a", "filters": {"type": "in", "key": "k", "value": "x"}},
        "filters.value",
    ),
    (
        "/search",
        {"query": "a", "filters": {"type": "eq", "key": "k", "value": ["x"]}},
        "filters.value",
    ),
    ("/search", {"query": "a", "filters": {"type": "xor", "filters": []}}, None),
    ("/search", {"query": "a", "filters": {"type": "and", "filters": []}}, "filters.filters"),
    ("/search", {"query": 5}, None),
    ("/files", {"file_id": "file-x", "attributes": {"a": {"nested": 1}}}, None),
    ("/file_batches", {"file_ids": ["a"], "files": [{"file_id": "a"}]}, None),
    ("/file_batches", {"file_ids": []}, "file_ids"),
]


async def test_bad_input_is_400(vs: App) -> None:
    """One app for every case (an app per case cost a second each on PostgreSQL)."""
    store_id = (await vs.post("/v1/vector_stores", {})).json()["id"]
    for path, body, param in BAD:
        target = "/v1/vector_stores" + (f"/{store_id}{path}" if path else "")
        r = await vs.post(target, body)
        if param == "file_id" and path == "":
            assert r.status_code == 404  # an unknown file, as the Files API says
            continue
        assert r.status_code == 400, (path, body, r.text)
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error", (path, body)
        if param is not None:
            assert error["param"] == param, (path, body)


async def test_bad_bodies_and_queries_are_400(vs: App) -> None:
    store_id = (await vs.post("/v1/vector_stores", {})).json()["id"]
    r = await vs.http.post(f"/v1/vector_stores/{store_id}/search", content=b"{nope", headers=vs.a)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert (await vs.get("/v1/vector_stores", limit=0)).status_code == 400
    assert (await vs.get("/v1/vector_stores", order="up")).status_code == 400
    assert (await vs.get("/v1/vector_stores", after="vs_nope")).status_code == 400
    r = await vs.get(f"/v1/vector_stores/{store_id}/files", filter="done")
    assert r.status_code == 400 and r.json()["error"]["param"] == "filter"
    batch_file = await vs.upload("b.jsonl", "{}\n", purpose="batch")
    r = await vs.post(f"/v1/vector_stores/{store_id}/files", {"file_id": batch_file})
    assert r.status_code == 400 and "purpose" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "store_settings", [vs_settings(max_files_per_store=2, max_chunks_per_store=3)]
)
async def test_limits(vs: App, store_settings: VectorStoreSettings) -> None:
    store_id = (await vs.post("/v1/vector_stores", {})).json()["id"]
    big = " ".join(f"word{i}" for i in range(2000))  # 4000 tokens: 7 chunks of 800/400
    small = await vs.upload("small.txt", "a small note")
    large = await vs.upload("large.txt", big)
    for file_id in (small, large):
        r = await vs.post(f"/v1/vector_stores/{store_id}/files", {"file_id": file_id})
        assert r.status_code == 200
    third = await vs.upload("third.txt", "one too many")
    r = await vs.post(f"/v1/vector_stores/{store_id}/files", {"file_id": third})
    assert r.status_code == 400 and "at most 2 files" in r.json()["error"]["message"]
    await vs.index()
    failed = (await vs.get(f"/v1/vector_stores/{store_id}/files/{large}")).json()
    assert failed["status"] == "failed" and failed["last_error"]["code"] == "invalid_file"
    assert "no room" in failed["last_error"]["message"]
    # Refused before it was embedded: only the small file's text reached the model.
    assert not any("word1999" in x for x in vs.engine.inputs)


async def test_embeddings_are_metered(vs: App) -> None:
    store_id, _ = await store_with_docs(vs)
    await vs.index()
    await vs.post(f"/v1/vector_stores/{store_id}/search", {"query": "refund"})
    services = vs.app.state.services
    await services.accounting.settled()
    async with services.db.session() as s:
        rows = list(await s.scalars(select(Usage)))
    by_endpoint = {r.endpoint: r for r in rows}
    assert by_endpoint["vector_stores"].prompt_tokens > 0
    assert by_endpoint["vector_stores.search"].prompt_tokens == 1
    # Embeddings, not completions, in the usage report.
    admin = {"Authorization": f"Bearer {ADMIN}"}
    since = int(now().timestamp()) - 60
    r = await vs.http.get(f"/v1/organization/usage/completions?start_time={since}", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["data"] and all(not bucket["results"] for bucket in r.json()["data"])


@pytest.mark.parametrize(("text", "vector"), [(1.0, 0.0), (0.0, 1.0), (2.0, 1.0)])
async def test_each_half_of_the_hybrid_finds_on_its_own(
    vs: App, text: float, vector: float
) -> None:
    store_id, ids = await store_with_docs(vs)
    await vs.index()
    weights = {"hybrid_search": {"text_weight": text, "embedding_weight": vector}}
    body = {"query": "refunds to the original card", "ranking_options": weights}
    data = (await vs.post(f"/v1/vector_stores/{store_id}/search", body)).json()["data"]
    assert data[0]["file_id"] == ids["refunds.txt"]
    assert data[0]["score"] == 1.0  # first in every list that ran


async def test_expiry_and_updates(vs: App) -> None:
    body = {"name": "old", "expires_after": {"anchor": "last_active_at", "days": 2}}
    made = (await vs.post("/v1/vector_stores", body)).json()
    assert made["expires_at"] == made["last_active_at"] + 2 * 86400
    assert made["expires_after"] == {"anchor": "last_active_at", "days": 2}
    store_id = made["id"]
    changed = (
        await vs.post(f"/v1/vector_stores/{store_id}", {"name": "new", "metadata": {"a": "b"}})
    ).json()
    assert changed["name"] == "new" and changed["metadata"] == {"a": "b"}
    assert changed["expires_at"] == made["expires_at"]  # not given: kept
    services = vs.app.state.services
    async with services.db.begin() as s:
        row = await s.get(VectorStoreRow, store_id)
        row.expires_at = now() - timedelta(seconds=1)
    assert (await vs.get(f"/v1/vector_stores/{store_id}")).json()["status"] == "expired"
    r = await vs.post(f"/v1/vector_stores/{store_id}/search", {"query": "x"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "expired"
    kept = (await vs.post(f"/v1/vector_stores/{store_id}", {"expires_after": None})).json()
    assert kept["status"] == "completed" and kept["expires_at"] is None


async def test_one_search_over_several_stores(vs: App) -> None:
    """What the Responses file_search tool will call: the caller's stores searched at
    once, the queries embedded once, results merged by score; another's store is 404."""
    first, ids = await store_with_docs(vs)
    second = (await vs.post("/v1/vector_stores", {"name": "more"})).json()["id"]
    extra = await vs.upload("returns.txt", "Returns of opened software are not refunded.")
    await vs.post(f"/v1/vector_stores/{second}/files", {"file_id": extra})
    await vs.index()
    service = vs.app.state.services.vector_stores
    who = await principal_of(vs, vs.a)
    before = len(vs.engine.inputs)
    req = SearchRequest(query="refund", max_num_results=3)
    page = await service.search_stores(who, [first, second, first], req)
    assert {d.file_id for d in page.data} >= {ids["refunds.txt"], extra}
    assert [d.score for d in page.data] == sorted((d.score for d in page.data), reverse=True)
    assert vs.engine.inputs[before:] == ["refund"]  # embedded once for both stores
    other = await principal_of(vs, vs.b)
    with pytest.raises(NotFoundError):
        await service.search_stores(other, [first], req)
    with pytest.raises(InvalidRequestError):
        await service.search_stores(who, [], req)


async def principal_of(vs: App, headers: dict[str, str]) -> Principal:
    found: Principal = await vs.app.state.services.keys.authenticate(headers["Authorization"])
    return found


async def test_deleting_an_uploaded_file_removes_it_from_its_stores(vs: App) -> None:
    store_id, ids = await store_with_docs(vs)
    other = (await vs.post("/v1/vector_stores", {"file_ids": [ids["team.json"]]})).json()["id"]
    await vs.index()
    assert (await vs.http.delete(f"/v1/files/{ids['team.json']}", headers=vs.b)).status_code == 404
    assert (await vs.get(f"/v1/vector_stores/{other}")).json()["file_counts"]["total"] == 1
    assert (await vs.http.delete(f"/v1/files/{ids['team.json']}", headers=vs.a)).status_code == 200
    for sid in (store_id, other):
        r = await vs.get(f"/v1/vector_stores/{sid}/files/{ids['team.json']}")
        assert r.status_code == 404
        r = await vs.post(f"/v1/vector_stores/{sid}/search", {"query": "pd-4411"})
        assert ids["team.json"] not in {d["file_id"] for d in r.json()["data"]}
    assert (await vs.get(f"/v1/vector_stores/{other}")).json()["file_counts"]["total"] == 0


async def test_a_file_whose_worker_died_is_indexed_by_another(vs: App) -> None:
    store_id, ids = await store_with_docs(vs)
    services = vs.app.state.services
    dead = services.vector_store_worker
    taken = [await dead.jobs.claim() for _ in DOCS]  # claimed, then its process "died"
    assert all(taken) and await dead.jobs.claim() is None
    other = IndexWorker(services.db, services.files, dead._embedder, vs_settings())
    await other.jobs.recover(timedelta(seconds=0))  # their heartbeats are stale at once
    while (claimed := await other.jobs.claim()) is not None:
        await other.execute(claimed)
    store = (await vs.get(f"/v1/vector_stores/{store_id}")).json()
    assert store["file_counts"]["completed"] == len(DOCS)
    # The dead worker's late writes change nothing: the files are no longer its own.
    await dead.execute(taken[0])
    r = await vs.get(f"/v1/vector_stores/{store_id}/files/{ids['refunds.txt']}")
    assert r.json()["status"] == "completed"
    content = (await vs.post(f"/v1/vector_stores/{store_id}/search", {"query": "refund"})).json()
    assert len({d["content"][0]["text"] for d in content["data"]}) == len(content["data"])


async def test_a_store_that_grew_appends_to_its_cached_vectors(
    vs: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    whole = vectors.load

    async def counted(db: Any, store_id: str, revision: int) -> vectors.Matrix:
        reads.append(store_id)
        return await whole(db, store_id, revision)

    monkeypatch.setattr(vectors, "load", counted)
    store_id, ids = await store_with_docs(vs)
    await vs.index()
    search = f"/v1/vector_stores/{store_id}/search"
    vector_only = {"hybrid_search": {"text_weight": 0, "embedding_weight": 1}}
    await vs.post(search, {"query": "refund", "ranking_options": vector_only})
    assert reads == [store_id]
    added = await vs.upload("returns.txt", "Opened software is never refunded.")
    await vs.post(f"/v1/vector_stores/{store_id}/files", {"file_id": added})
    await vs.index()
    r = await vs.post(search, {"query": "opened software", "ranking_options": vector_only})
    assert r.json()["data"][0]["file_id"] == added
    assert reads == [store_id]  # the new chunk was appended, the rest not read again
    await vs.http.delete(f"/v1/vector_stores/{store_id}/files/{added}", headers=vs.a)
    r = await vs.post(search, {"query": "opened software", "ranking_options": vector_only})
    assert added not in {d["file_id"] for d in r.json()["data"]}
    assert reads == [store_id, store_id]  # a removal: read whole again
    assert {d["file_id"] for d in r.json()["data"]} == set(ids.values())


async def test_usage_api_reports_the_bytes_stores_hold_per_day(vs: App) -> None:
    """`/v1/organization/usage/vector_stores`: the completed files' bytes held at each
    bucket's end (now for today's), counted from when each file was attached; per project
    with group_by project_id; project_ids filters; nothing in buckets after now."""
    store_a, ids = await store_with_docs(vs)
    r = await vs.http.post(
        "/v1/files",
        data={"purpose": "assistants"},
        files={"file": ("b.txt", b"Another project's only file about llamas.")},
        headers=vs.b,
    )
    store_b = (await vs.post("/v1/vector_stores", {"file_ids": [r.json()["id"]]}, who="b")).json()
    await vs.index()
    a_bytes = (await vs.get(f"/v1/vector_stores/{store_a}")).json()["usage_bytes"]
    b_bytes = (await vs.get(f"/v1/vector_stores/{store_b['id']}", who="b")).json()["usage_bytes"]
    assert a_bytes > 0 and b_bytes > 0
    # One of a's files attached two days ago: the buckets before today hold it alone.
    old = ids["refunds.txt"]
    services = vs.app.state.services
    async with services.db.begin() as s:
        row = await s.scalar(select(VectorStoreFileRow).where(VectorStoreFileRow.file_id == old))
        assert row is not None
        row.created_at = now() - timedelta(days=2)
        old_bytes = row.usage_bytes
    admin = {"Authorization": f"Bearer {ADMIN}"}
    projects = (await vs.http.get("/v1/organization/projects", headers=admin)).json()["data"]
    pid = {p["name"]: p["id"] for p in projects}
    today = int(now().timestamp()) // 86400 * 86400
    path = "/v1/organization/usage/vector_stores"
    params: dict[str, Any] = {"start_time": today - 3 * 86400, "limit": 5, "group_by": "project_id"}
    page = (await vs.http.get(path, params=params, headers=admin)).json()
    assert page["object"] == "page" and len(page["data"]) == 5
    held = [
        {r["project_id"]: r["usage_bytes"] for r in bucket["results"]} for bucket in page["data"]
    ]
    assert held == [
        {},
        {pid["a"]: old_bytes},
        {pid["a"]: old_bytes},
        {pid["a"]: a_bytes, pid["b"]: b_bytes},
        {},  # tomorrow
    ]
    result = page["data"][3]["results"][0]
    assert result["object"] == "organization.usage.vector_stores.result"
    assert page["data"][3]["start_time"] == today
    # Without group_by: one total; project_ids: those projects' stores only.
    one = {"start_time": today}
    total = (await vs.http.get(path, params=one, headers=admin)).json()["data"][0]["results"]
    assert total == [
        {
            "object": "organization.usage.vector_stores.result",
            "usage_bytes": a_bytes + b_bytes,
            "project_id": None,
        }
    ]
    only_b = {**one, "project_ids": pid["b"], "group_by": "project_id"}
    results = (await vs.http.get(path, params=only_b, headers=admin)).json()["data"][0]["results"]
    assert [(r["project_id"], r["usage_bytes"]) for r in results] == [(pid["b"], b_bytes)]
    # A file removed is gone from every bucket; a group the report has not; not an admin.
    await vs.http.delete(f"/v1/vector_stores/{store_b['id']}", headers=vs.b)
    results = (await vs.http.get(path, params=only_b, headers=admin)).json()["data"][0]["results"]
    assert results == []
    bad = await vs.http.get(path, params={**one, "group_by": "model"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
    assert (await vs.http.get(path, params=one, headers=vs.a)).status_code == 403
