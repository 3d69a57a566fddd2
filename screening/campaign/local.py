"""The campaign's own in-loop model: the global model as the prior mean plus a Gaussian process on this
lab's residuals (measured - predicted), over a small standardised representation of the candidate space.

Why: a model trained on other papers ranks the compositions of one new study poorly (held-out pools:
Spearman around 0 in ``benchmarks/campaign_replay.py``), and neither the shared lab offset (one number)
nor a refit of a forest on ~1000 rows + a handful of the lab's rows changes the ranking *inside* the
lab's space. A GP on the residuals of the revealed rows does: it learns how this lab's values move with
the composition (and the conditions) that vary across the space, and its posterior std says where it
has not looked yet.

* Representation (``local_features``): the square roots of the atomic fractions of the elements whose
  fraction varies over the candidates and measured rows (the varying sites; elements present everywhere
  in the same amount carry no information), centred and scaled as one block to unit RMS distance from
  the mean composition (the Hellinger geometry of ``composition_features``: per-element z-scores would
  blow a dopant present in one row up to z ~ 10 and make it the farthest, most "uncertain" point), then
  the predictor's numeric condition inputs that vary (cycles, current, ...; log10 where the model takes
  logs) and a one-hot of the categorical material inputs that vary (phase, structure type, working
  ion), each standardised, over the candidates + measured rows.
* Model (``fit_residual_gp``): sklearn ``GaussianProcessRegressor`` with
  ``Constant x Matern(nu=2.5, one length scale) + White`` on the residuals (``normalize_y``: the mean
  residual is the prior offset, their spread the amplitude), a fixed ``random_state``.
* ``local_scores``: per target with at least ``MIN_LOCAL_ROWS`` measured rows, the score table's
  prediction becomes ``prior + GP mean`` and its std the GP's posterior std (90% interval = mean +-
  1.645 std, clipped to the target's physical range); with fewer rows the table is anchored by the lab
  offset (``screening.campaign.anchor_scores``) as before. Column ``scored_by`` says which model scored
  each row; ``propose_batch`` puts it in every proposal's reason.

The prior must be a model that has not seen the lab's rows (the champion, not a campaign refit): the
GP learns from out-of-sample residuals; a refit's in-sample residuals would be shrunk towards zero.
Pure: the predictors are passed in; no IO.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from featurize.composition import Composition, parse_formulas
from models.campaign import measured_predictions
from models.features import input_spec
from models.measurements import Measurement
from models.predictor import PredictorLike
from models.targets import TARGETS, TargetName
from screening.campaign.anchoring import anchor_scores
from screening.campaign.propose import SCORED_BY, composition_features
from screening.schema import Field, column

__all__ = [
    "MIN_LOCAL_ROWS",
    "SCORED_BY",
    "LocalFit",
    "fit_residual_gp",
    "local_features",
    "local_scores",
]

#: Measured rows of a target before the local GP scores the space. A GP on 1-4 residuals is an offset
#: and a guess of one slope (the shared lab offset already is the offset); from one start set + one
#: batch (3 + 4 in the replay, or one batch of 5-8 in the lab) it has a direction to learn.
MIN_LOCAL_ROWS = 5
_Z90 = 1.6448536269514722
_EPS = 1e-9


def _varying(matrix: np.ndarray) -> np.ndarray:
    return np.asarray(np.nanstd(matrix, axis=0) > _EPS, dtype=bool) if matrix.size else np.zeros(0, bool)


def _condition_blocks(
    target: TargetName, frame: pd.DataFrame, measured: Sequence[Measurement]
) -> tuple[list[np.ndarray], list[str]]:
    """Numeric condition columns and one-hot material columns of ``target`` present in ``frame``, for the
    candidates then the measured rows (a measured row missing a value gets the candidates' median / no
    category)."""
    spec = input_spec(target)
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for c in spec.numeric:
        if c not in frame.columns:
            continue
        cand = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
        fill = float(np.nanmedian(cand)) if np.isfinite(cand).any() else 0.0
        meas = np.array([_as_float(m.conditions.get(c)) for m in measured], dtype=float)
        col = np.concatenate([cand, meas])
        if c in spec.log_columns:
            col = np.log10(np.where(col > 0, col, np.nan))
            fill = math.log10(fill) if fill > 0 else 0.0
        blocks.append(np.where(np.isfinite(col), col, fill)[:, None])
        names.append(c)
    for c in spec.categorical:
        if c not in frame.columns:
            continue
        values = [*frame[c].astype(str).tolist(), *[str(m.conditions.get(c, "")) for m in measured]]
        for level in sorted(set(values)):
            blocks.append(np.array([v == level for v in values], dtype=float)[:, None])
            names.append(f"{c}={level}")
    return blocks, names


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def local_features(
    target: TargetName, frame: pd.DataFrame, measured: Sequence[Measurement]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(candidate rows, measured rows, column names) of the GP's representation (module docstring): the
    varying element fractions (Hellinger block), numeric conditions and material categories
    (standardised), over both."""
    cand_comps = [
        p if isinstance(p, Composition) else None for p in parse_formulas(frame["formula"].tolist())
    ]
    meas_comps = [
        p if isinstance(p, Composition) else None for p in parse_formulas([m.formula for m in measured])
    ]
    comps = [*cand_comps, *meas_comps]
    elements = sorted({e for c in comps if c is not None for e in c.elements})
    fractions = composition_features(comps)[:, : len(elements)]  # sqrt fractions, sorted union
    keep = _varying(fractions)
    fractions = fractions[:, keep]
    names = [f"x({e})" for e, k in zip(elements, keep, strict=True) if k]
    if fractions.shape[1]:
        # one scale for the whole composition block (its RMS distance to the mean composition): the
        # Hellinger geometry of ``composition_features`` stays, so a rare dopant is not blown up to z ~ 10
        centred = fractions - fractions.mean(axis=0)
        fractions = centred / math.sqrt(float(np.mean(np.sum(centred**2, axis=1))))
    extra, extra_names = _condition_blocks(target, frame, measured)
    conditions = np.hstack(extra) if extra else np.zeros((len(comps), 0))
    keep = _varying(conditions)
    conditions = conditions[:, keep]
    names += [n for n, k in zip(extra_names, keep, strict=True) if k]
    if conditions.shape[1]:
        conditions = (conditions - conditions.mean(axis=0)) / conditions.std(axis=0)
    matrix = np.hstack([fractions, conditions])
    n = len(cand_comps)
    return matrix[:n], matrix[n:], names


def fit_residual_gp(X: np.ndarray, residuals: np.ndarray, *, seed: int = 0) -> GaussianProcessRegressor:
    """A GP on ``residuals`` over standardised ``X``: Constant x Matern(2.5) + White, ``normalize_y``,
    two optimiser restarts from ``seed``. Raises ValueError on fewer than 2 rows or non-finite input."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(residuals, dtype=float)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[0] < 2:
        raise ValueError(
            f"residual GP: needs >= 2 rows of X matching the residuals, got {X.shape}, {y.shape}"
        )
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("residual GP: X and residuals must be finite")
    d = max(X.shape[1], 1)
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(
        length_scale=math.sqrt(d), length_scale_bounds=(1e-1, 1e2), nu=2.5
    ) + WhiteKernel(noise_level=0.1, noise_level_bounds=(1e-4, 1.0))
    gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=2, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(X, y)
    return gp


@dataclass(frozen=True)
class LocalFit:
    """One target's local model: rows it learnt from, its features and fitted kernel, as text."""

    target: TargetName
    n: int
    features: tuple[str, ...]
    kernel: str

    def describe(self, prior: str) -> str:
        """The ``scored_by`` text."""
        return (
            f"{self.target.value}: {prior} + local GP on {self.n} lab residuals "
            f"(features {', '.join(self.features)}; kernel {self.kernel})"
        )


def _apply_gp(
    out: pd.DataFrame, target: TargetName, prior: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> None:
    new = prior + mean
    bounds = TARGETS[target].value_range
    cols = {
        Field.PREDICTION: new,
        Field.STD: std,
        Field.LOWER_90: new - _Z90 * std,
        Field.UPPER_90: new + _Z90 * std,
    }
    for f, values in cols.items():
        if f is not Field.STD and bounds is not None:
            values = np.clip(values, *bounds)
        out[column(target, f)] = values


def _local_fit(
    frame: pd.DataFrame, predictor: PredictorLike, measured: Sequence[Measurement], target: TargetName
) -> tuple[np.ndarray, np.ndarray, LocalFit] | None:
    """(GP mean, GP std) of the residual at every candidate, and what was fitted; None when the space
    has no varying feature (nothing for a GP to learn beyond the offset)."""
    mine = [m for m in measured if m.target is target]
    prior_measured, _ = measured_predictions(predictor, mine, target)  # clipped, as the candidates' prior
    residuals = np.array([m.value for m in mine], dtype=float) - prior_measured
    X_cand, X_meas, names = local_features(target, frame, mine)
    if not names:
        return None
    gp = fit_residual_gp(X_meas, residuals)
    mean, std = gp.predict(X_cand, return_std=True)
    return np.asarray(mean), np.asarray(std), LocalFit(target, len(mine), tuple(names), str(gp.kernel_))


def local_scores(
    scored: pd.DataFrame,
    predictors: Mapping[TargetName, PredictorLike],
    measured: Sequence[Measurement],
    *,
    min_rows: int = MIN_LOCAL_ROWS,
) -> pd.DataFrame:
    """The score table the acquisition reads (module docstring): per target, the local GP's posterior
    from ``min_rows`` measured rows on, the lab-offset anchoring below; ``scored_by`` names the model.
    ``out.attrs["lab_offsets"]`` as ``anchor_scores``; ``out.attrs["local_models"]``: per target the
    ``scored_by`` text of the GP targets."""
    if min_rows < 2:
        raise ValueError(f"min_rows: the local GP needs at least 2 rows, got {min_rows}")
    out = anchor_scores(scored, predictors, measured).reset_index(drop=True)
    frame = scored.reset_index(drop=True)
    texts: list[str] = []
    local: dict[str, str] = {}
    for target, predictor in predictors.items():
        t = TargetName(target)
        if column(t, Field.PREDICTION) not in frame.columns:
            continue
        version = getattr(predictor, "model_version", "") or "?"
        n = sum(m.target is t for m in measured)
        fit = _local_fit(frame, predictor, measured, t) if n >= min_rows else None
        if fit is None:
            why = "no measured rows" if n == 0 else f"{n} lab rows; local GP from {min_rows}"
            if n >= min_rows:
                why = f"{n} lab rows but no composition or condition varies over the space"
            prefix = "model" if n == 0 else "model + lab offset"
            texts.append(f"{t.value}: {prefix} v{version} ({why})")
            continue
        mean, std, info = fit
        prior = pd.to_numeric(frame[column(t, Field.PREDICTION)], errors="coerce").to_numpy(float)
        _apply_gp(out, t, prior, mean, std)
        local[t.value] = info.describe(f"model v{version}")
        texts.append(local[t.value])
    out[SCORED_BY] = "; ".join(texts)
    out.attrs["local_models"] = local
    return out
