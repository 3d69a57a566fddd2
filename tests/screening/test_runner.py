"""The chunk loop: resume computes only the missing chunks, failures are retried then reported."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from chunk_scorers import ArithmeticFactory, ArithmeticScorer, arithmetic_chunk

from screening.chunks import ChunkRange, plan_chunks
from screening.runner import LocalExecutor, Progress, run_chunks, score_with_retry
from screening.store import ChunkStore, Manifest

MANIFEST = Manifest(
    spec_hash="f" * 64, model_versions={"average_voltage": "1"}, chunk_size=10, n_candidates=95
)


class _Interrupt(Exception):
    pass


class _InterruptAfter:
    """Executor wrapper that stops the screen (like Ctrl-C) after k chunks were stored."""

    def __init__(self, k: int) -> None:
        self.k = k

    def run(self, factory, chunks: Sequence[ChunkRange], max_attempts: int):  # type: ignore[no-untyped-def]
        for i, outcome in enumerate(LocalExecutor().run(factory, chunks, max_attempts)):
            if i == self.k:
                raise _Interrupt
            yield outcome


def test_interrupted_screen_resumes_computing_only_the_rest(tmp_path: Path) -> None:
    chunks = plan_chunks(95, 10)
    calls = tmp_path / "calls.txt"
    factory = ArithmeticFactory(calls_file=calls)
    store = ChunkStore(tmp_path / "out")
    with pytest.raises(_Interrupt):
        run_chunks(chunks, factory, _InterruptAfter(4), store, reusable=store.open(MANIFEST, resume=True))
    assert store.completed() == {0, 1, 2, 3}

    calls.unlink()
    store = ChunkStore(tmp_path / "out")
    events: list[Progress] = []
    report = run_chunks(
        chunks,
        factory,
        LocalExecutor(),
        store,
        reusable=store.open(MANIFEST, resume=True),
        progress=events.append,
    )
    computed_starts = sorted(int(line.split(",")[0]) for line in calls.read_text().split())
    assert computed_starts == [40, 50, 60, 70, 80, 90]  # only the chunks that were not finished
    assert report.reused == [0, 1, 2, 3]
    assert report.computed == [4, 5, 6, 7, 8, 9]
    assert events[0].candidates_done == 40 and events[0].chunks_reused == 4
    assert events[-1] == Progress(95, 95, 10, 10, 0, 4)
    # the resumed result is exactly the uninterrupted one
    expected = pd.concat([arithmetic_chunk(c.start, c.stop).scored for c in chunks], ignore_index=True)
    pd.testing.assert_frame_equal(store.read("scored"), expected)


def test_a_failing_chunk_is_retried_and_the_reason_logged(caplog: pytest.LogCaptureFixture) -> None:
    scorer = ArithmeticScorer(fail_starts=(10,), failures_per_start=2)
    outcome = score_with_retry(scorer, ChunkRange(1, 10, 20), max_attempts=3)
    assert outcome.ok and outcome.attempts == 3
    assert len(outcome.errors) == 2
    assert scorer.calls == [(10, 20)] * 3
    assert "simulated worker failure on chunk starting at 10" in caplog.text
    assert "attempt 2/3" in caplog.text


def test_a_chunk_that_keeps_failing_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    chunks = plan_chunks(95, 10)
    factory = ArithmeticFactory(fail_starts=(30,), failures_per_start=99)
    store = ChunkStore(tmp_path)
    report = run_chunks(chunks, factory, LocalExecutor(), store, reusable=store.open(MANIFEST, resume=True))
    assert [f.chunk.index for f in report.failed] == [3]
    assert report.failed[0].attempts == 3
    assert "RuntimeError: simulated worker failure" in report.failed[0].error
    assert report.n_failed_candidates == 10
    assert store.completed() == set(range(10)) - {3}
    # the next resume computes only the failed chunk
    calls = tmp_path / "calls.txt"
    again = run_chunks(
        chunks, ArithmeticFactory(calls_file=calls), LocalExecutor(), store, reusable=store.completed()
    )
    assert again.computed == [3] and not again.failed
    assert calls.read_text().split() == ["30,40"]


def test_local_executor_builds_the_scorer_once(tmp_path: Path) -> None:
    inits = tmp_path / "inits.txt"
    outcomes = list(LocalExecutor().run(ArithmeticFactory(inits_file=inits), plan_chunks(50, 10), 1))
    assert [o.chunk.index for o in outcomes] == [0, 1, 2, 3, 4]
    assert inits.read_text().split() == ["init"]
