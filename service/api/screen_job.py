"""The API's use of the screening layer: validate a spec against the server's limits, rank a small
screen in-process, and run a screening job (chunked, persisted, Ray or local) for the job manager."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import status

from models.targets import TargetName
from service.api.settings import ApiSettings
from service.api.state import PredictorLike

ProgressFn = Callable[[int, int, list[dict[str, Any]] | None], None]


class SpecRejected(Exception):
    """A spec the server will not run, with the HTTP status and a sentence saying why."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def model_elements(predictors: Mapping[TargetName, PredictorLike]) -> frozenset[str] | None:
    """Elements in the loaded models' training data (resolves the dopant group ``model_elements``)."""
    found: set[str] = set()
    for p in predictors.values():
        found |= set(getattr(getattr(p, "model", None), "training_elements_", ()) or ())
    return frozenset(found) or None


def parse_and_count(
    mapping: Mapping[str, Any],
    settings: ApiSettings,
    *,
    max_candidates: int,
    too_many_hint: str,
    known_elements: frozenset[str] | None = None,
) -> tuple[Any, int]:
    """Parse a spec (422 with the spec's own error naming the field), enforce the fraction-grid limit (422)
    and a candidate cap (413 with `too_many_hint`). Returns (ScreeningSpec, number of candidates)."""
    from screening.candidates import count_candidates
    from screening.spec import SpecError, parse_spec

    try:
        spec = parse_spec(dict(mapping), model_elements=known_elements)
    except SpecError as exc:
        raise SpecRejected(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    for grid in spec.grids:
        if len(grid.values) > settings.max_fraction_grid:
            raise SpecRejected(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"grid {grid.name!r} has {len(grid.values)} values; this server allows at most "
                f"{settings.max_fraction_grid} per grid",
            )
    n = int(count_candidates(spec))
    if n > max_candidates:
        raise SpecRejected(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the spec generates {n} candidates, more than the {max_candidates} allowed here: "
            f"{too_many_hint}",
        )
    return spec, n


def validate_spec(
    mapping: Mapping[str, Any], settings: ApiSettings, predictors: Mapping[TargetName, PredictorLike]
) -> int:
    """Check a screening-job spec; returns its candidate count."""
    _, n = parse_and_count(
        mapping,
        settings,
        known_elements=model_elements(predictors),
        max_candidates=settings.max_job_candidates,
        too_many_hint="split it into several screens or run `nascreen screen` on a Ray cluster",
    )
    return n


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe rows: NaN -> None, NumPy scalars -> Python scalars."""
    out: list[dict[str, Any]] = []
    columns = list(frame.columns)
    for row in frame.itertuples(index=False, name=None):
        rec: dict[str, Any] = {}
        for col, value in zip(columns, row, strict=True):
            if isinstance(value, np.generic):
                value = value.item()
            if (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA or value is pd.NaT:
                value = None
            rec[str(col)] = value
        out.append(rec)
    return out


def missing_targets(
    targets: tuple[TargetName, ...], predictors: Mapping[TargetName, PredictorLike]
) -> list[str]:
    return [t.value for t in targets if t not in predictors]


@dataclass
class RankedSmall:
    ranking: str
    targets: list[TargetName]
    ranked: pd.DataFrame
    rejected: pd.DataFrame
    n_generated: int


def rank_small(spec: Any, n_candidates: int, predictors: Mapping[TargetName, PredictorLike]) -> RankedSmall:
    """Generate, score and rank every candidate of a small spec in this process."""
    from screening.scoring import score_candidates

    from screening.candidates import candidate_chunk
    from screening.ranking import describe, rank

    chunk = candidate_chunk(spec, 0, n_candidates)
    use = {t: predictors[t] for t in spec.targets}
    scored = score_candidates(chunk.accepted, use)
    ranked = rank(scored, spec.ranking)  # ordered: eligible by rank, then excluded rows with their reason
    return RankedSmall(
        ranking=describe(spec.ranking),
        targets=list(spec.targets),
        ranked=ranked,
        rejected=chunk.rejected,
        n_generated=n_candidates,
    )


@dataclass
class JobOutcome:
    top_k: list[dict[str, Any]]
    counts: dict[str, int] = field(default_factory=dict)


def run_screen_job(
    mapping: Mapping[str, Any],
    out_dir: Path,
    *,
    predictors: Mapping[TargetName, PredictorLike],
    settings: ApiSettings,
    on_progress: ProgressFn,
) -> JobOutcome:
    """Run one screening job into `out_dir` (server-owned), reporting progress after every chunk."""
    raise NotImplementedError("waiting for the screening runner API")
