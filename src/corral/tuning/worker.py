"""The training worker: a process beside the API (``corral worker``, started by
``corral serve``) that trains queued jobs one at a time.

Jobs are claimed from the database with a conditional update, so several workers on a
shared database never take the same job. A job whose worker is gone (killed, crashed,
the machine restarted) is put back in the queue and resumes from its last checkpoint;
after ``max_attempts`` starts it fails with the reason. On SIGTERM (corral stopping, or
the API process dying: the worker asks the kernel for SIGTERM when its parent dies) the
running job is checkpointed back into the queue. No job stays ``running`` forever.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from corral.core.clock import aware, now
from corral.core.config import Settings
from corral.core.ids import new_id
from corral.storage.db import sync_engine
from corral.storage.tables import FineTuningCheckpoint, FineTuningEvent, FineTuningJob
from corral.tuning.data import DataError, read_examples

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=5)  # no heartbeat for that long: the worker is gone


class Interrupted(Exception):
    """The worker is stopping: the job goes back to the queue."""


def rowcount(result: Any) -> int:
    """Rows an UPDATE matched (the sync ``Result`` type hides ``rowcount``)."""
    return int(result.rowcount)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def event(
    job_id: str, message: str, level: str = "info", kind: str = "message", data: Any = None
) -> FineTuningEvent:
    return FineTuningEvent(
        job_id=job_id, created_at=now(), level=level, type=kind, message=message, data=data
    )


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ft = settings.fine_tuning
        self.engine = sync_engine(settings.db_url)
        self.host = socket.gethostname()
        self.me = f"{self.host}:{os.getpid()}"
        self.parent = os.getppid()
        self.stopping = False
        self.root = settings.data_dir / "fine_tuning"

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info("training worker %s started", self.me)
        while not self.stopping:
            if os.getppid() != self.parent:
                log.warning("the API process is gone; the worker stops")
                break
            self.recover()
            job_id = self.claim()
            if job_id is None:
                time.sleep(self.ft.poll_s)
                continue
            self.run_job(job_id)
        self.engine.dispose()

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def session(self) -> Session:
        return Session(self.engine)

    def recover(self) -> None:
        """Running jobs whose worker is gone go back to the queue (or fail, past the limit)."""
        with self.session() as s, s.begin():
            rows = s.scalars(select(FineTuningJob).where(FineTuningJob.status == "running"))
            for row in rows:
                host, _, pid = (row.worker or ":").rpartition(":")
                beat = aware(row.heartbeat_at)
                gone = (host == self.host and pid.isdigit() and not _alive(int(pid))) or (
                    beat is not None and now() - beat > STALE_AFTER
                )
                if not gone or row.worker == self.me:
                    continue
                if row.attempts >= self.ft.max_attempts:
                    reason = (
                        f"Training was interrupted {row.attempts} times (its worker stopped "
                        "without finishing); giving up."
                    )
                    row.status, row.finished_at = "failed", now()
                    row.error = {"code": "training_interrupted", "message": reason, "param": None}
                    s.add(event(row.id, reason, "error"))
                else:
                    row.status = "queued"
                    s.add(
                        event(
                            row.id,
                            f"Training was interrupted (worker {row.worker} is gone); "
                            "the job is queued again and resumes from its last checkpoint.",
                            "warn",
                        )
                    )

    def claim(self) -> str | None:
        with self.session() as s, s.begin():
            job_id = s.scalars(
                select(FineTuningJob.id)
                .where(FineTuningJob.status == "queued")
                .order_by(FineTuningJob.created_at)
                .limit(1)
            ).first()
            if job_id is None:
                return None
            claimed = s.execute(
                update(FineTuningJob)
                .where(FineTuningJob.id == job_id, FineTuningJob.status == "queued")
                .values(
                    status="running",
                    worker=self.me,
                    heartbeat_at=now(),
                    attempts=FineTuningJob.attempts + 1,
                )
            )
            if not rowcount(claimed):
                return None
            s.add(event(job_id, "Fine-tuning job started"))
        return job_id

    # -- one job -------------------------------------------------------------------------

    def _set(self, job_id: str, *, only_if: str = "running", **values: Any) -> bool:
        with self.session() as s, s.begin():
            result = s.execute(
                update(FineTuningJob)
                .where(FineTuningJob.id == job_id, FineTuningJob.status == only_if)
                .values(**values)
            )
            return bool(rowcount(result))

    def _status(self, job_id: str) -> str | None:
        with self.session() as s:
            return s.scalars(select(FineTuningJob.status).where(FineTuningJob.id == job_id)).first()

    def run_job(self, job_id: str) -> None:
        try:
            import numpy  # noqa: F401
            import peft  # noqa: F401
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            self._fail(
                job_id,
                "training_unavailable",
                f"This server cannot train: install the `train` extra "
                f"(pip install 'corral[train]'; `make install` does). {exc}",
            )
            return
        from corral.tuning.lora import Cancelled, ExampleError

        with self.session() as s:
            job = s.get(FineTuningJob, job_id)
            assert job is not None
            s.expunge(job)
        try:
            result = self._train(job)
        except Cancelled:
            log.info("job %s cancelled", job_id)
            return
        except Interrupted:
            with self.session() as s, s.begin():
                s.execute(
                    update(FineTuningJob)
                    .where(FineTuningJob.id == job_id, FineTuningJob.status == "running")
                    .values(status="queued", attempts=FineTuningJob.attempts - 1)
                )
                s.add(event(job_id, "corral stopped: the job is queued again", "warn"))
            return
        except (DataError, ExampleError) as exc:
            self._fail(job_id, "invalid_file", f"Training file is invalid: {exc}")
            return
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._fail(job_id, "training_failed", f"Training failed: {exc}")
            return
        name = f"ft:{job.model}:{job.org_id or 'org-default'}:{job.suffix or ''}:{job.id}"
        with self.session() as s, s.begin():
            done = s.execute(
                update(FineTuningJob)
                .where(FineTuningJob.id == job_id, FineTuningJob.status == "running")
                .values(
                    status="succeeded",
                    finished_at=now(),
                    fine_tuned_model=name,
                    adapter_path=str(result.adapter),
                    trained_tokens=result.trained_tokens,
                    estimated_finish=None,
                )
            )
            if rowcount(done):
                s.add(event(job_id, f"New fine-tuned model created: {name}"))
                s.add(event(job_id, "The job has successfully completed"))

    def _fail(self, job_id: str, code: str, message: str) -> None:
        with self.session() as s, s.begin():
            done = s.execute(
                update(FineTuningJob)
                .where(FineTuningJob.id == job_id, FineTuningJob.status == "running")
                .values(
                    status="failed",
                    finished_at=now(),
                    error={"code": code, "message": message, "param": None},
                )
            )
            if rowcount(done):
                s.add(event(job_id, message, "error"))

    def _train(self, job: FineTuningJob) -> Any:
        from corral.tuning.lora import BaseCache, Cancelled, Hyperparameters, Progress, train

        files = self.settings.files_dir
        train_examples = read_examples(files / job.training_file, self.ft.max_examples)
        valid_examples = (
            read_examples(files / job.validation_file, self.ft.max_examples)
            if job.validation_file
            else []
        )
        hp = job.hyperparameters

        def on_progress(p: Progress) -> None:
            data = {
                "step": p.step,
                "total_steps": p.total_steps,
                "epoch": p.epoch,
                "train_loss": round(p.train_loss, 6),
                "valid_loss": None if p.valid_loss is None else round(p.valid_loss, 6),
                "tokens_per_s": round(p.tokens_per_s, 2),
                "eta_s": round(p.eta_s, 1),
                "trained_tokens": p.trained_tokens,
            }
            message = f"Step {p.step}/{p.total_steps}: training loss={p.train_loss:.4f}"
            if p.valid_loss is not None:
                message += f", validation loss={p.valid_loss:.4f}"
            with self.session() as s, s.begin():
                s.add(event(job.id, message, kind="metrics", data=data))
                if p.checkpoint is not None:
                    s.add(
                        FineTuningCheckpoint(
                            id=new_id("ftckpt"),
                            job_id=job.id,
                            created_at=now(),
                            step=p.step,
                            metrics={
                                "step": p.step,
                                "train_loss": data["train_loss"],
                                "valid_loss": data["valid_loss"],
                                "tokens_per_s": data["tokens_per_s"],
                            },
                        )
                    )
                s.execute(
                    update(FineTuningJob)
                    .where(FineTuningJob.id == job.id, FineTuningJob.status == "running")
                    .values(
                        heartbeat_at=now(),
                        estimated_finish=now() + timedelta(seconds=p.eta_s),
                    )
                )
            if self._status(job.id) == "cancelled":
                raise Cancelled
            if self.stopping or os.getppid() != self.parent:
                raise Interrupted

        return train(
            gguf=Path(job.base_path),
            out_dir=self.root / job.id,
            train_examples=train_examples,
            valid_examples=valid_examples,
            hyper=Hyperparameters(
                n_epochs=int(hp["n_epochs"]),
                batch_size=int(hp["batch_size"]),
                learning_rate_multiplier=float(hp["learning_rate_multiplier"]),
            ),
            seed=job.seed,
            max_tokens=self.ft.max_example_tokens,
            threads=self.ft.threads,
            checkpoint_every=self.ft.checkpoint_every,
            on_progress=on_progress,
            base_cache=BaseCache(
                self.ft.base_cache_dir or self.root / "bases", self.ft.base_cache_mib * 2**20
            ),
        )


def main(settings: Settings) -> None:
    Worker(settings).run()
