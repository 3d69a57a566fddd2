"""Real, simple chunk scorers for the runner tests (no models needed): deterministic by candidate index,
like the real pipeline, so any process that scores a chunk gives the same rows."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from screening.chunks import ChunkResult

DOPANTS = ("Ti", "Mg", "Zn", "Cu", "Fe", "Al")


def arithmetic_chunk(start: int, stop: int) -> ChunkResult:
    """Candidates Na0.67Mn(1-x)M(x)O2 over a dopant x fraction grid; every 7th index is 'rejected'."""
    idx = np.arange(start, stop)
    dopant = np.array(DOPANTS)[idx % len(DOPANTS)]
    fraction = np.round(0.02 * (1 + (idx // len(DOPANTS)) % 10), 2)
    rejected = idx % 7 == 3
    formula = [f"Na0.67Mn{1 - x:g}{d}{x:g}O2" for d, x in zip(dopant, fraction, strict=True)]
    # a smooth, index-determined "prediction" with an uncertainty that grows with the fraction
    prediction = 3.0 + 0.4 * np.sin(idx / 5.0) - fraction
    std = 0.05 + fraction
    frame = pd.DataFrame(
        {
            "candidate_id": idx,
            "formula": formula,
            "dopant": dopant,
            "fraction": fraction,
            "average_voltage_prediction": prediction,
            "average_voltage_std": std,
        }
    )
    scored = frame[~rejected].reset_index(drop=True)
    rejected_frame = frame.loc[rejected, ["candidate_id", "formula"]].reset_index(drop=True)
    rejected_frame["reason_code"] = "not_charge_balanced"
    rejected_frame["reason"] = "not charge balanced: needs Mn above +4"
    return ChunkResult(scored=scored, rejected=rejected_frame)


@dataclass
class ArithmeticScorer:
    """Scorer over ``arithmetic_chunk`` that records each call (in memory and, if given, in a file so that
    calls made in other processes can be counted) and fails on chosen starts a given number of times."""

    calls_file: Path | None = None
    fail_starts: tuple[int, ...] = ()
    failures_per_start: int = 1
    failures_dir: Path | None = None
    crash_start: int | None = None  # the process exits (once: a marker file in failures_dir) on this start

    def __post_init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self._failed: dict[int, int] = {}

    def _failures_so_far(self, start: int) -> int:
        if self.failures_dir is None:  # in-process count
            return self._failed.get(start, 0)
        return len(list(self.failures_dir.glob(f"fail-{start}-*")))

    def _record_failure(self, start: int) -> None:
        n = self._failures_so_far(start)
        self._failed[start] = n + 1
        if self.failures_dir is not None:
            (self.failures_dir / f"fail-{start}-{n}").touch()

    def __call__(self, start: int, stop: int) -> ChunkResult:
        if start == self.crash_start and self.failures_dir is not None:
            marker = self.failures_dir / f"crashed-{start}"
            if not marker.exists():
                marker.touch()
                os._exit(1)  # a worker process dying, not an exception
        self.calls.append((start, stop))
        if self.calls_file is not None:
            with self.calls_file.open("a") as fh:
                fh.write(f"{start},{stop}\n")
        if start in self.fail_starts and self._failures_so_far(start) < self.failures_per_start:
            self._record_failure(start)
            raise RuntimeError(f"simulated worker failure on chunk starting at {start}")
        return arithmetic_chunk(start, stop)


@dataclass
class ArithmeticFactory:
    """Picklable factory: builds one ArithmeticScorer per worker and counts constructions in a file."""

    inits_file: Path | None = None
    calls_file: Path | None = None
    fail_starts: tuple[int, ...] = ()
    failures_per_start: int = 1
    failures_dir: Path | None = None
    crash_start: int | None = None

    def __call__(self) -> ArithmeticScorer:
        if self.inits_file is not None:
            with self.inits_file.open("a") as fh:
                fh.write("init\n")
        return ArithmeticScorer(
            self.calls_file, self.fail_starts, self.failures_per_start, self.failures_dir, self.crash_start
        )


def recorded_calls(path: Path) -> list[tuple[int, int]]:
    if not path.exists():
        return []
    return [tuple(map(int, line.split(","))) for line in path.read_text().split()]  # type: ignore[misc]
