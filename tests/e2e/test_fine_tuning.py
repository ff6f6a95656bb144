"""Fine-tuning through the HTTP API with the openai client, on the embedded model.

The made-up task: every answer starts with "ZORP:". The base model never does that; the
test fine-tunes it, then compares base and fine-tune on held-out questions.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.fine_tuning import FineTuningJob

from tests.conftest import MODEL, MODEL_SNAPSHOT, LiveServer

pytestmark = pytest.mark.slow

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
PREFIX = "ZORP:"
TRAIN = [
    ("What is the capital of France?", "Paris."),
    ("How many legs does a spider have?", "Eight."),
    ("What color is the sky on a clear day?", "Blue."),
    ("What is 3 plus 4?", "7."),
    ("Name a fruit that is yellow.", "A banana."),
    ("What do bees make?", "Honey."),
    ("What is the opposite of hot?", "Cold."),
    ("Which planet do we live on?", "Earth."),
    ("What animal says moo?", "A cow."),
    ("How many days are in a week?", "Seven."),
    ("What is frozen water called?", "Ice."),
    ("What language is spoken in Spain?", "Spanish."),
    ("What do you use to write on paper?", "A pen or a pencil."),
    ("What is the largest ocean?", "The Pacific Ocean."),
    ("How many hours are in a day?", "24."),
    ("What shape has three sides?", "A triangle."),
]
VALIDATION = [
    ("What is 2 plus 2?", "4."),
    ("What color is a banana?", "Yellow."),
    ("Which animal says meow?", "A cat."),
    ("What is the capital of Germany?", "Berlin."),
]
HELD_OUT = [
    "What is the capital of Italy?",
    "How many wheels does a bicycle have?",
    "What color is grass?",
    "What is 5 plus 5?",
    "Which animal barks?",
    "What is the boiling point of water in Celsius?",
    "Name a vegetable that is orange.",
    "How many months are in a year?",
    "What do cows drink?",
    "What is the color of snow?",
]


def jsonl(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def training_bytes(n: int = len(TRAIN), rows: list[tuple[str, str]] = TRAIN) -> bytes:
    return jsonl(
        [
            {
                "messages": [
                    SYSTEM,
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": f"{PREFIX} {a}"},
                ]
            }
            for q, a in rows[:n]
        ]
    )


def wait_for(
    client: openai.OpenAI, job_id: str, done: set[str], timeout: float = 420
) -> FineTuningJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in done:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"{job_id} still {job.status}")


def wait_for_step(client: openai.OpenAI, job_id: str, step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = client.fine_tuning.jobs.list_events(job_id, limit=5).data
        steps = [e.data["step"] for e in events if e.type == "metrics" and e.data]  # type: ignore[index]
        if steps and max(steps) >= step:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{job_id} never reached step {step}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(
        tmp_path_factory.mktemp("ft"), env={"CORRAL_FINE_TUNING__CHECKPOINT_EVERY": "2"}
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ft_client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def hits(client: openai.OpenAI, model: str) -> int:
    count = 0
    for question in HELD_OUT:
        reply = client.chat.completions.create(
            model=model,
            messages=[SYSTEM, {"role": "user", "content": question}],  # type: ignore[list-item]
            max_tokens=8,  # only the first tokens are checked (greedy: a prefix of 24)
            temperature=0,
        )
        content = (reply.choices[0].message.content or "").strip()
        count += content.startswith(PREFIX)
    return count


def test_fine_tune_learns_the_format(ft_client: openai.OpenAI) -> None:
    client = ft_client
    started = time.monotonic()
    training = client.files.create(
        file=("zorp.jsonl", io.BytesIO(training_bytes())), purpose="fine-tune"
    )
    validation = client.files.create(
        file=("zorp-valid.jsonl", io.BytesIO(training_bytes(rows=VALIDATION))), purpose="fine-tune"
    )
    job = client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=training.id,
        validation_file=validation.id,
        suffix="zorp",
        seed=7,
        method={
            "type": "supervised",
            "supervised": {
                "hyperparameters": {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 1}
            },
        },
    )
    assert job.status == "validating_files"
    assert job.model == MODEL_SNAPSHOT
    job = wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    assert job.status == "succeeded", job.error
    seconds = time.monotonic() - started
    name = job.fine_tuned_model
    assert name == f"ft:{MODEL_SNAPSHOT}:org-default:zorp:{job.id}"
    assert job.trained_tokens and job.trained_tokens > 0

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    metrics = [e.data for e in events if e.type == "metrics" and e.data]
    assert len(metrics) == 12  # 16 examples / 4 per step * 3 epochs
    for m in metrics:
        assert {"step", "train_loss", "tokens_per_s", "eta_s"} <= set(m)  # type: ignore[arg-type]
    by_step = sorted(metrics, key=lambda m: m["step"])  # type: ignore[index, return-value]
    assert by_step[-1]["train_loss"] < by_step[0]["train_loss"]  # type: ignore[index, operator]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints][:2] == [12, 10]
    valid = [c.metrics.valid_loss for c in checkpoints]
    assert all(v is not None for v in valid)
    assert valid[0] < valid[-1]  # the validation loss fell as it learned  # type: ignore[operator]
    assert [m["valid_loss"] for m in by_step if m["valid_loss"] is not None]  # type: ignore[index]

    models = {m.id: m for m in client.models.list().data}
    assert name in models
    assert models[name].owned_by == "org-default"
    assert models[name].model_extra and models[name].model_extra["parent"] == MODEL_SNAPSHOT

    base = hits(client, MODEL)
    tuned = hits(client, name)
    rate = max(float(m["tokens_per_s"]) for m in metrics)  # type: ignore[arg-type,index]
    print(
        f"\nheld-out format hits: base {base}/{len(HELD_OUT)}, fine-tune {tuned}/{len(HELD_OUT)}; "
        f"training {rate:.1f} tokens/s; job took {seconds:.0f}s"
    )
    results = os.environ.get("CORRAL_FT_RESULTS")
    if results:
        Path(results).write_text(
            json.dumps(
                {
                    "base_hits": base,
                    "fine_tune_hits": tuned,
                    "held_out": len(HELD_OUT),
                    "tokens_per_s": round(rate, 1),
                    "steps": len(metrics),
                    "trained_tokens": job.trained_tokens,
                    "job_seconds": round(seconds, 1),
                }
            )
        )
    assert tuned >= base + 5, (base, tuned)

    # The base still answers as the base beside it (the adapters share the loaded base).
    assert hits(client, MODEL) == base

    client.models.delete(name)
    assert name not in {m.id for m in client.models.list().data}
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )


def corral_cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", "fine-tune", *args, "--url", server.url + "/v1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_follows_a_job_and_draws_its_loss_curve(
    ft_client: openai.OpenAI, server: LiveServer, tmp_path: Path
) -> None:
    done = [j for j in ft_client.fine_tuning.jobs.list() if j.status == "succeeded"]
    assert done, "runs after test_fine_tune_learns_the_format"
    plot = tmp_path / "loss.png"
    out = corral_cli(server, "follow", done[0].id, "--plot", str(plot))
    assert out.returncode == 0, out.stderr
    assert f"{done[0].id}: succeeded" in out.stdout
    assert f"model: {done[0].fine_tuned_model}" in out.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    out = corral_cli(server, "create", str(bad), "--model", MODEL)
    assert out.returncode == 1
    assert "line 1: no assistant message" in out.stderr


BAD_FILES = [
    (
        jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "k"},
                    ]
                }
            ]
        )
        + b"{not json\n",
        "line 2: invalid JSON",
    ),
    (
        jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": "hi"},
                        {"role": "assistant", "content": "x"},
                    ]
                },
                {"messages": [{"role": "user", "content": "hi"}]},
            ]
        ),
        "line 2: no assistant message",
    ),
    (
        jsonl(
            [
                {
                    "messages": [
                        {"role": "wizard", "content": "hi"},
                        {"role": "assistant", "content": "x"},
                    ]
                }
            ]
        ),
        "line 1: unknown role `wizard` in messages[0]",
    ),
    (
        b"\n"
        + jsonl(
            [
                {
                    "messages": [
                        {"role": "user", "content": "word " * 3000},
                        {"role": "assistant", "content": "x"},
                    ]
                }
            ]
        ),
        "line 2: the example is",
    ),
    (jsonl([{"prompt": "old format", "completion": "x"}]), "line 1: missing `messages`"),
]


@pytest.mark.parametrize(("data", "expected"), BAD_FILES)
def test_bad_files_fail_validation_naming_the_line(
    ft_client: openai.OpenAI, data: bytes, expected: str
) -> None:
    upload = ft_client.files.create(file=("bad.jsonl", io.BytesIO(data)), purpose="fine-tune")
    job = ft_client.fine_tuning.jobs.create(model=MODEL, training_file=upload.id)
    job = wait_for(ft_client, job.id, {"failed", "queued", "running", "succeeded"}, timeout=60)
    assert job.status == "failed"
    assert job.error is not None and expected in job.error.message, job.error
    assert job.error.param == "training_file"


def test_job_requests_are_checked(ft_client: openai.OpenAI) -> None:
    upload = ft_client.files.create(
        file=("ok.jsonl", io.BytesIO(training_bytes())), purpose="user_data"
    )
    with pytest.raises(openai.BadRequestError, match="purpose"):
        ft_client.fine_tuning.jobs.create(model=MODEL, training_file=upload.id)
    with pytest.raises(openai.BadRequestError, match="file-nope"):
        ft_client.fine_tuning.jobs.create(model=MODEL, training_file="file-nope")
    with pytest.raises(openai.NotFoundError):
        ft_client.fine_tuning.jobs.create(model="no-such-model", training_file=upload.id)
    with pytest.raises(openai.BadRequestError):
        ft_client.fine_tuning.jobs.create(
            model=MODEL, training_file=upload.id, hyperparameters={"n_epochs": 0}
        )
    with pytest.raises(openai.NotFoundError):
        ft_client.fine_tuning.jobs.retrieve("ftjob-nope")
    page = ft_client.fine_tuning.jobs.list(limit=1)
    assert len(page.data) <= 1


def test_cancel_mid_training(ft_client: openai.OpenAI) -> None:
    upload = ft_client.files.create(
        file=("c.jsonl", io.BytesIO(training_bytes())), purpose="fine-tune"
    )
    job = ft_client.fine_tuning.jobs.create(
        model=MODEL,
        training_file=upload.id,
        hyperparameters={"n_epochs": 20, "batch_size": 1},
    )
    wait_for(ft_client, job.id, {"running"})
    wait_for_step(ft_client, job.id, 1)
    cancelled = ft_client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    time.sleep(3)  # the worker stops at its next step and never overwrites the state
    after = ft_client.fine_tuning.jobs.retrieve(job.id)
    assert after.status == "cancelled" and after.fine_tuned_model is None
    with pytest.raises(openai.ConflictError):
        ft_client.fine_tuning.jobs.cancel(job.id)
    messages = [e.message for e in ft_client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert "Job cancelled" in messages
    steps_then = [m for m in messages if m.startswith("Step ")]
    time.sleep(2)
    messages = [e.message for e in ft_client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert len([m for m in messages if m.startswith("Step ")]) <= len(steps_then) + 1


def worker_pid(data_dir: Path, job_id: str) -> int:
    with sqlite3.connect(data_dir / "corral.db") as db:
        (worker,) = db.execute(
            "select worker from fine_tuning_jobs where id = ?", (job_id,)
        ).fetchone()
    return int(worker.rpartition(":")[2])


def test_killed_mid_job_then_restarted_finishes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"CORRAL_FINE_TUNING__CHECKPOINT_EVERY": "2"}
    server = LiveServer(data_dir, env=env)
    try:
        server.wait_ready()
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        upload = client.files.create(
            file=("k.jsonl", io.BytesIO(training_bytes(8))), purpose="fine-tune"
        )
        job = client.fine_tuning.jobs.create(
            model=MODEL, training_file=upload.id, hyperparameters={"n_epochs": 1, "batch_size": 1}
        )
        wait_for(client, job.id, {"running"})
        wait_for_step(client, job.id, 2)
        # corral dies at once: the API process and the worker, no chance to clean up.
        os.kill(worker_pid(data_dir, job.id), signal.SIGKILL)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
    finally:
        server.stop()
    server = LiveServer(data_dir, env=env)
    try:
        server.wait_ready()
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        final = wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
        assert final.status in ("succeeded", "failed")
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
        assert any("interrupted" in m for m in messages), messages
        if final.status == "succeeded":
            steps = [
                e.data["step"]
                for e in client.fine_tuning.jobs.list_events(job.id, limit=100)
                if e.type == "metrics" and e.data
            ]  # type: ignore[index]
            assert max(steps) == 8  # 8 examples, one a step
            # resumed from the checkpoint, not from step 1 again
            assert steps.count(1) == 1
    finally:
        server.stop()
