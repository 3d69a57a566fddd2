"""Screen orchestration: plan chunks, run them on an executor (single process here, Ray in ray_runner),
persist each finished chunk, resume, and report progress through a callback (the runner prints nothing).

An executor only maps a scorer factory over chunk ranges and yields outcomes as chunks finish; everything
else (which chunks are still to do, persisting, retry accounting, failures) is decided here, identically for
every executor, which is what makes a Ray run equal to a single-process run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from screening.chunks import ChunkOutcome, ChunkRange, ChunkScorer, ScorerFactory
from screening.store import ChunkStore

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 25_000
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Progress:
    """Where a screen stands; sent to the progress callback after every chunk (and once at the start)."""

    candidates_done: int
    candidates_total: int
    chunks_done: int
    chunks_total: int
    chunks_failed: int
    chunks_reused: int


ProgressCallback = Callable[[Progress], None]


class ChunkExecutor(Protocol):
    """Runs ``factory()`` once per worker and the resulting scorer over ``chunks``; yields one outcome per
    chunk as it finishes (any order), after at most ``max_attempts`` attempts each."""

    def run(
        self, factory: ScorerFactory, chunks: Sequence[ChunkRange], max_attempts: int
    ) -> Iterator[ChunkOutcome]: ...


def score_with_retry(scorer: ChunkScorer, chunk: ChunkRange, max_attempts: int) -> ChunkOutcome:
    """Score one chunk, retrying a failure up to ``max_attempts`` attempts in all; each failure is logged
    with its reason, and the last one is returned in the outcome instead of raised."""
    errors: list[str] = []
    for attempt in range(1, max_attempts + 1):
        try:
            return ChunkOutcome(chunk, scorer(chunk.start, chunk.stop), attempts=attempt, errors=errors)
        except Exception as exc:  # a failed chunk must not stop the screen: it is reported instead
            reason = f"{type(exc).__name__}: {exc}"
            errors.append(reason)
            logger.warning(
                "chunk %d [%d, %d) failed (attempt %d/%d): %s",
                chunk.index,
                chunk.start,
                chunk.stop,
                attempt,
                max_attempts,
                reason,
            )
    return ChunkOutcome(chunk, None, error=errors[-1], attempts=max_attempts, errors=errors)


class LocalExecutor:
    """Single process: builds the scorer once and scores the chunks in order."""

    def run(
        self, factory: ScorerFactory, chunks: Sequence[ChunkRange], max_attempts: int
    ) -> Iterator[ChunkOutcome]:
        if not chunks:
            return
        scorer = factory()
        for chunk in chunks:
            yield score_with_retry(scorer, chunk, max_attempts)


@dataclass(frozen=True)
class FailedChunk:
    chunk: ChunkRange
    error: str
    attempts: int


@dataclass
class ExecutionReport:
    """What a run of the chunk loop did."""

    n_chunks: int
    reused: list[int] = field(default_factory=list)
    computed: list[int] = field(default_factory=list)
    failed: list[FailedChunk] = field(default_factory=list)
    retried: int = 0  # chunks that needed more than one attempt but succeeded
    seconds: float = 0.0

    @property
    def n_failed_candidates(self) -> int:
        return sum(f.chunk.size for f in self.failed)


def run_chunks(
    chunks: Sequence[ChunkRange],
    factory: ScorerFactory,
    executor: ChunkExecutor,
    store: ChunkStore,
    *,
    reusable: set[int] | None = None,
    progress: ProgressCallback | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ExecutionReport:
    """Compute every chunk not in ``reusable`` and persist each one as soon as it finishes.

    A chunk that still fails after ``max_attempts`` is recorded in the report (and computed again by the
    next resume); the other chunks go on.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    reusable = reusable or set()
    started = time.perf_counter()
    report = ExecutionReport(
        n_chunks=len(chunks), reused=sorted(c.index for c in chunks if c.index in reusable)
    )
    todo = [c for c in chunks if c.index not in reusable]
    total = sum(c.size for c in chunks)
    done = sum(c.size for c in chunks if c.index in reusable)

    def notify() -> None:
        if progress is not None:
            progress(
                Progress(
                    candidates_done=done,
                    candidates_total=total,
                    chunks_done=len(report.reused) + len(report.computed) + len(report.failed),
                    chunks_total=len(chunks),
                    chunks_failed=len(report.failed),
                    chunks_reused=len(report.reused),
                )
            )

    notify()
    logger.info("screening %d candidates in %d chunks (%d reused)", total, len(chunks), len(report.reused))
    for outcome in executor.run(factory, todo, max_attempts):
        if outcome.result is not None:
            store.write_chunk(outcome.chunk, outcome.result)
            report.computed.append(outcome.chunk.index)
            report.retried += outcome.attempts > 1
        else:
            report.failed.append(FailedChunk(outcome.chunk, outcome.error, outcome.attempts))
            logger.error(
                "chunk %d [%d, %d) failed after %d attempts: %s",
                outcome.chunk.index,
                outcome.chunk.start,
                outcome.chunk.stop,
                outcome.attempts,
                outcome.error,
            )
        done += outcome.chunk.size
        notify()
    report.computed.sort()
    report.failed.sort(key=lambda f: f.chunk.index)
    report.seconds = time.perf_counter() - started
    return report
