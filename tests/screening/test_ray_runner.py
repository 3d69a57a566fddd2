"""The Ray executor against a real local Ray (2 CPUs, 127.0.0.1): equality with the single-process run,
models built once per worker, retries, failures reported, and the embedded session settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from chunk_scorers import ArithmeticFactory, recorded_calls

from screening.chunks import plan_chunks
from screening.runner import LocalExecutor, run_chunks
from screening.store import ChunkStore, Manifest

pytestmark = pytest.mark.ray

MANIFEST = Manifest(spec_hash="e" * 64, model_versions={}, chunk_size=50, n_candidates=1000)


def _run(executor: Any, out: Path, factory: ArithmeticFactory) -> tuple[ChunkStore, Any]:
    store = ChunkStore(out)
    report = run_chunks(
        plan_chunks(1000, 50), factory, executor, store, reusable=store.open(MANIFEST, resume=True)
    )
    return store, report


def test_ray_run_equals_single_process_run(ray_local: dict, tmp_path: Path) -> None:
    from screening.ray_runner import RayExecutor

    inits = tmp_path / "inits.txt"
    calls = tmp_path / "calls.txt"
    ray_store, ray_report = _run(RayExecutor(), tmp_path / "ray", ArithmeticFactory(inits, calls))
    local_store, _ = _run(LocalExecutor(), tmp_path / "local", ArithmeticFactory())
    assert ray_report.computed == list(range(20)) and not ray_report.failed
    for kind in ("scored", "rejected"):
        pd.testing.assert_frame_equal(ray_store.read(kind), local_store.read(kind))
    # one scorer (model load) per screen, built in the driver and shared; every chunk scored exactly once
    assert len(inits.read_text().split()) == 1
    assert sorted(recorded_calls(calls)) == [(c.start, c.stop) for c in plan_chunks(1000, 50)]


def test_ray_workers_can_build_their_own_scorer_once_each(ray_local: dict, tmp_path: Path) -> None:
    from screening.ray_runner import RayExecutor

    inits = tmp_path / "inits.txt"
    store, report = _run(RayExecutor(share_scorer=False), tmp_path / "ray", ArithmeticFactory(inits))
    local_store, _ = _run(LocalExecutor(), tmp_path / "local", ArithmeticFactory())
    assert report.computed == list(range(20)) and not report.failed
    pd.testing.assert_frame_equal(store.read("scored"), local_store.read("scored"), check_exact=True)
    assert len(inits.read_text().split()) == 2  # one per worker, not per chunk


def test_a_crashed_worker_is_restarted_and_rebuilds_its_scorer(ray_local: dict, tmp_path: Path) -> None:
    from screening.ray_runner import RayExecutor

    inits = tmp_path / "inits.txt"
    marks = tmp_path / "marks"
    marks.mkdir()
    # the worker scoring [300, 350) exits once; Ray restarts it and retries the task, and the restarted
    # actor (which lost the shared scorer) builds its own from the factory
    factory = ArithmeticFactory(inits, failures_dir=marks, crash_start=300)
    store, report = _run(RayExecutor(), tmp_path / "ray", factory)
    local_store, _ = _run(LocalExecutor(), tmp_path / "local", ArithmeticFactory())
    assert (marks / "crashed-300").exists()
    assert report.computed == list(range(20)) and not report.failed
    for kind in ("scored", "rejected"):
        pd.testing.assert_frame_equal(store.read(kind), local_store.read(kind), check_exact=True)
    assert len(inits.read_text().split()) == 2  # the driver's, and the restarted worker's


def test_ray_run_in_sub_ranges_equals_single_process_run(ray_local: dict, tmp_path: Path) -> None:
    from screening.chunks import split_range
    from screening.ray_runner import RayExecutor

    calls = tmp_path / "calls.txt"
    ray_store, ray_report = _run(
        RayExecutor(max_task_size=12), tmp_path / "ray", ArithmeticFactory(calls_file=calls)
    )
    local_store, _ = _run(LocalExecutor(), tmp_path / "local", ArithmeticFactory())
    assert ray_report.computed == list(range(20)) and not ray_report.failed
    for kind in ("scored", "rejected"):
        pd.testing.assert_frame_equal(ray_store.read(kind), local_store.read(kind), check_exact=True)
    # each 50-candidate chunk was scored as 5 sub-ranges of 10, each exactly once
    expected = [r for c in plan_chunks(1000, 50) for r in split_range(c.start, c.stop, 12)]
    assert sorted(recorded_calls(calls)) == expected and len(expected) == 100


def test_ray_sub_range_failures_are_retried_and_reported_per_chunk(ray_local: dict, tmp_path: Path) -> None:
    from screening.ray_runner import RayExecutor

    failures = tmp_path / "failures"
    failures.mkdir()
    # sub-ranges of 25; a start fails until 5 failures are on record for it (3 attempts per sub-range): the
    # second part of chunk 2 (starts at 125, 4 on record) fails once then succeeds; the second part of
    # chunk 6 (starts at 325, 2 on record) fails 3 times, so chunk 6 is reported and its first part dropped
    for n in range(4):
        (failures / f"fail-125-pre{n}").touch()
    for n in range(2):
        (failures / f"fail-325-pre{n}").touch()
    factory = ArithmeticFactory(fail_starts=(125, 325), failures_per_start=5, failures_dir=failures)
    store, report = _run(RayExecutor(max_task_size=25), tmp_path / "flaky", factory)
    assert report.retried == 1
    assert [(f.chunk.index, f.attempts) for f in report.failed] == [(6, 3)]
    assert "simulated worker failure on chunk starting at 325" in report.failed[0].error
    assert store.completed() == set(range(20)) - {6}
    local = _run(LocalExecutor(), tmp_path / "local", ArithmeticFactory())[0]
    scored = store.read("scored")
    pd.testing.assert_frame_equal(
        scored, local.read("scored").query("candidate_id < 300 or candidate_id >= 350").reset_index(drop=True)
    )


def test_ray_retries_a_failing_chunk_then_reports_one_that_keeps_failing(
    ray_local: dict, tmp_path: Path
) -> None:
    from screening.ray_runner import RayExecutor

    failures = tmp_path / "failures"
    failures.mkdir()
    # each chunk fails until 5 failures are on record for it; with 3 attempts per chunk, chunk 2 (4 on
    # record) fails once then succeeds, chunk 6 (2 on record) fails 3 times and is reported.
    for n in range(4):
        (failures / f"fail-100-pre{n}").touch()
    for n in range(2):
        (failures / f"fail-300-pre{n}").touch()
    factory = ArithmeticFactory(fail_starts=(100, 300), failures_per_start=5, failures_dir=failures)
    store, report = _run(RayExecutor(), tmp_path / "flaky", factory)
    assert report.retried == 1
    assert len(list(failures.glob("fail-100-*"))) == 5
    assert [(f.chunk.index, f.attempts) for f in report.failed] == [(6, 3)]
    assert "RuntimeError: simulated worker failure on chunk starting at 300" in report.failed[0].error
    assert len(list(failures.glob("fail-300-*"))) == 5
    assert store.completed() == set(range(20)) - {6}


def test_embedded_session_is_local_and_quiet(ray_local: dict) -> None:
    import ray

    assert ray_local["CPU"] == 2
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    assert ray.get_runtime_context().runtime_env["env_vars"]["OMP_NUM_THREADS"] == "1"
