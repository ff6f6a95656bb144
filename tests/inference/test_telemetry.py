"""Request telemetry: the engine's speculative-decoding counts reach Prometheus."""

from __future__ import annotations

from corral.inference.telemetry import Telemetry

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
