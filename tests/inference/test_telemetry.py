"""Request telemetry: the engine's speculative-decoding counts reach Prometheus; the request
line names the dialect."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
from pydantic import BaseModel

from corral.core.config import LimitSettings, MessagesSettings, ResponsesSettings
from corral.inference.admission import Admission
from corral.inference.chat import ChatService
from corral.inference.messages.service import MessageService
from corral.inference.responses.conversations import ConversationStore
from corral.inference.responses.service import ResponseService
from corral.inference.responses.store import ResponseStore
from corral.inference.sealed import Sealer
from corral.inference.telemetry import Telemetry
from corral.protocol.chat import ChatCompletionRequest
from corral.protocol.messages import MessagesRequest
from corral.protocol.responses import ResponseRequest
from tests.fakes import fake_registry

MODEL = "m"


def _sample(t: Telemetry, name: str) -> float | None:
    return t.registry.get_sample_value(name, {"model": MODEL})


def test_drafted_and_accepted_tokens_are_counted() -> None:
    t = Telemetry()
    for drafted, accepted in ((12, 9), (4, 0)):
        timer = t.timer(MODEL, "chat")
        timer.token()
        timer.engine_timings(
            {
                "prompt_ms": 5.0,
                "predicted_ms": 50.0,
                "draft_n": drafted,
                "draft_n_accepted": accepted,
            }
        )
        timer.finish({"prompt_tokens": 3, "completion_tokens": 10})
    assert _sample(t, "corral_draft_tokens_total") == 16
    assert _sample(t, "corral_draft_accepted_tokens_total") == 9


def test_no_drafts_no_samples() -> None:
    t = Telemetry()
    timer = t.timer(MODEL, "chat")
    timer.engine_timings({"prompt_ms": 5.0, "predicted_ms": 50.0})
    timer.finish({"prompt_tokens": 3, "completion_tokens": 10})
    assert _sample(t, "corral_draft_tokens_total") is None


def _services() -> tuple[Telemetry, dict[str, Any]]:
    """The chat core and the two dialects on it (prepare, run), over a fake model."""
    telemetry = Telemetry()
    registry = fake_registry()
    chat = ChatService(registry, LimitSettings(), Admission(8), telemetry)
    sealer = Sealer(b"secret")
    stores = cast(ResponseStore, None), cast(ConversationStore, None)  # nothing is stored
    responses = ResponseService(chat, *stores, sealer, ResponsesSettings())
    messages = MessageService(chat, registry, sealer, MessagesSettings())
    return telemetry, {
        "chat": (chat.prepare, chat.run),
        "responses": (lambda req: responses.prepare(req, "-"), responses.run),
        "messages": (messages.prepare, messages.run),
    }


def _request(endpoint: str, stream: bool) -> Any:
    words = [{"role": "user", "content": "hi"}]
    body = {"model": "fake-model", "stream": stream}
    if endpoint == "chat":
        return ChatCompletionRequest.model_validate({**body, "messages": words})
    if endpoint == "responses":
        return ResponseRequest.model_validate({**body, "input": "hi"})
    return MessagesRequest.model_validate({**body, "messages": words, "max_tokens": 8})


@pytest.mark.parametrize("stream", [False, True])
async def test_the_request_line_names_the_dialect(
    caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    """Responses and Messages run on the chat core; their log line and corral_requests
    say `responses` and `messages`, not `chat` (labels from a fixed set in the code, never
    from a request), for whole answers and streams alike."""
    telemetry, services = _services()
    caplog.set_level(logging.INFO, logger="corral.requests")
    for endpoint, (prepare, run) in services.items():
        caplog.clear()
        result = await run(await prepare(_request(endpoint, stream)))
        if not isinstance(result, BaseModel):  # a stream (Messages always streams the core)
            async for _ in result:
                pass
        (record,) = [r for r in caplog.records if r.name == "corral.requests"]
        assert record.fields["endpoint"] == endpoint
        assert f" endpoint={endpoint} " in record.getMessage()
        labels = {"model": "fake-model", "endpoint": endpoint, "status": "ok"}
        assert telemetry.registry.get_sample_value("corral_requests_total", labels) == 1
