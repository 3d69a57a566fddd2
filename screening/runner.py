"""Screen orchestration: plan chunks, run them on an executor (single process here, Ray in ray_runner),
persist each finished chunk, resume, and report progress through a callback (the runner prints nothing).

An executor only maps a scorer factory over chunk ranges and yields outcomes as chunks finish; everything
else (which chunks are still to do, persisting, retry accounting, failures) is decided here, identically for
every executor, which is what makes a Ray run equal to a single-process run.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from models.predictor import PredictorLike
from models.relative import AnchorOffset, anchor_offset, has_relative_calibration
from models.targets import TargetName
from screening import schema
from screening.candidates import candidate_chunk, count_candidates
from screening.chunks import ChunkOutcome, ChunkRange, ChunkResult, ChunkScorer, ScorerFactory, plan_chunks
from screening.ranking import rank
from screening.scoring import score_candidates
from screening.spec import ScreeningSpec
from screening.store import ChunkStore, Manifest, spec_fingerprint, write_table

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 25_000
DEFAULT_MAX_ATTEMPTS = 3
# `--executor auto` runs a screen of fewer candidates than this in one process: local Ray pays a fixed cost
# (ray.init, worker start-up, model hand-over) that a small screen never earns back on 2 cores. Measured
# with benchmarks/screen.py (same run, both executors, see the README): at 100k candidates Ray took 2x as
# long as one process, and the break-even of the two measured lines (fixed cost + per-candidate rate) lay
# at about 400k on the quiet 2-core machine.
AUTO_RAY_MIN_CANDIDATES = 400_000


def choose_executor(n_candidates: int, cpus: int, address: str | None = None) -> tuple[str, str]:
    """``("ray" | "local", why)`` for ``--executor auto``: an existing cluster (``address``) always gets
    Ray; otherwise Ray only when there are at least 2 CPUs and ``AUTO_RAY_MIN_CANDIDATES`` candidates."""
    if address:
        return "ray", f"auto: the Ray cluster at {address}"
    if cpus < 2:
        return "local", f"auto: {cpus} CPU"
    if n_candidates < AUTO_RAY_MIN_CANDIDATES:
        return "local", f"auto: {n_candidates:,} candidates < {AUTO_RAY_MIN_CANDIDATES:,}"
    return "ray", f"auto: {n_candidates:,} candidates on {cpus} CPUs"


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
    """A chunk that failed every attempt: its range, the attempts and the last error text."""

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


# ------------------------------------------------------------------------------------- spec-level screen
def anchor_offsets(
    spec: ScreeningSpec, predictors: Mapping[TargetName | str, PredictorLike]
) -> dict[TargetName, AnchorOffset]:
    """The lab offset per target from the spec's anchors (computed once per scorer, not per chunk);
    ValueError naming the target and the anchor row that cannot anchor."""
    out: dict[TargetName, AnchorOffset] = {}
    for target in spec.targets:
        rows = spec.anchor_rows(target)
        if not rows:
            continue
        predictor = predictors.get(target) or predictors.get(target.value)
        if predictor is None:
            raise ValueError(f"anchors ({target.value}): no model is loaded for {target.value}")
        if not has_relative_calibration(predictor):
            raise ValueError(
                f"anchors ({target.value}): the model has no relative calibration; retrain it with "
                f"`nascreen train --target {target.value}`"
            )
        try:
            out[target] = anchor_offset(predictor, pd.DataFrame(rows))
        except ValueError as exc:
            raise ValueError(f"anchors ({target.value}): {exc}") from None
    return out


@dataclass
class SpecChunkScorer:
    """Generates the candidates of a chunk from the spec, then scores them with the loaded predictors
    (absolute, and relative to the spec's reference with its anchors' offsets)."""

    spec: ScreeningSpec
    predictors: Mapping[TargetName | str, PredictorLike]
    #: the spec's anchor offsets when the caller has them already (``screening.session.check_anchors``)
    anchors: dict[TargetName, AnchorOffset] | None = None

    def __post_init__(self) -> None:
        if self.anchors is None:
            self.anchors = anchor_offsets(self.spec, self.predictors)

    def __call__(self, start: int, stop: int) -> ChunkResult:
        chunk = candidate_chunk(self.spec, start, stop)
        scored = score_candidates(
            chunk.accepted, self.predictors, reference=self.spec.reference or None, anchors=self.anchors
        )
        return ChunkResult(scored=scored, rejected=chunk.rejected)


class ModelVersionChangedError(RuntimeError):
    """A worker loaded a different champion version than the one the screen was started with."""


@dataclass(frozen=True)
class SpecScorerFactory:
    """Picklable: what a worker needs to build its scorer (the spec, where the models are, which versions).

    Called once per worker: loads each target's champion predictor from the MLflow store and checks it is
    the version recorded in the screen's manifest, so every chunk of a screen uses the same models.
    """

    spec: ScreeningSpec
    tracking_uri: str
    model_versions: Mapping[str, str]

    def __call__(self) -> SpecChunkScorer:
        from models.predictor import load_predictors

        predictors = load_predictors(self.spec.targets, self.tracking_uri)
        for target, predictor in predictors.items():
            expected = self.model_versions.get(target.value)
            if expected is not None and predictor.model_version != expected:
                raise ModelVersionChangedError(
                    f"{target.value}: the champion is now version {predictor.model_version}, the screen "
                    f"started with version {expected}; rerun the screen (with --no-resume)"
                )
        loaded: dict[TargetName | str, PredictorLike] = {t: p for t, p in predictors.items()}
        return SpecChunkScorer(self.spec, loaded)


@dataclass
class ScreenResult:
    """A finished screen: the ranked table, rejected-reason counts, the chunk loop report, file paths."""

    ranked: pd.DataFrame
    rejected_codes: Counter[str]  # rejected candidates per screening.schema.RejectCode
    execution: ExecutionReport
    manifest: Manifest
    paths: dict[str, Path]


def result_columns(spec: ScreeningSpec) -> list[str]:
    """The columns of the merged table for ``spec`` (``screening.schema.result_columns``)."""
    return schema.result_columns(spec.targets)


def screen_manifest(spec: ScreeningSpec, model_versions: Mapping[str, str], chunk_size: int) -> Manifest:
    """What the chunks of this screen are computed from (spec + result schema, model versions, plan)."""
    return Manifest(
        # the result schema is part of what a chunk was computed from: chunks of another schema are not reused
        spec_hash=spec_fingerprint({"spec": spec, "result_schema": schema.SCHEMA_VERSION}),
        model_versions=dict(sorted(model_versions.items())),
        chunk_size=chunk_size,
        n_candidates=count_candidates(spec),
        spec_name=spec.name,
    )


def run_screen(
    spec: ScreeningSpec,
    out_dir: Path,
    *,
    factory: ScorerFactory,
    model_versions: Mapping[str, str],
    executor: ChunkExecutor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    resume: bool = True,
    progress: ProgressCallback | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> ScreenResult:
    """Screen ``spec`` chunk by chunk into ``out_dir`` (resuming finished chunks when the manifest agrees),
    then merge: rank the scored candidates (only the result columns are read back) and write
    ``ranked.parquet``/``.csv`` and ``rejected.parquet``/``.csv`` (streamed chunk by chunk)."""
    manifest = screen_manifest(spec, model_versions, chunk_size)
    chunks = plan_chunks(manifest.n_candidates, chunk_size)
    store = ChunkStore(out_dir)
    reusable = store.open(manifest, resume=resume)
    execution = run_chunks(
        chunks, factory, executor, store, reusable=reusable, progress=progress, max_attempts=max_attempts
    )
    scored = store.read("scored", columns=result_columns(spec))
    ranked = rank(scored, spec.ranking)
    paths = {
        "ranked_parquet": out_dir / "ranked.parquet",
        "ranked_csv": out_dir / "ranked.csv",
        "rejected_parquet": out_dir / "rejected.parquet",
        "rejected_csv": out_dir / "rejected.csv",
    }
    write_table(ranked, paths["ranked_parquet"], paths["ranked_csv"])
    store.export("rejected", paths["rejected_parquet"], paths["rejected_csv"])
    return ScreenResult(
        ranked=ranked,
        rejected_codes=store.value_counts("rejected", "reason_code"),
        execution=execution,
        manifest=manifest,
        paths=paths,
    )
