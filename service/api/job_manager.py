"""Runs screening jobs in the background (a small thread pool) and keeps their records current.

Each job runs the screening runner (H5b) into a server-owned directory ``<results_dir>/<job id>/`` on Ray
(default) or in-process (``job_executor="local"``). Progress and a top-k of the chunks finished so far are
written to the job store after every chunk; a cancel request stops the job at its next chunk boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from models.predictor import PredictorLike
from models.targets import TargetName
from service.api.compute import SingleThreadedCompute
from service.api.job_store import JobRecord, JobStatus, JobStore, is_job_id
from service.api.settings import ApiSettings

logger = logging.getLogger(__name__)

RESULT_FILES = {"parquet": "ranked.parquet", "csv": "ranked.csv"}
_TOP_K_INTERVAL_S = 2.0


class JobCancelled(Exception):
    """Raised inside a job (from its progress callback) when a cancel was requested or the server stops."""


class JobManager:
    def __init__(
        self,
        store: JobStore,
        settings: ApiSettings,
        predictors: Mapping[TargetName, PredictorLike],
        compute: SingleThreadedCompute | None = None,
    ) -> None:
        self.compute = compute
        self.store = store
        self.settings = settings
        self.predictors = dict(predictors)
        # Ray jobs run one at a time: each holds the (embedded) Ray session for its duration.
        workers = 1 if settings.job_executor == "ray" else settings.job_workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nascreen-job")
        self._events: dict[str, threading.Event] = {}
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._stopping = False

    # -- paths -------------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        """The job's output directory; the id must be a server-generated UUID (never a client path)."""
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.settings.resolved_results_dir / job_id

    def result_file(self, job_id: str, fmt: str) -> Path:
        return self.job_dir(job_id) / RESULT_FILES[fmt]

    # -- lifecycle ---------------------------------------------------------------------------------
    def submit(self, spec: Mapping[str, Any], n_candidates: int) -> JobRecord:
        if self._stopping:
            raise RuntimeError("the server is shutting down")
        record = self.store.create(spec, n_candidates)
        self._enqueue(record, resume=False)
        logger.info("job %s queued (%d candidates)", record.id, n_candidates)
        return record

    def resume(self, job_id: str) -> JobRecord | None:
        """Queue an interrupted job again; its verified finished chunks are reused (None: not interrupted)."""
        if self._stopping:
            raise RuntimeError("the server is shutting down")
        record = self.store.requeue_interrupted(job_id)
        if record is not None:
            self._enqueue(record, resume=True)
            logger.info("job %s queued again to resume from its finished chunks", job_id)
        return record

    def _enqueue(self, record: JobRecord, *, resume: bool) -> None:
        event = threading.Event()
        with self._lock:
            self._events[record.id] = event
            self._futures[record.id] = self._pool.submit(
                self._run, record.id, dict(record.spec), event, resume
            )

    def cancel(self, job_id: str) -> JobRecord:
        record = self.store.request_cancel(job_id)
        with self._lock:
            event = self._events.get(job_id)
        if event is not None:
            event.set()
        return record

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until a job submitted by this manager has finished (tests, CLI)."""
        with self._lock:
            future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout=timeout)

    def shutdown(self) -> None:
        """Stop running jobs at their next chunk (they become `interrupted`), drop queued ones."""
        self._stopping = True
        with self._lock:
            for event in self._events.values():
                event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.store.mark_interrupted()

    # -- the job -----------------------------------------------------------------------------------
    def _run(self, job_id: str, spec: dict[str, Any], cancel: threading.Event, resume: bool = False) -> None:
        if not self.store.mark_running(job_id):
            return  # cancelled while queued
        started = time.perf_counter()
        try:
            from service.api.screen_job import run_screen_job

            # in-process jobs compute single-threaded beside the requests (Ray workers set their own limits)
            limit = self.compute() if self.compute is not None else nullcontext()
            with limit:
                outcome = run_screen_job(
                    spec,
                    self.job_dir(job_id),
                    predictors=self.predictors,
                    settings=self.settings,
                    on_progress=lambda done, total, top_k: self._progress(job_id, cancel, done, total, top_k),
                    resume=resume,
                )
        except JobCancelled:
            status = JobStatus.INTERRUPTED if self._stopping else JobStatus.CANCELLED
            reason = "the server stopped during the job" if self._stopping else "cancelled by request"
            self.store.finish(job_id, status, error=reason)
            logger.info("job %s %s", job_id, status.value)
        except Exception as exc:  # a failed job is recorded with its reason; the server goes on
            logger.exception("job %s failed", job_id)
            self.store.finish(job_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        else:
            self.store.finish(job_id, JobStatus.SUCCEEDED, top_k=outcome.top_k, counts=outcome.counts)
            logger.info("job %s succeeded in %.1f s", job_id, time.perf_counter() - started)
        finally:
            with self._lock:
                self._events.pop(job_id, None)

    def _progress(
        self,
        job_id: str,
        cancel: threading.Event,
        done: int,
        total: int,
        top_k: list[dict[str, Any]] | None,
    ) -> None:
        self.store.update_progress(job_id, done, total, top_k)
        # the store's flag too: with several server workers the cancel request may reach another process
        if cancel.is_set() or self.store.get(job_id).cancel_requested:
            raise JobCancelled(job_id)
