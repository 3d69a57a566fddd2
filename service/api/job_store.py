"""Persistent screening-job records: stdlib sqlite3, one file next to the MLflow store.

Records survive a server restart. A job that was queued or running when the server stopped is marked
``interrupted`` at the next start-up (its finished chunks stay on disk). Job ids are server-generated UUID4
strings; nothing a client sends is ever used to build a path.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from service.sqlite_store import SqliteStore


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class JobRecord:
    id: str
    status: JobStatus
    spec: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress_done: int
    progress_total: int
    error: str
    top_k: list[dict[str, Any]]
    counts: dict[str, int]
    cancel_requested: bool


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress_done INTEGER NOT NULL DEFAULT 0,
    progress_total INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    top_k_json TEXT NOT NULL DEFAULT '[]',
    counts_json TEXT NOT NULL DEFAULT '{}',
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
"""


def new_job_id() -> str:
    return str(uuid.uuid4())


def is_job_id(text: str) -> bool:
    """True only for the canonical lower-case UUID4 strings this server generates."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return False
    return str(parsed) == text and parsed.version == 4


class UnknownJobError(KeyError):
    """No job with this id."""


class JobStore(SqliteStore):
    """Thread-safe access to the jobs table (one connection guarded by a lock; WAL journal)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA, busy_timeout_s=5.0)

    def create(self, spec: Mapping[str, Any], progress_total: int) -> JobRecord:
        job_id = new_job_id()
        with self._tx() as c:
            c.execute(
                "INSERT INTO jobs (id, status, spec_json, created_at, progress_total) VALUES (?, ?, ?, ?, ?)",
                (job_id, JobStatus.QUEUED.value, json.dumps(dict(spec)), time.time(), progress_total),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(job_id)
        return _record(row)

    def recent(self, limit: int = 100) -> list[JobRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_record(r) for r in rows]

    def mark_running(self, job_id: str) -> bool:
        """queued -> running; False when the job was cancelled before it started."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE jobs SET status = ?, started_at = ? WHERE id = ? AND status = ?",
                (JobStatus.RUNNING.value, time.time(), job_id, JobStatus.QUEUED.value),
            )
        return cur.rowcount == 1

    def update_progress(
        self, job_id: str, done: int, total: int, top_k: list[dict[str, Any]] | None = None
    ) -> None:
        with self._tx() as c:
            if top_k is None:
                c.execute(
                    "UPDATE jobs SET progress_done = ?, progress_total = ? WHERE id = ?",
                    (done, total, job_id),
                )
            else:
                c.execute(
                    "UPDATE jobs SET progress_done = ?, progress_total = ?, top_k_json = ? WHERE id = ?",
                    (done, total, json.dumps(top_k), job_id),
                )

    def finish(
        self,
        job_id: str,
        status: JobStatus,
        *,
        error: str = "",
        top_k: list[dict[str, Any]] | None = None,
        counts: Mapping[str, int] | None = None,
    ) -> None:
        """Move a queued/running job to a final status (a job already finished is left as it is)."""
        if not status.finished:
            raise ValueError(f"{status} is not a final status")
        sets = ["status = ?", "finished_at = ?", "error = ?"]
        args: list[Any] = [status.value, time.time(), error]
        if top_k is not None:
            sets.append("top_k_json = ?")
            args.append(json.dumps(top_k))
        if counts is not None:
            sets.append("counts_json = ?")
            args.append(json.dumps(dict(counts)))
        with self._tx() as c:
            c.execute(
                f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND status IN (?, ?)",
                (*args, job_id, JobStatus.QUEUED.value, JobStatus.RUNNING.value),
            )

    def request_cancel(self, job_id: str) -> JobRecord:
        """Flag a job for cancellation; a queued job is cancelled at once. Unknown id -> UnknownJobError."""
        with self._tx() as c:
            row = c.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJobError(job_id)
            if row["status"] == JobStatus.QUEUED.value:
                c.execute(
                    "UPDATE jobs SET status = ?, finished_at = ?, cancel_requested = 1, error = ? "
                    "WHERE id = ?",
                    (JobStatus.CANCELLED.value, time.time(), "cancelled before it started", job_id),
                )
            elif row["status"] == JobStatus.RUNNING.value:
                c.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
        return self.get(job_id)

    def requeue_interrupted(self, job_id: str) -> JobRecord | None:
        """interrupted -> queued (its finished chunks are reused); None when the job is not interrupted.
        Unknown id -> UnknownJobError."""
        with self._tx() as c:
            row = c.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJobError(job_id)
            if row["status"] != JobStatus.INTERRUPTED.value:
                return None
            c.execute(
                "UPDATE jobs SET status = ?, finished_at = NULL, error = '', cancel_requested = 0 "
                "WHERE id = ?",
                (JobStatus.QUEUED.value, job_id),
            )
        return self.get(job_id)

    def mark_interrupted(self) -> list[str]:
        """At start-up: every queued/running job belonged to a previous process; mark it interrupted."""
        with self._tx() as c:
            ids = [
                r["id"]
                for r in c.execute(
                    "SELECT id FROM jobs WHERE status IN (?, ?)",
                    (JobStatus.QUEUED.value, JobStatus.RUNNING.value),
                ).fetchall()
            ]
            c.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE status IN (?, ?)",
                (
                    JobStatus.INTERRUPTED.value,
                    time.time(),
                    "the server stopped while this job was queued or running; POST .../resume to finish it",
                    JobStatus.QUEUED.value,
                    JobStatus.RUNNING.value,
                ),
            )
        return ids


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        status=JobStatus(row["status"]),
        spec=json.loads(row["spec_json"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        progress_done=row["progress_done"],
        progress_total=row["progress_total"],
        error=row["error"],
        top_k=json.loads(row["top_k_json"]),
        counts=json.loads(row["counts_json"]),
        cancel_requested=bool(row["cancel_requested"]),
    )
