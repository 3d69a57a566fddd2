"""Screening jobs: POST /v1/screening-jobs (a screening spec), GET status/results, DELETE to cancel."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from service.api.job_store import JobRecord, JobStatus

# The body of POST /v1/screening-jobs is a screening spec, exactly the mapping a spec file holds.
SPEC_EXAMPLE: dict[str, Any] = {
    "name": "nasicon-zr-site",
    "family": "nasicon",
    "host": "Na3Zr2Si2PO12",
    "site": "Zr",
    "dopants": ["Hf", "Ti", "Sn", "Ge"],
    "fractions": [0.05, 0.1, 0.2],
}


class JobProgress(BaseModel):
    done: int = Field(description="Candidates processed so far")
    total: int = Field(description="Candidates in the screen")
    fraction: float = Field(description="done / total (1.0 for an empty screen)")


class JobResponse(BaseModel):
    id: str = Field(description="Server-generated UUID")
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: JobProgress
    top_k: list[dict[str, Any]] = Field(
        description="Best candidates so far (final ranking once succeeded), ranked by the spec's objective"
    )
    counts: dict[str, int] = Field(default_factory=dict, description="generated / rejected / scored / ...")
    error: str | None = Field(default=None, description="Why the job failed, was cancelled or interrupted")
    results: dict[str, str] = Field(default_factory=dict, description="Download links once succeeded")

    @classmethod
    def from_record(cls, record: JobRecord, base_path: str) -> JobResponse:
        total = record.progress_total
        results = (
            {fmt: f"{base_path}/{record.id}/results?format={fmt}" for fmt in ("csv", "parquet")}
            if record.status is JobStatus.SUCCEEDED
            else {}
        )
        return cls(
            id=record.id,
            status=record.status,
            created_at=_ts(record.created_at),
            started_at=_ts(record.started_at) if record.started_at else None,
            finished_at=_ts(record.finished_at) if record.finished_at else None,
            progress=JobProgress(
                done=record.progress_done,
                total=total,
                fraction=1.0 if total == 0 else min(1.0, record.progress_done / total),
            ),
            top_k=record.top_k,
            counts=record.counts,
            error=record.error or None,
            results=results,
        )


class JobList(BaseModel):
    jobs: list[JobResponse]


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)
