"""The SQLite job store: persistence across re-opening, status transitions, interrupted jobs."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from service.api.job_store import JobStatus, JobStore, UnknownJobError, is_job_id


def test_records_survive_reopening(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    store = JobStore(db)
    job = store.create({"name": "s", "host": "Na3Zr2Si2PO12"}, progress_total=12)
    store.mark_running(job.id)
    store.update_progress(job.id, 6, 12, top_k=[{"formula": "Na3Zr2Si2PO12", "rank": 1}])
    store.finish(job.id, JobStatus.SUCCEEDED, top_k=[{"rank": 1}], counts={"scored": 12})
    store.close()

    again = JobStore(db).get(job.id)
    assert again.status is JobStatus.SUCCEEDED
    assert again.spec == {"name": "s", "host": "Na3Zr2Si2PO12"}
    assert (again.progress_done, again.progress_total) == (6, 12)
    assert again.top_k == [{"rank": 1}]
    assert again.counts == {"scored": 12}
    assert again.finished_at is not None and again.started_at is not None


def test_running_and_queued_jobs_become_interrupted_at_restart(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    store = JobStore(db)
    running = store.create({}, 10)
    store.mark_running(running.id)
    queued = store.create({}, 10)
    done = store.create({}, 10)
    store.mark_running(done.id)
    store.finish(done.id, JobStatus.SUCCEEDED)
    store.close()

    restarted = JobStore(db)
    assert sorted(restarted.mark_interrupted()) == sorted([running.id, queued.id])
    assert restarted.get(running.id).status is JobStatus.INTERRUPTED
    assert "server stopped" in restarted.get(running.id).error
    assert restarted.get(queued.id).status is JobStatus.INTERRUPTED
    assert restarted.get(done.id).status is JobStatus.SUCCEEDED


def test_cancel_queued_is_immediate_running_is_flagged(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    queued = store.create({}, 1)
    assert store.request_cancel(queued.id).status is JobStatus.CANCELLED
    assert not store.mark_running(queued.id), "a cancelled job must not start"

    running = store.create({}, 1)
    store.mark_running(running.id)
    flagged = store.request_cancel(running.id)
    assert flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    store.finish(running.id, JobStatus.CANCELLED, error="cancelled by request")
    # a final status is never overwritten
    store.finish(running.id, JobStatus.SUCCEEDED)
    assert store.get(running.id).status is JobStatus.CANCELLED


def test_unknown_id_and_id_format(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    with pytest.raises(UnknownJobError):
        store.get(str(uuid.uuid4()))
    with pytest.raises(UnknownJobError):
        store.request_cancel(str(uuid.uuid4()))
    job = store.create({}, 0)
    assert is_job_id(job.id)
    assert not is_job_id("../../etc/passwd")
    assert not is_job_id(job.id.upper())
    assert not is_job_id(str(uuid.uuid1()))
    with pytest.raises(ValueError, match="final status"):
        store.finish(job.id, JobStatus.RUNNING)


def test_recent_lists_newest_first(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.db")
    ids = [store.create({"i": i}, 0).id for i in range(3)]
    assert [r.id for r in store.recent(2)] == ids[::-1][:2]
