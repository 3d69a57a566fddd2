"""Screening jobs: submit a spec, poll status/progress/top-k, download the ranked table, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query, status
from fastapi.responses import FileResponse

from service.api.deps import ApiKeyDep, JobManagerDep, JobStoreDep, SettingsDep
from service.api.job_store import JobRecord, JobStatus, JobStore, UnknownJobError
from service.api.schemas.common import ERROR_RESPONSES
from service.api.schemas.jobs import SPEC_EXAMPLE, JobList, JobResponse
from service.api.screen_job import SpecRejected, validate_spec

router = APIRouter(prefix="/screening-jobs", tags=["screening jobs"])
BASE = "/v1/screening-jobs"

_MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No job with this id"}}


def _get(store: JobStore, job_id: uuid.UUID) -> JobRecord:
    try:
        return store.get(str(job_id))
    except UnknownJobError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no screening job {job_id}") from None


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobResponse,
    dependencies=[ApiKeyDep],
    responses={
        **ERROR_RESPONSES,
        401: {"description": "X-API-Key missing or wrong (when configured)"},
        503: {"description": "No model is loaded for a target the spec needs"},
    },
    summary="Submit a screening spec; it runs in the background",
)
def submit_job(
    manager: JobManagerDep,
    settings: SettingsDep,
    spec: Annotated[
        dict[str, Any],
        Body(
            description="A screening spec, the same mapping a spec file holds",
            openapi_examples={"NASICON Zr site": {"value": SPEC_EXAMPLE}},
        ),
    ],
) -> JobResponse:
    try:
        n_candidates = validate_spec(spec, settings, manager.predictors)
    except SpecRejected as exc:
        raise HTTPException(exc.status_code, exc.detail) from None
    record = manager.submit(spec, n_candidates)
    return JobResponse.from_record(record, BASE)


@router.post(
    "/{job_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobResponse,
    dependencies=[ApiKeyDep],
    responses={**_NOT_FOUND, 409: {"description": "The job is not interrupted"}},
    summary="Resume a job a server restart interrupted, reusing its finished chunks",
)
def resume_job(job_id: uuid.UUID, manager: JobManagerDep) -> JobResponse:
    try:
        record = manager.resume(str(job_id))
    except UnknownJobError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no screening job {job_id}") from None
    if record is None:
        current = manager.store.get(str(job_id))
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"screening job {job_id} is {current.status.value}, not interrupted"
        )
    return JobResponse.from_record(record, BASE)


@router.get("", response_model=JobList, summary="Most recent screening jobs")
def list_jobs(store: JobStoreDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> JobList:
    return JobList(jobs=[JobResponse.from_record(r, BASE) for r in store.recent(limit)])


@router.get(
    "/{job_id}", response_model=JobResponse, responses=_NOT_FOUND, summary="Status, progress and top-k so far"
)
def get_job(job_id: uuid.UUID, store: JobStoreDep) -> JobResponse:
    return JobResponse.from_record(_get(store, job_id), BASE)


@router.get(
    "/{job_id}/results",
    response_class=FileResponse,
    responses={
        **_NOT_FOUND,
        200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}},
        409: {"description": "The job has not succeeded (yet)"},
    },
    summary="The ranked table of a finished job (CSV or Parquet)",
)
def get_results(
    job_id: uuid.UUID,
    store: JobStoreDep,
    manager: JobManagerDep,
    format: Annotated[Literal["csv", "parquet"], Query(description="Table format")] = "csv",
) -> FileResponse:
    record = _get(store, job_id)
    if record.status is not JobStatus.SUCCEEDED:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"job {record.id} is {record.status.value}: results exist once it has succeeded",
        )
    path = manager.result_file(record.id, format)
    if not path.is_file():
        raise HTTPException(status.HTTP_410_GONE, f"the results of job {record.id} were removed")
    return FileResponse(path, media_type=_MEDIA[format], filename=f"screen-{record.id}.{format}")


@router.delete(
    "/{job_id}",
    response_model=JobResponse,
    dependencies=[ApiKeyDep],
    responses={
        **_NOT_FOUND,
        401: {"description": "X-API-Key missing or wrong"},
        409: {"description": "The job already finished"},
    },
    summary="Cancel a queued or running job",
)
def cancel_job(job_id: uuid.UUID, store: JobStoreDep, manager: JobManagerDep) -> JobResponse:
    record = _get(store, job_id)
    if record.status.finished and record.status is not JobStatus.CANCELLED:
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {record.id} already {record.status.value}")
    return JobResponse.from_record(manager.cancel(record.id), BASE)
