"""Predictions relative to a reference: what a dopant changes vs the host under one protocol, and absolute
predictions anchored to the user's own measured rows. Pure: values in, typed frames out.

Why: the study (cell build, electrolyte, loading) moves every retention of a paper by a shared offset
that composition features cannot see (about half of the variance lies between papers). The difference of
two predictions under the same protocol, ``delta = f(candidate) - f(host)``, does not carry that offset,
and a user who measured the host in their lab knows their own offset: ``anchored = f(candidate) +
mean(measured - f(measured rows))``.

Uncertainty of a difference is calibrated on differences: ``RelativeCalibration`` is split-conformal on
out-of-fold pairs of rows of one held-out study (``UncertainRegressor.oof_``: predictions of a fold's
papers by a model that never saw them). The nonconformity of a pair is ``|dy - dyhat| / (s_ab + eps)``
with ``s_ab = |dyhat| + sqrt(sigma_a^2 + sigma_b^2)`` from the regressor's raw spread (``pair_spread``),
the floor ``eps`` chosen on cross-fold width (``select_normalised_floor``). ``p_better`` reads the
calibrated delta interval as a normal: ``P(delta > 0) = Phi(delta / delta_std)`` (higher is better).

``RelativeUncertainRegressor`` is the artifact: an ``UncertainRegressor`` whose ``fit`` also fits the
relative calibration (``relative_calibration_``) and keeps the held-out pair report (``relative_report_``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from featurize.composition import Composition, CompositionError, parse_formula
from models.conditions import NUMERIC_CONDITIONS
from models.conformal import (
    SPREAD_FLOOR_GRID,
    ConformalCalibration,
    cross_fold_intervals,
    fit_conformal,
)
from models.estimators.spread import predict_mean_std
from models.evaluation import (
    MIN_PAIR_GAP,
    coverage,
    dummy_median_oof,
    mae,
    pair_concordance,
    spearman,
    within_study_pairs,
)
from models.fast_transform import transform_steps
from models.predictor import OUTPUT_COLUMNS, RAW_OUTPUTS, predict_frame_raw
from models.targets import TARGETS, TargetName
from models.uncertain import UncertainRegressor

RELATIVE_COLUMNS = (
    "formula",
    "reference_formula",
    "prediction",
    "reference_prediction",
    "delta",
    "delta_std",
    "delta_lower_90",
    "delta_upper_90",
    "p_better",
    "anchored_prediction",
    "anchored_lower_90",
    "anchored_upper_90",
    "n_anchors",
    "in_domain",
    "domain_reason",
    "model_version",
    "error",
)
#: The numbers ``predict_relative`` computes (NaN where a row has no answer), in RELATIVE_COLUMNS order.
_RELATIVE_NUMBERS = RELATIVE_COLUMNS[4:12]
#: The columns a relative answer adds to the usual prediction columns (``models.predictor.OUTPUT_COLUMNS``):
#: what ``nascreen predict --reference`` appends after a row's own absolute answer.
RELATIVE_EXTRA = tuple(c for c in RELATIVE_COLUMNS if c not in (*OUTPUT_COLUMNS, "formula"))
MEASURED_COLUMN = "measured"
#: The near-host rule of the relative report: same protocol (every numeric condition equal) and an L1
#: distance of atomic fractions (``composition_distance``) in (0, NEAR_HOST_DISTANCE]. A dopant on 2-10% of
#: the transition-metal site of a layered Na_x(M)O2 oxide is 0.01-0.05 (NLMRO vs NLMO: 0.056).
NEAR_HOST_DISTANCE = 0.06
#: Bin edges of ``delta_by_distance`` (L1 distance of atomic fractions; 0 = the same composition).
DISTANCE_BINS = (0.0, 0.02, 0.04, 0.06, 0.1, 0.2, 2.0)


@dataclass(frozen=True)
class RelativeCalibration:
    """Conformal scale of the difference of two predictions of one study (see module)."""

    calibration: ConformalCalibration
    n_pairs: int
    # share of one anchor's residual (measured - predicted) that carries over to another row of its study,
    # fitted on held-out pairs: cov(r_a, r_b) / var(r_b); 1 = take the anchor's offset in full
    anchor_shrinkage: float = 1.0
    anchored: ConformalCalibration | None = None  # absolute calibration of anchored residuals (one anchor)

    def half_width(self, pair_sigma: np.ndarray | None, n: int) -> np.ndarray:
        sigma = pair_sigma if self.calibration.normalized else None
        return self.calibration.half_width(sigma, n)

    def std(self, pair_sigma: np.ndarray | None, n: int) -> np.ndarray:
        return self.half_width(pair_sigma, n) / self.calibration.z


def study_pairs(groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (a, b), a < b, of rows of one study (any formula, any conditions)."""
    g = np.asarray(groups).astype(str)
    return within_study_pairs(g, np.arange(len(g)).astype(str), np.zeros(len(g)))


def _pair_arrays(
    oof: pd.DataFrame, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    y = oof["y_true"].to_numpy(float)
    p = oof["prediction"].to_numpy(float)
    dy = y[a] - y[b]
    dp = p[a] - p[b]
    s = oof["sigma_hat"].to_numpy(float) if "sigma_hat" in oof.columns else np.full(len(oof), np.nan)
    pair_sigma = pair_spread(dp, s[a], s[b]) if np.isfinite(s).all() else None
    return dy, dp, pair_sigma, oof["fold"].to_numpy()[a]


def pair_spread(delta: np.ndarray, sigma_a: np.ndarray, sigma_b: np.ndarray) -> np.ndarray:
    """Raw spread of a predicted difference: ``|delta| + sqrt(sigma_a^2 + sigma_b^2)``. A large predicted
    change is the less certain one (on held-out pairs Spearman with |error| ~0.15, vs ~0.09 for the
    members' spread alone)."""
    return np.asarray(np.abs(delta) + np.sqrt(np.square(sigma_a) + np.square(sigma_b)))


def composition_distance(a: Composition, b: Composition) -> float:
    """L1 distance of the atomic fractions of two compositions: 0 for the same one, 2 when they share no
    element (Na0.6Li0.2Mn0.8O2 vs Na0.6Li0.2Mn0.7Ru0.1O2: 0.1/3.6 + 0.1/3.6 = 0.056)."""
    fa = dict(zip(a.elements, a.fractions, strict=True))
    fb = dict(zip(b.elements, b.fractions, strict=True))
    return float(sum(abs(fa.get(el, 0.0) - fb.get(el, 0.0)) for el in set(fa) | set(fb)))


def pair_distances(formulas: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``composition_distance`` of the rows ``a[i]``, ``b[i]`` of ``formulas`` (each formula parsed once)."""
    f = np.asarray(formulas, dtype=object)
    parsed = {text: parse_formula(str(text)) for text in pd.unique(f[np.concatenate([a, b])])}
    return np.array([composition_distance(parsed[f[i]], parsed[f[j]]) for i, j in zip(a, b, strict=True)])


def same_protocol(frame: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Do rows ``a[i]`` and ``b[i]`` share every numeric test condition of ``frame`` (NaN equals NaN)?"""
    cols = [c for c in NUMERIC_CONDITIONS if c in frame.columns]
    values = frame[cols].to_numpy(float)
    equal = (values[a] == values[b]) | (np.isnan(values[a]) & np.isnan(values[b]))
    return np.asarray(equal.all(axis=1), dtype=bool)


def select_normalised_floor(
    dy: np.ndarray, dp: np.ndarray, sigma: np.ndarray | None, folds: np.ndarray, coverage_level: float = 0.9
) -> float | None:
    """The spread floor (``SPREAD_FLOOR_GRID``) with the narrowest cross-fold delta intervals. Unlike the
    absolute intervals, a constant width is not an option when a spread exists: the user compares
    candidates by P(better), which needs a per-candidate std (the width cost is measured and reported)."""
    if sigma is None:
        return None
    widths = []
    for fraction in SPREAD_FLOOR_GRID:
        lower, upper, _ = cross_fold_intervals(dy, dp, sigma, folds, coverage_level, eps_fraction=fraction)
        widths.append(float(np.mean(upper - lower)))
    return SPREAD_FLOOR_GRID[int(np.argmin(widths))]


def fit_relative_calibration(oof: pd.DataFrame, coverage_level: float = 0.9) -> RelativeCalibration:
    """Calibrate delta intervals on every out-of-fold pair of rows of one held-out study."""
    a, b = study_pairs(oof["group"].to_numpy())
    if len(a) < 20:
        raise ValueError(f"relative calibration needs at least 20 within-study pairs, got {len(a)}")
    dy, dp, pair_sigma, folds = _pair_arrays(oof, a, b)
    floor = select_normalised_floor(dy, dp, pair_sigma, folds, coverage_level)
    sigma = None if floor is None else pair_sigma
    fraction = SPREAD_FLOOR_GRID[0] if floor is None else floor
    cal = fit_conformal(dy, dp, sigma, coverage_level, eps_fraction=fraction)
    k = anchor_shrinkage(oof, a, b)
    resid = oof["y_true"].to_numpy(float) - oof["prediction"].to_numpy(float)
    anchored = fit_conformal(resid[a] - k * resid[b], np.zeros(len(a)), None, coverage_level)
    return RelativeCalibration(cal, n_pairs=len(a), anchor_shrinkage=k, anchored=anchored)


def anchor_shrinkage(oof: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> float:
    """Least-squares share k of an anchor row's residual to add to another row of its study, in [0, 1]:
    ``k = sum r_a r_b / sum r_b^2`` over held-out pairs (both orders), r = measured - predicted."""
    r = oof["y_true"].to_numpy(float) - oof["prediction"].to_numpy(float)
    num = float(np.sum(r[a] * r[b]))  # symmetric: both orders give the same numerator
    den = float(np.sum(r[a] ** 2 + r[b] ** 2)) / 2.0
    return float(np.clip(num / den, 0.0, 1.0)) if den > 0 else 0.0


def anchor_weight(n_anchors: int, k1: float) -> float:
    """Share of the mean residual of ``n_anchors`` measured rows of one study to add to another row of it:
    ``k_n = n k1 / (1 + (n - 1) k1)``, the random-effects weight with ``k1`` (``anchor_shrinkage``) as the
    one-anchor weight; 0 without anchors or with k1 = 0."""
    if n_anchors <= 0 or k1 <= 0:
        return 0.0
    return float(n_anchors * k1 / (1.0 + (n_anchors - 1) * k1))


def _cross_fold_delta(oof: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Honest delta intervals of pairs (calibrated on the other folds' pairs only)."""
    dy, dp, pair_sigma, folds = _pair_arrays(oof, a, b)
    floor = select_normalised_floor(dy, dp, pair_sigma, folds)
    sigma = None if floor is None else pair_sigma
    fraction = SPREAD_FLOOR_GRID[0] if floor is None else floor
    lower, upper, std = cross_fold_intervals(dy, dp, sigma, folds, eps_fraction=fraction)
    return pd.DataFrame({"dy": dy, "dp": dp, "lower": lower, "upper": upper, "std": std})


def _cross_fold_anchored(oof: pd.DataFrame, a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """Leave-one-row-in per study, honestly: row b of a held-out paper is the measured anchor, row a is
    predicted as ``p_a + k (y_b - p_b)``; k and the interval come from the other folds' pairs only.
    Both orders of every pair are scored."""
    a, b = np.concatenate([a, b]), np.concatenate([b, a])
    y = oof["y_true"].to_numpy(float)
    p = oof["prediction"].to_numpy(float)
    folds = oof["fold"].to_numpy()[a]
    out = pd.DataFrame({"y": y[a], "full": p[a] + (y[b] - p[b])})
    anchored = np.empty(len(a))
    lower = np.empty(len(a))
    upper = np.empty(len(a))
    ks = np.empty(len(a))
    r = y - p
    for fold in np.unique(folds):
        test = folds == fold
        train = ~test
        k = anchor_shrinkage(oof, a[train], b[train])
        cal = fit_conformal(r[a[train]] - k * r[b[train]], np.zeros(int(train.sum())), None)
        anchored[test] = p[a[test]] + k * r[b[test]]
        lower[test], upper[test] = cal.interval(anchored[test], None)
        ks[test] = k
    out["anchored"], out["lower"], out["upper"], out["k"] = anchored, lower, upper, ks
    return out


def _served_cross_fold_delta(oof: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Every within-study pair with the served calibration's honest intervals: calibrated, like
    ``fit_relative_calibration``, on every pair of the other folds (any distance, any protocol)."""
    a, b = study_pairs(oof["group"].to_numpy())
    return a, b, _cross_fold_delta(oof, a, b)


def _pair_measures(rel: pd.DataFrame, ra: np.ndarray, rb: np.ndarray) -> dict[str, float]:
    """Delta MAE, "no change" MAE, q90 |delta error|, coverage and width of some pairs' cross-fold
    intervals, and their residual correlation (``anchor_shrinkage``'s estimator on these pairs)."""
    if len(rel) == 0:
        keys = ("delta_mae", "no_change_mae", "q90_abs_error", "coverage_90", "width_90", "residual_corr")
        return {"n": 0.0} | dict.fromkeys(keys, float("nan"))
    err = np.abs(rel["dy"].to_numpy(float) - rel["dp"].to_numpy(float))
    den = float(np.sum(ra**2 + rb**2)) / 2.0
    return {
        "n": float(len(rel)),
        "delta_mae": float(err.mean()),
        "no_change_mae": float(np.mean(np.abs(rel["dy"]))),
        "q90_abs_error": float(np.quantile(err, 0.9)),
        "coverage_90": coverage(rel["dy"], rel["lower"], rel["upper"]),
        "width_90": float(np.mean(rel["upper"] - rel["lower"])),
        "residual_corr": float(np.sum(ra * rb)) / den if den > 0 else float("nan"),
    }


def delta_by_distance(oof: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """Held-out within-study pairs by the L1 distance of their compositions (``DISTANCE_BINS``; 0 = the same
    formula under another protocol), split by same / different protocol: per bin ``_pair_measures`` of the
    served calibration's cross-fold intervals. Does a pair closer in composition have more correlated
    residuals and a smaller delta error? (Measured: barely; see the README.)"""
    a, b, rel = _served_cross_fold_delta(oof)
    r = (oof["y_true"] - oof["prediction"]).to_numpy(float)
    dist = pair_distances(kept["formula"], a, b)
    same = same_protocol(kept, a, b)
    edges = np.asarray(DISTANCE_BINS)
    bins = np.where(dist <= 0.0, 0, np.searchsorted(edges, dist, side="left"))
    rows = []
    for protocol, m_protocol in (("same", same), ("different", ~same)):
        for k in range(len(edges)):
            m = m_protocol & (bins == k)
            label = "0" if k == 0 else f"({edges[k - 1]:g}, {edges[k]:g}]"
            measures = _pair_measures(rel.loc[m], r[a[m]], r[b[m]])
            rows.append({"protocol": protocol, "distance": label, **measures})
    return pd.DataFrame(rows)


def _near_host_report(oof: pd.DataFrame, kept: pd.DataFrame) -> dict[str, float]:
    """``_pair_measures`` of the near-host pairs (``NEAR_HOST_DISTANCE``, same protocol) and of every pair,
    both with the served calibration's cross-fold intervals."""
    a, b, rel = _served_cross_fold_delta(oof)
    r = (oof["y_true"] - oof["prediction"]).to_numpy(float)
    dist = pair_distances(kept["formula"], a, b)
    near = same_protocol(kept, a, b) & (dist > 0) & (dist <= NEAR_HOST_DISTANCE)
    out: dict[str, float] = {}
    for prefix, m in (("near_host", near), ("all_pairs", np.ones(len(a), dtype=bool))):
        for key, value in _pair_measures(rel.loc[m], r[a[m]], r[b[m]]).items():
            out[f"{prefix}_{key}"] = value
    return out


def relative_report(oof: pd.DataFrame, kept: pd.DataFrame) -> dict[str, float]:
    """The issue-8 measures from an out-of-fold table (rows aligned with ``kept``, the training rows):

    absolute MAE / coverage / Spearman(|err|, std) for the model and the median baseline on the same folds;
    within-paper pair concordance (same cycles, different formula, >= 5 points apart); relative MAE and
    delta-interval coverage on same-cycle pairs (delta of the median baseline is 0); anchored MAE and
    coverage (leave-one-row-in per paper: every row of a paper in turn is the one measured row); and the
    served delta calibration (every pair of the other folds) scored on near-host pairs (``near_host_*``:
    same protocol, L1 distance of atomic fractions <= ``NEAR_HOST_DISTANCE``) and on every pair
    (``all_pairs_*``)."""
    y = oof["y_true"].to_numpy(float)
    pred = oof["prediction"].to_numpy(float)
    groups = oof["group"].to_numpy()
    dummy = dummy_median_oof(y, oof["fold"].to_numpy(), groups)
    formulas = kept["formula"].to_numpy(object)
    cycles = kept["cycles"].to_numpy(float)
    out: dict[str, float] = {
        "n": float(len(y)),
        "mae": mae(y, pred),
        "dummy_mae": mae(y, dummy["prediction"]),
        "coverage_90": coverage(y, oof["lower_90"], oof["upper_90"]),
        "width_90": float(np.mean(oof["upper_90"] - oof["lower_90"])),
        "spearman_abs_err_std": spearman(np.abs(y - pred), oof["std"]),
        "std_distinct": float(np.unique(np.round(oof["std"].to_numpy(float), 6)).size),
    }
    out["mae_ratio"] = out["mae"] / out["dummy_mae"]
    a, b = within_study_pairs(groups, formulas, y, same=cycles, min_gap=MIN_PAIR_GAP)
    out["n_concordance_pairs"] = float(len(a))
    out["concordance"] = pair_concordance(y, pred, a, b)
    same_a, same_b = within_study_pairs(groups, formulas, y, same=cycles)
    rel = _cross_fold_delta(oof, same_a, same_b)
    out["n_relative_pairs"] = float(len(same_a))
    out["relative_mae"] = mae(rel["dy"], rel["dp"])
    out["relative_dummy_mae"] = float(np.mean(np.abs(rel["dy"])))
    out["relative_coverage_90"] = coverage(rel["dy"], rel["lower"], rel["upper"])
    out["relative_width_90"] = float(np.mean(rel["upper"] - rel["lower"]))
    out["relative_spearman_abs_err_std"] = spearman(np.abs(rel["dy"] - rel["dp"]), rel["std"])
    all_a, all_b = study_pairs(groups)
    anchored = _cross_fold_anchored(oof, all_a, all_b)
    out["n_anchored_pairs"] = float(len(all_a))
    out["anchored_mae"] = mae(anchored["y"], anchored["anchored"])
    out["anchored_full_offset_mae"] = mae(anchored["y"], anchored["full"])
    out["anchor_shrinkage"] = float(anchored["k"].mean())
    out["anchored_coverage_90"] = coverage(anchored["y"], anchored["lower"], anchored["upper"])
    out["anchored_width_90"] = float(np.mean(anchored["upper"] - anchored["lower"]))
    # the same pairs scored absolutely (what anchoring improves on) and the baseline "measured anchor as is"
    both = np.concatenate([all_a, all_b])
    out["anchored_pairs_absolute_mae"] = float(np.mean(np.abs(y[both] - pred[both])))
    out["anchored_pairs_dummy_mae"] = float(np.mean(np.abs(y[both] - dummy["prediction"].to_numpy()[both])))
    out["anchored_copy_anchor_mae"] = float(np.mean(np.abs(y[all_a] - y[all_b])))
    out.update(_near_host_report(oof, kept))
    return out


class RelativeUncertainRegressor(UncertainRegressor):
    """``UncertainRegressor`` + the calibration of within-study differences (``relative_calibration_``).

    Same parameters and contract; ``fit(X, y, groups)`` additionally calibrates delta intervals on the
    out-of-fold within-study pairs (``models.relative.fit_relative_calibration``)."""

    def fit(self, X: pd.DataFrame, y: Any, groups: Any = None) -> RelativeUncertainRegressor:
        super().fit(X, y, groups)
        self.relative_calibration_ = fit_relative_calibration(self.oof_, self.coverage)
        return self

    def predict_mean_spread(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Point prediction and the regressor's raw (uncalibrated) spread per row."""
        X = self._check_frame(X)
        z = transform_steps(self.estimator_.steps[:-1], X)
        return predict_mean_std(self.estimator_[-1], z)


# ------------------------------------------------------------------------------------------ serving API
@dataclass(frozen=True)
class AnchorOffset:
    """The user's lab offset from their own measured rows: ``mean(measured - predicted)`` over ``n`` rows."""

    offset: float
    n: int


def _with_conditions(frame: pd.DataFrame, conditions: Mapping[str, Any] | None) -> pd.DataFrame:
    out = frame.copy()
    for key, value in (conditions or {}).items():
        if key == "formula":
            raise ValueError("conditions cannot set 'formula'")
        if key not in out.columns:
            out[key] = value
        else:
            out[key] = [value if pd.isna(v) else v for v in out[key]]
    return out


def _mean_spread(model: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Unclipped point predictions and the raw spread (None without one), in one pass when the model
    offers ``predict_mean_spread`` (its mean is ``predict``'s: ``models.estimators.spread``)."""
    if frame.empty:
        return np.zeros(0), None
    method = getattr(model, "predict_mean_spread", None)
    if callable(method):
        mean, sigma = method(frame)
        return np.asarray(mean, dtype=float), None if sigma is None else np.asarray(sigma, dtype=float)
    return np.asarray(model.predict(frame), dtype=float), None


def _answered_mean_spread(
    model: Any, frame: pd.DataFrame, answers: pd.DataFrame, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """``_mean_spread`` of ``frame``'s selected ``rows``, read from ``answers``' RAW_OUTPUTS when they
    cover those rows (``predict_frame(..., raw=True)``: no second featurisation and model pass), else
    predicted again."""
    if all(c in answers.columns for c in RAW_OUTPUTS):
        mean = answers["raw_mean"].to_numpy(float)[rows]
        if np.isfinite(mean).all():
            spread = answers["raw_spread"].to_numpy(float)[rows]
            return mean, spread if np.isfinite(spread).all() else None
    return _mean_spread(model, frame.loc[rows])


def relative_calibration(model: Any) -> RelativeCalibration:
    """The model's relative calibration; ValueError asking for a retrain when it has none."""
    cal = getattr(model, "relative_calibration_", None)
    if not isinstance(cal, RelativeCalibration):
        raise ValueError(
            "this model has no relative calibration (trained before relative predictions existed): retrain "
            "it with `nascreen train --target <target>`"
        )
    return cal


def has_relative_calibration(predictor: Any) -> bool:
    """Can this predictor answer relative predictions (delta vs a reference, P(better))?"""
    return isinstance(
        getattr(getattr(predictor, "model", None), "relative_calibration_", None), RelativeCalibration
    )


def _condition_groups(frame: pd.DataFrame) -> np.ndarray:
    """One group number per row for each distinct combination of the non-formula columns (NaN = NaN)."""
    cols = [c for c in frame.columns if c != "formula"]
    if not cols or frame.empty:
        return np.zeros(len(frame), dtype=np.int64)
    return np.asarray(frame[cols].groupby(cols, dropna=False, sort=False).ngroup(), dtype=np.int64)


def reference_rows(candidates: pd.DataFrame, reference: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The reference's input rows, one per distinct protocol (the non-formula columns) of ``candidates``
    in order of first appearance, and per candidate the position of its reference row."""
    cand = candidates.reset_index(drop=True)
    r_of = _condition_groups(cand)  # ngroup: 0..G-1 in order of first appearance
    first = np.unique(r_of, return_index=True)[1]
    ref = cand.iloc[first].reset_index(drop=True).copy()
    ref["formula"] = reference
    return ref, r_of


def relative_values(
    predictor: Any,
    candidates: pd.DataFrame,
    answers: pd.DataFrame,
    reference: str,
    anchor: AnchorOffset | None = None,
    reference_answers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The relative columns for candidates already answered by ``predictor.predict_frame`` (``answers``,
    same rows): the core of ``predict_relative`` and of screening (``screening.scoring``), which has the
    absolute answers already. The reference is predicted once per distinct protocol (the non-formula
    columns), not once per row. Returns ``RELATIVE_COLUMNS`` minus ``formula`` and the model version,
    indexed 0..n-1; ``error`` says why a row has no relative numbers (its own error or the reference's).
    ``reference_answers``: the answers to ``reference_rows(candidates, reference)`` when the caller predicted
    them with the candidates (one model pass; a reference equal to a candidate row is answered once)."""
    target = TargetName(predictor.target)
    cal = relative_calibration(predictor.model)
    cand = candidates.reset_index(drop=True)
    n = len(cand)
    ref, r_of = reference_rows(cand, reference)
    r_answer = predict_frame_raw(predictor, ref) if reference_answers is None else reference_answers
    r_err = r_answer["error"].to_numpy(object)[r_of]
    c_err = answers["error"].to_numpy(object)
    good = np.array([not c and not r for c, r in zip(c_err, r_err, strict=True)], dtype=bool)
    out = {c: np.full(n, np.nan) for c in RELATIVE_COLUMNS if c not in _TEXT_RELATIVE}
    out["reference_prediction"] = r_answer["prediction"].to_numpy(float)[r_of]
    out["prediction"] = answers["prediction"].to_numpy(float)
    if good.any():
        r_good = np.zeros(len(ref), dtype=bool)
        r_good[np.unique(r_of[good])] = True
        r_mean = np.full(len(ref), np.nan)
        r_sigma = np.full(len(ref), np.nan)
        m, s = _answered_mean_spread(predictor.model, ref, r_answer, r_good)
        r_mean[r_good] = m
        if s is not None:
            r_sigma[r_good] = s
        c_mean, c_sigma = _answered_mean_spread(predictor.model, cand, answers, good)
        d = c_mean - r_mean[r_of[good]]
        pair_sigma = None if c_sigma is None or s is None else pair_spread(d, c_sigma, r_sigma[r_of[good]])
        half = cal.half_width(pair_sigma, len(d))
        std = half / cal.calibration.z
        out["delta"][good], out["delta_std"][good] = d, std
        out["delta_lower_90"][good], out["delta_upper_90"][good] = d - half, d + half
        sign = 1.0 if TARGETS[target].higher_is_better else -1.0
        out["p_better"][good] = norm.cdf(sign * d / np.maximum(std, 1e-12))
        if anchor is not None:
            _anchored(out, good, c_mean, half, cal, anchor, target)
    out["n_anchors"] = np.full(n, 0 if anchor is None else anchor.n)
    domain = answers["in_domain"].to_numpy(bool) & r_answer["in_domain"].to_numpy(bool)[r_of]
    c_reason = answers["domain_reason"].to_numpy(object)
    r_reason = r_answer["domain_reason"].to_numpy(object)[r_of]
    frame = pd.DataFrame(out)
    frame.insert(0, "reference_formula", reference)
    frame["in_domain"] = domain
    frame["domain_reason"] = [
        c if c else (f"reference: {r}" if r else "") for c, r in zip(c_reason, r_reason, strict=True)
    ]
    frame["error"] = [
        c if c else (f"reference {reference!r}: {r}" if r else "") for c, r in zip(c_err, r_err, strict=True)
    ]
    return frame


_TEXT_RELATIVE = (
    "formula",
    "reference_formula",
    "n_anchors",
    "in_domain",
    "domain_reason",
    "model_version",
    "error",
)


def _anchored(
    out: dict[str, np.ndarray],
    good: np.ndarray,
    c_mean: np.ndarray,
    half: np.ndarray,
    cal: RelativeCalibration,
    anchor: AnchorOffset,
    target: TargetName,
) -> None:
    """Anchored absolute values: several anchors' mean residual is less noisy, so the shrinkage is
    ``k_n = n k / (1 + (n - 1) k)`` (the random-effects weight with k the one-anchor weight); the width is
    that of one anchor (conservative)."""
    k = anchor_weight(anchor.n, cal.anchor_shrinkage)
    anchored = out["anchored_prediction"]
    anchored[good] = c_mean + k * anchor.offset
    a_cal = cal.anchored or cal.calibration
    a_half = a_cal.half_width(None, int(good.sum())) if not a_cal.normalized else half
    out["anchored_lower_90"][good] = anchored[good] - a_half
    out["anchored_upper_90"][good] = anchored[good] + a_half
    bounds = TARGETS[target].value_range
    if bounds is not None:
        for name in ("anchored_prediction", "anchored_lower_90", "anchored_upper_90"):
            np.clip(out[name], *bounds, out=out[name])


def predict_relative(
    predictor: Any,
    candidates: pd.DataFrame,
    reference: str,
    conditions: Mapping[str, Any] | None = None,
    *,
    anchors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each candidate vs ``reference`` (the host formula) under the candidate row's own protocol.

    ``candidates``: a frame with ``formula`` and the target's condition columns (retention: ``cycles``,
    optional ``current_mA_g``, ``voltage_low_V``, ``voltage_high_V``, ``structure_type``); ``conditions``
    fills condition columns the frame lacks (or leaves empty), for candidates and reference alike.
    ``anchors``: the user's own measured rows (``formula``, the conditions they were measured under, and
    ``measured``; the host, and maybe a few dopants). With anchors, ``anchored_prediction`` is the
    candidate's prediction + k_n x the mean of (measured - predicted) over the n anchors (k_1 fitted on
    held-out papers, ``RelativeCalibration.anchor_shrinkage``), with the interval of one-anchor residuals
    calibrated on held-out papers (conservative for several anchors).

    Returns one row per candidate (same index, columns ``RELATIVE_COLUMNS``): ``delta`` = candidate -
    reference prediction, ``delta_std``/``delta_lower_90``/``delta_upper_90`` from the relative calibration,
    ``p_better`` = P(candidate beats the reference) (higher is better for retention and voltage), the
    anchored columns (NaN without anchors), the candidate's domain flag, and ``error`` (a bad row keeps its
    reason and NaN numbers; a bad reference or anchor raises ValueError naming it)."""
    relative_calibration(predictor.model)
    if "formula" not in candidates.columns:
        raise ValueError("candidates have no 'formula' column")
    try:
        parse_formula(reference)
    except CompositionError as exc:
        raise ValueError(f"reference {reference!r}: {exc}") from None
    cand = _with_conditions(candidates.reset_index(drop=True), conditions)
    anchor = None if anchors is None else anchor_offset(predictor, anchors, conditions)
    values = relative_values(predictor, cand, predict_frame_raw(predictor, cand), reference, anchor)
    values.insert(0, "formula", cand["formula"].to_numpy(object))
    values["model_version"] = predictor.model_version
    out = values.loc[:, list(RELATIVE_COLUMNS)]
    out.index = candidates.index
    return out


def assess_anchors(
    predictor: Any, anchors: pd.DataFrame, conditions: Mapping[str, Any] | None = None
) -> tuple[AnchorOffset | None, pd.DataFrame]:
    """Each measured row on its own: ``prediction`` (unclipped), ``residual`` (measured - prediction) and
    ``error`` (why the row cannot anchor: not predictable, measured not a number). The offset is taken over
    the good rows only (None when there is none): a bad row is reported, the others still anchor."""
    if MEASURED_COLUMN not in anchors.columns or "formula" not in anchors.columns:
        raise ValueError(f"anchors need 'formula' and {MEASURED_COLUMN!r} columns")
    if anchors.empty:
        raise ValueError("anchors are empty: give at least one measured row or no anchors")
    frame = _with_conditions(anchors.reset_index(drop=True), conditions)
    measured = pd.to_numeric(frame[MEASURED_COLUMN], errors="coerce").to_numpy(float)
    inputs = frame.drop(columns=[MEASURED_COLUMN])
    answer = predict_frame_raw(predictor, inputs)  # with the raw mean: one model pass, not two
    errors = [
        str(err) if err else ("" if np.isfinite(value) else "measured value is not a number")
        for err, value in zip(answer["error"], measured, strict=True)
    ]
    good = np.array([not e for e in errors], dtype=bool)
    prediction = np.full(len(frame), np.nan)
    if good.any():
        prediction[good] = _answered_mean_spread(predictor.model, inputs, answer, good)[0]
    rows = pd.DataFrame(
        {
            "formula": frame["formula"].to_numpy(object),
            "measured": measured,
            "prediction": prediction,
            "residual": measured - prediction,
            "error": errors,
        }
    )
    offset = AnchorOffset(float(np.mean(rows["residual"][good])), int(good.sum())) if good.any() else None
    return offset, rows


def anchor_offset(
    predictor: Any, anchors: pd.DataFrame, conditions: Mapping[str, Any] | None = None
) -> AnchorOffset:
    """The lab offset of the user's measured rows; raises ValueError naming the first bad anchor row."""
    offset, rows = assess_anchors(predictor, anchors, conditions)
    for i, (formula, err) in enumerate(zip(rows["formula"], rows["error"], strict=True)):
        if err:
            raise ValueError(f"anchor row {i} ({formula!r}): {err}")
    assert offset is not None
    return offset
