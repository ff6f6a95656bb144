"""The Files API through a live server and the official openai client."""

from __future__ import annotations

import io

import httpx
import openai
import pytest

from tests.conftest import LiveServer


def test_upload_list_retrieve_content_delete(client: openai.OpenAI) -> None:
    data = b'{"messages": [{"role": "user", "content": "hi"}]}\n'
    created = client.files.create(file=("../../etc/passwd", io.BytesIO(data)), purpose="fine-tune")
    assert created.id.startswith("file-")
    assert created.bytes == len(data)
    assert created.purpose == "fine-tune"
    assert created.filename == "passwd"  # metadata only: never a path
    assert client.files.retrieve(created.id).id == created.id
    assert client.files.content(created.id).read() == data
    listed = client.files.list(purpose="fine-tune")
    assert created.id in [f.id for f in listed.data]
    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)


def test_every_purpose_and_pagination(client: openai.OpenAI) -> None:
    ids = [
        client.files.create(file=(f"{p}.jsonl", io.BytesIO(b"{}\n")), purpose=p).id  # type: ignore[arg-type]
        for p in ("batch", "evals", "user_data")
    ]
    page = client.files.list(limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    seen = [f.id for f in client.files.list(limit=2, order="asc")]  # follows the pages
    assert set(ids) <= set(seen)
    assert len(seen) == len(set(seen))


def test_bad_uploads_are_openai_errors(client: openai.OpenAI, live_server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.files.create(file=("x.jsonl", io.BytesIO(b"{}")), purpose="nonsense")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "purpose"  # type: ignore[index]
    r = httpx.post(live_server.url + "/v1/files", json={"purpose": "fine-tune"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_content_type"
    r = httpx.post(live_server.url + "/v1/files", files={"file": ("a", b"x")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "purpose"
    r = httpx.post(live_server.url + "/v1/files", data={"purpose": "fine-tune"}, files={})
    assert r.status_code == 400


def test_upload_limit_is_checked_while_streaming(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("files-limit")
    server = LiveServer(data_dir, env={"CORRAL_FILES__MAX_BYTES": "2048"})
    try:
        server.wait_ready()
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        client.files.create(file=("ok.jsonl", io.BytesIO(b"x" * 2000)), purpose="user_data")

        def chunks() -> object:  # chunked: no content-length to refuse up front
            for _ in range(100):
                yield b"x" * 1000

        boundary = "b0undary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n'
            f"user_data\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="big.jsonl"\r\n\r\n'
        ).encode()

        def body() -> object:
            yield head
            yield from chunks()  # type: ignore[misc]
            yield f"\r\n--{boundary}--\r\n".encode()

        r = httpx.post(
            server.url + "/v1/files",
            content=body(),  # type: ignore[arg-type]
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request_too_large"
        assert [f.filename for f in client.files.list().data] == ["ok.jsonl"]
        leftovers = [p.name for p in (data_dir / "files").iterdir() if p.name.startswith(".")]
        assert leftovers == []
    finally:
        server.stop()
