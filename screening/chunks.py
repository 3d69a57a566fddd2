"""The unit of screening work: a contiguous range of candidate indices, and what scoring it gives back.

A chunk is described by its index range only, never by its data: candidate generation is deterministic by
index, so any worker (a local loop, a Ray actor on another node) regenerates its own chunk from the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd


@dataclass(frozen=True, order=True)
class ChunkRange:
    """Candidates ``start <= i < stop`` of a screen, the ``index``-th chunk of its plan."""

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def plan_chunks(n_candidates: int, chunk_size: int) -> list[ChunkRange]:
    """Split ``range(n_candidates)`` into consecutive chunks of ``chunk_size`` (the last may be shorter)."""
    if n_candidates < 0:
        raise ValueError(f"n_candidates must be >= 0, got {n_candidates}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [
        ChunkRange(index=i, start=start, stop=min(start + chunk_size, n_candidates))
        for i, start in enumerate(range(0, n_candidates, chunk_size))
    ]


@dataclass
class ChunkResult:
    """What scoring one chunk gives: one row per accepted candidate (with predictions) and one row per
    rejected candidate (with its reason). Together they account for every index of the chunk."""

    scored: pd.DataFrame
    rejected: pd.DataFrame

    @property
    def n_generated(self) -> int:
        return len(self.scored) + len(self.rejected)


class ChunkScorer(Protocol):
    """Scores the candidates ``start <= i < stop``; holds whatever it loaded once (models)."""

    def __call__(self, start: int, stop: int) -> ChunkResult: ...


# A picklable zero-argument callable that builds a scorer. Each worker calls it exactly once (this is where
# models are loaded), then reuses the scorer for every chunk it is given.
ScorerFactory = Callable[[], ChunkScorer]


@dataclass
class ChunkOutcome:
    """The end state of one chunk after all attempts: a result, or the last error."""

    chunk: ChunkRange
    result: ChunkResult | None
    error: str = ""
    attempts: int = 1
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result is not None
