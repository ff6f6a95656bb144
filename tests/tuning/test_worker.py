"""The worker's bookkeeping on the database: claim, recover, finish, fail, cancel."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from corral.core.config import FineTuningSettings, Settings
from corral.storage.db import upgrade
from corral.storage.tables import FineTuningEvent, FineTuningJob
from corral.tuning.data import DataError
from corral.tuning.worker import Worker

pytest.importorskip("torch")


@pytest.fixture
def worker(tmp_path: Path) -> Worker:
    settings = Settings(data_dir=tmp_path, fine_tuning=FineTuningSettings(max_attempts=2))
    upgrade(settings.db_url)
    return Worker(settings)


def add_job(w: Worker, job_id: str, **values: Any) -> None:
    row = FineTuningJob(
        id=job_id,
        org_id="org-a",
        project_id=None,
        model="base-1",
        base_path="/nowhere.gguf",
        training_file="file-1",
        seed=1,
        hyperparameters={"n_epochs": 1, "batch_size": 1, "learning_rate_multiplier": 1.0},
        status="queued",
        model_deleted=False,
        attempts=0,
        created_at=datetime.now(UTC),
        suffix="s",
    )
    for key, value in values.items():
        setattr(row, key, value)
    with Session(w.engine) as s, s.begin():
        s.add(row)


def job(worker: Worker, job_id: str) -> FineTuningJob:
    with Session(worker.engine) as s:
        row = s.get(FineTuningJob, job_id)
        assert row is not None
        s.expunge(row)
        return row


def messages(worker: Worker, job_id: str) -> list[str]:
    with Session(worker.engine) as s:
        return list(
            s.scalars(select(FineTuningEvent.message).where(FineTuningEvent.job_id == job_id))
        )


def test_claims_oldest_queued_once(worker: Worker) -> None:
    add_job(worker, "ftjob-a")
    assert worker.claim() == "ftjob-a"
    assert worker.claim() is None
    row = job(worker, "ftjob-a")
    assert row.status == "running" and row.attempts == 1 and row.worker == worker.me


def test_a_dead_workers_job_is_requeued_then_failed(worker: Worker) -> None:
    dead = f"{socket.gethostname()}:999999999"
    add_job(worker, "ftjob-b", status="running", worker=dead, attempts=1)
    worker.recover()
    assert job(worker, "ftjob-b").status == "queued"
    assert any("interrupted" in m for m in messages(worker, "ftjob-b"))
    add_job(worker, "ftjob-c", status="running", worker=dead, attempts=2)
    worker.recover()
    row = job(worker, "ftjob-c")
    assert row.status == "failed" and row.error is not None
    assert row.error["code"] == "training_interrupted"
    add_job(worker, "ftjob-d", status="running", worker=worker.me, attempts=1)
    worker.recover()  # its own job: left alone
    assert job(worker, "ftjob-d").status == "running"


def test_run_job_outcomes(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    add_job(worker, "ftjob-ok")
    assert worker.claim() == "ftjob-ok"
    result = SimpleNamespace(adapter=Path("/a.gguf"), trained_tokens=42)
    monkeypatch.setattr(Worker, "_train", lambda self, j: result)
    worker.run_job("ftjob-ok")
    row = job(worker, "ftjob-ok")
    assert row.status == "succeeded" and row.trained_tokens == 42
    assert row.fine_tuned_model == "ft:base-1:org-a:s:ftjob-ok"

    add_job(worker, "ftjob-bad")
    assert worker.claim() == "ftjob-bad"

    def bad(self: Worker, j: Any) -> Any:
        raise DataError(3, "no assistant message: nothing to learn")

    monkeypatch.setattr(Worker, "_train", bad)
    worker.run_job("ftjob-bad")
    row = job(worker, "ftjob-bad")
    assert row.status == "failed" and row.error is not None
    assert "line 3: no assistant message" in row.error["message"]

    add_job(worker, "ftjob-x")
    assert worker.claim() == "ftjob-x"

    def cancelled_meanwhile(self: Worker, j: Any) -> Any:
        with Session(self.engine) as s, s.begin():
            s.get(FineTuningJob, "ftjob-x").status = "cancelled"  # type: ignore[union-attr]
        return result

    monkeypatch.setattr(Worker, "_train", cancelled_meanwhile)
    worker.run_job("ftjob-x")
    row = job(worker, "ftjob-x")
    assert row.status == "cancelled" and row.fine_tuned_model is None
