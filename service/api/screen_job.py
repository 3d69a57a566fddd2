"""The API's use of the screening layer: validate a spec against the server's limits, rank a small
screen in-process, and run a screening job (chunked, persisted, Ray or local) for the job manager."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import status

from models.predictor import PredictorLike
from models.targets import TargetName
from service.api.settings import ApiSettings

ProgressFn = Callable[[int, int, list[dict[str, Any]] | None], None]


class SpecRejected(Exception):
    """A spec the server will not run, with the HTTP status and a sentence saying why."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def elements_of(predictors: Mapping[TargetName, PredictorLike]) -> Callable[[TargetName], frozenset[str]]:
    """The loaded models' training elements per target, for ``screening.session.open_spec`` (which
    intersects them over the spec's targets: the session's one "every element the model knows" rule)."""
    from models.predictor import training_elements

    def of(target: TargetName) -> frozenset[str]:
        if target not in predictors:
            raise SpecRejected(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"no champion model is loaded for {target.value}"
            )
        return training_elements(predictors[target])

    return of


def parse_and_count(
    mapping: Mapping[str, Any],
    settings: ApiSettings,
    *,
    max_candidates: int,
    too_many_hint: str,
    predictors: Mapping[TargetName, PredictorLike],
) -> tuple[Any, int, dict[TargetName, Any] | None]:
    """Parse a spec (422 with the spec's own error naming the field), enforce the fraction-grid limit (422)
    and a candidate cap (413 with `too_many_hint`). Returns (ScreeningSpec, number of candidates, the
    anchors' offsets per target, None when a target's model is missing so they were not checked)."""
    from screening.candidates import count_candidates
    from screening.session import check_anchors, open_spec
    from screening.spec import SpecError

    anchors = None
    try:
        spec = open_spec(dict(mapping), elements_of=elements_of(predictors))
        if not missing_targets(spec.targets, predictors):
            anchors = check_anchors(spec, predictors)
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
    return spec, n, anchors


def validate_spec(
    mapping: Mapping[str, Any], settings: ApiSettings, predictors: Mapping[TargetName, PredictorLike]
) -> int:
    """Check a screening-job spec against the limits and the loaded models; returns its candidate count."""
    spec, n, _ = parse_and_count(
        mapping,
        settings,
        predictors=predictors,
        max_candidates=settings.max_job_candidates,
        too_many_hint="split it into several screens or run `nascreen screen` on a Ray cluster",
    )
    absent = missing_targets(spec.targets, predictors)
    if absent:
        raise SpecRejected(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"no champion model is loaded for {', '.join(absent)}"
        )
    return n


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if (isinstance(value, float) and not math.isfinite(value)) or value is pd.NA or value is pd.NaT:
        return None
    return value


def _json_column(series: pd.Series) -> list[Any]:
    """One column's cells as JSON-safe Python values (what iterating the column gives, made safe)."""
    if not isinstance(series.dtype, np.dtype):  # extension dtypes (Int64 with NA, categories, ...)
        return [_json_value(v) for v in series]
    if series.dtype.kind in "iub":  # NumPy ints and bools: Python ints and bools, never missing
        return list(series.to_numpy().tolist())
    if series.dtype.kind == "f":
        values = series.to_numpy()
        cells: list[Any] = values.tolist()
        for i in np.flatnonzero(~np.isfinite(values)).tolist():
            cells[i] = None
        return cells
    return [_json_value(v) for v in series]


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe rows: NaN -> None, NumPy scalars -> Python scalars. Converted column by column (a
    vectorised pass per NumPy column, ~10x faster than a check per cell of every row)."""
    columns = [str(c) for c in frame.columns]
    if not columns:
        return [{} for _ in range(len(frame))]
    plain = frame.copy(deep=False)  # without attrs: taking a column deep-copies them (~0.1 ms a column)
    plain.attrs = {}
    cells = [_json_column(series) for _, series in plain.items()]
    return [dict(zip(columns, row, strict=True)) for row in zip(*cells, strict=True)]


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


def rank_small(
    spec: Any,
    n_candidates: int,
    predictors: Mapping[TargetName, PredictorLike],
    anchors: dict[TargetName, Any] | None = None,
) -> RankedSmall:
    """Generate, score and rank every candidate of a small spec in this process (``anchors``: the offsets
    ``parse_and_count`` found, not predicted again)."""
    from screening.ranking import describe, rank
    from screening.runner import SpecChunkScorer

    chunk = SpecChunkScorer(spec, {t: predictors[t] for t in spec.targets}, anchors)(0, n_candidates)
    ranked = rank(chunk.scored, spec.ranking)  # ordered: eligible by rank, then excluded rows with reason
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


@dataclass
class _LoadedScorerFactory:
    """In-process jobs reuse the predictors the server already holds (no second model load)."""

    spec: Any
    predictors: Mapping[TargetName, PredictorLike]

    def __call__(self) -> Any:
        from screening.runner import SpecChunkScorer

        return SpecChunkScorer(self.spec, {t: self.predictors[t] for t in self.spec.targets})


class _TopKSoFar:
    """Ranks the chunks finished so far, at most every few seconds (and never more often than 5x the
    time the last ranking took), so a poll shows the best candidates while a long screen runs."""

    def __init__(self, spec: Any, out_dir: Path, k: int) -> None:
        self.spec, self.out_dir, self.k = spec, out_dir, k
        self.next_at = 0.0
        self.min_interval = 2.0

    def __call__(self, final: bool) -> list[dict[str, Any]] | None:
        from screening.ranking import rank
        from screening.report import top_table
        from screening.runner import result_columns
        from screening.store import ChunkStore

        now = time.monotonic()
        if not final and now < self.next_at:
            return None
        scored = ChunkStore(self.out_dir).read("scored", columns=result_columns(self.spec))
        if scored.empty:
            return None
        table = top_table(rank(scored, self.spec.ranking), [t.value for t in self.spec.targets], self.k)
        cost = time.monotonic() - now
        self.next_at = time.monotonic() + max(self.min_interval, 5 * cost)
        return records(table)


def run_screen_job(
    mapping: Mapping[str, Any],
    out_dir: Path,
    *,
    predictors: Mapping[TargetName, PredictorLike],
    settings: ApiSettings,
    on_progress: ProgressFn,
    resume: bool = False,
) -> JobOutcome:
    """Run one screening job into `out_dir` (server-owned), reporting progress after every chunk
    (``resume``: reuse the chunks an interrupted run of this job finished, each verified by the store).

    On Ray, each worker loads the champion models itself, pinned to the versions this server answers
    with; in-process, the server's loaded predictors are reused. Raises whatever `on_progress` raises
    (cancellation) and any screening error; the job manager records it.
    """
    from screening.runner import Progress as ScreenProgress
    from screening.runner import SpecScorerFactory
    from screening.session import run_session, summarise

    spec, _, _ = parse_and_count(
        mapping,
        settings,
        max_candidates=settings.max_job_candidates,
        too_many_hint="split it",
        predictors=predictors,
    )
    absent = missing_targets(spec.targets, predictors)
    if absent:
        raise RuntimeError(f"no champion model is loaded for {', '.join(absent)}")
    versions = {t.value: predictors[t].model_version for t in spec.targets}
    top_so_far = _TopKSoFar(spec, out_dir, settings.top_k)

    def progress(p: ScreenProgress) -> None:
        top = top_so_far(final=False) if p.chunks_done > p.chunks_reused else None
        on_progress(p.candidates_done, p.candidates_total, top)

    if settings.job_executor == "local":
        factory: Any = _LoadedScorerFactory(spec, predictors)
    else:
        factory = SpecScorerFactory(
            spec=spec, tracking_uri=settings.resolved_tracking_uri, model_versions=versions
        )
    result = run_session(
        spec,
        out_dir,
        factory=factory,
        model_versions=versions,
        executor=settings.job_executor,
        address=settings.ray_address,
        num_cpus=settings.ray_num_cpus,
        chunk_size=settings.chunk_size,
        resume=resume,
        progress=progress,
    )
    summary = summarise(spec, result, settings.top_k)
    return JobOutcome(top_k=records(summary.top), counts=summary.counts.as_dict())
