"""One screening session, the same for every edge: open a spec (resolving "every element the model knows"
by one rule), run it chunk by chunk on an executor, and summarise the outcome. ``nascreen screen`` and
the API's screening jobs and ``/v1/rank-dopants`` all go through here, so one spec gives the same
candidates, the same counts and the same top table whichever door it came in by.

The model-elements rule: the dopant group ``model_elements`` ("every element the model knows") is the
**intersection** of the training elements of the models of the targets the spec scores. A candidate is
scored by every one of those models; an element outside one model's training data would only give that
target an out-of-domain guess, so it is not an element "the model knows". (The union over whatever models
a server happened to have loaded, the API's old rule, also depended on unrelated targets.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from models.predictor import PredictorLike
from models.relative import AnchorOffset
from models.targets import TargetName
from screening.chunks import ScorerFactory
from screening.families import FAMILIES
from screening.report import ScreenCounts, count_outcomes, top_table
from screening.runner import (
    DEFAULT_CHUNK_SIZE,
    ChunkExecutor,
    LocalExecutor,
    ProgressCallback,
    ScreenResult,
    anchor_offsets,
    run_screen,
)
from screening.spec import (
    GROUP_ALIASES,
    MODEL_ELEMENTS_GROUP,
    ScreeningSpec,
    SpecError,
    normalise_group,
    parse_spec,
)
from screening.spec_forms import SpecForm

__all__ = [
    "ElementsOf",
    "ExecutorKind",
    "ScreenSummary",
    "asks_model_elements",
    "check_anchors",
    "model_elements",
    "open_spec",
    "run_session",
    "summarise",
]

#: The elements one target's model was trained on (the champion's ``training_elements_``).
ElementsOf = Callable[[TargetName], frozenset[str]]
ExecutorKind = Literal["ray", "local"]


def asks_model_elements(form: SpecForm) -> bool:
    """Does the spec's dopant list (or co-dopant list) use the group ``model_elements``?"""
    lists = [form.dopants or (), form.codoping.dopants if form.codoping and form.codoping.dopants else ()]
    for name in (n for names in lists for n in names):
        key = normalise_group(name)
        if GROUP_ALIASES.get(key, key) == MODEL_ELEMENTS_GROUP:
            return True
    return False


def model_elements(targets: Iterable[TargetName], elements_of: ElementsOf) -> frozenset[str]:
    """The session's one rule: elements every scoring model was trained on (their intersection)."""
    known: frozenset[str] | None = None
    for target in targets:
        elements = frozenset(elements_of(target))
        known = elements if known is None else known & elements
    return known or frozenset()


def open_spec(
    mapping: Mapping[str, Any], *, elements_of: ElementsOf | None, max_candidates: int | None = None
) -> ScreeningSpec:
    """Parse a spec once. ``elements_of`` is asked only if the spec uses ``model_elements`` (and only for
    the targets the spec scores), so a spec that does not ask loads nothing."""
    form = SpecForm.from_mapping(mapping)
    known: frozenset[str] | None = None
    if asks_model_elements(form):
        if elements_of is None:
            raise SpecError("dopants: 'model_elements' needs the trained models, and none are available")
        targets = form.targets or FAMILIES[form.family].targets
        known = model_elements(targets, elements_of)
    return parse_spec(mapping, model_elements=known, max_candidates=max_candidates)


def check_anchors(
    spec: ScreeningSpec, predictors: Mapping[TargetName, PredictorLike]
) -> dict[TargetName, AnchorOffset]:
    """Every anchor row of the spec can anchor with these models (checked once, before any chunk runs, so
    a bad measured row is one error naming it rather than every chunk failing); SpecError otherwise.
    Returns the offsets, so a caller scoring in this process need not predict the anchors again."""
    if not spec.anchors:
        return {}
    try:
        return anchor_offsets(spec, {t: p for t, p in predictors.items()})
    except ValueError as exc:
        raise SpecError(str(exc)) from None


def _executor(
    kind: ExecutorKind, address: str | None, num_cpus: int | None
) -> tuple[AbstractContextManager[Any], Callable[[], ChunkExecutor]]:
    if kind == "local":
        return nullcontext(), LocalExecutor
    from screening.ray_runner import RayExecutor, ray_session

    return ray_session(address=address, num_cpus=num_cpus), RayExecutor


def run_session(
    spec: ScreeningSpec,
    out_dir: Path,
    *,
    factory: ScorerFactory,
    model_versions: Mapping[str, str],
    executor: ExecutorKind = "ray",
    address: str | None = None,
    num_cpus: int | None = None,
    chunk_size: int | None = None,
    resume: bool = True,
    progress: ProgressCallback | None = None,
) -> ScreenResult:
    """Run ``spec`` into ``out_dir`` on embedded/existing Ray (``executor="ray"``) or in this process."""
    if executor not in ("ray", "local"):
        raise ValueError(f"executor: {executor!r}: expected ray or local")
    context, make = _executor(executor, address, num_cpus)
    with context:
        return run_screen(
            spec,
            out_dir,
            factory=factory,
            model_versions=model_versions,
            executor=make(),
            chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
            resume=resume,
            progress=progress,
        )


@dataclass(frozen=True)
class ScreenSummary:
    """What every edge reports of a finished screen."""

    counts: ScreenCounts
    top: pd.DataFrame  # screening.report.top_table


def summarise(spec: ScreeningSpec, result: ScreenResult, top_k: int) -> ScreenSummary:
    """The counts and the top ``top_k`` table of a finished screen."""
    targets = [t.value for t in spec.targets]
    counts = count_outcomes(
        result.ranked,
        targets,
        result.rejected_codes,
        failed_chunks=len(result.execution.failed),
        failed_chunk_candidates=result.execution.n_failed_candidates,
    )
    return ScreenSummary(counts=counts, top=top_table(result.ranked, targets, top_k))
