"""StudyOffsetRegressor: what a composition (and the test conditions) does, separated from what a study does.

Capacity retention from the literature mixes two things: the material under its test protocol, and the
paper's own cell build (electrolyte, loading, binder, separator, who assembled it). About half of the
variance lies between papers, so a plain regressor learns paper averages as if they were composition
effects. This estimator fits the mixed-effects model

    y_ij = f(x_ij) + b_j + e_ij,   b_j ~ N(0, tau^2) (study j),   e_ij ~ N(0, sigma^2)

by alternation (MERF-style: Hajjem, Bellavance & Larocque 2014): fit ``f`` on ``y - b``, re-estimate each
study's offset as its shrunken mean residual ``b_j = sum_i r_ij / (n_j + lambda)`` with
``lambda = sigma^2 / tau^2`` estimated by moments (one-way ANOVA) on every pass. The residuals are the
forest's *out-of-bag* ones, so the offsets are not absorbed by trees that memorised their own rows.

The forest alone orders the compositions *within* a paper poorly (it spends its splits on what separates
papers). A within-study (fixed-effects) ridge fixes that: ``beta`` fitted on features and labels demeaned
per study, so it learns only from differences inside one paper (the dopant, its fraction, the cycle count
of one material). ``f`` is the blend ``linear_weight * (Z beta + c) + (1 - linear_weight) * forest``
(``linear_alpha=None``: forest only). Measured under grouped CV by DOI: the forest alone orders 65-67% of
the within-paper pairs (>= 5 points apart, same cycles) correctly, the within-study ridge 73-76%, the
blend 77-78% at the forest's absolute MAE.

Shrinkage of the forest part (``shrink_folds``): the absolute retention of a paper nobody has seen is
mostly its unknown offset, and the forest (which learns paper levels) overshoots on a new paper. With
``shrink_folds`` the served ``f`` is ``level + w Z beta + alpha (1 - w) forest``: the within-study ridge
(what orders rows of one paper) kept as is, the forest part scaled by ``alpha`` (0.05 grid in [0.1, 1]) and
the level L1-optimal (a median), both fitted on inner grouped folds (each fold's studies unseen by the
parts that predict them). Measured under grouped CV by DOI (``benchmarks/retention_study.py``, fold seeds
0 and 1): alpha 0.3-0.5, absolute MAE 13.21 vs 13.45 unshrunk (median 13.66), concordance 0.757 vs 0.746;
shrinking the whole ``f`` instead gave 13.05 (seed 0) but cut every predicted difference (delta MAE 15.6
vs 15.0).

``predict`` gives the population-level ``f(x)``: a new study's offset is unknown (expected 0), and any
difference between two predictions (dopant vs host under one protocol) is free of it, which is what
``models.relative`` builds on. The study offsets of the training papers are kept (``study_offsets_``).

Spread (``predict_mean_std``): a per-row difficulty signal for the conformal step, chosen by ``spread``:
- ``"trees"``: the per-tree spread of ``f`` (as for a plain forest);
- ``"residual"``: a second forest trained on ``|y - f_oob(x)|`` (the total out-of-bag error, study offset
  included) from the features and ``f`` itself (low predicted retention scatters more), so rows whose
  kind of test scatters more between papers (long cycling, high rates) get wider
  intervals; calibrated to coverage by the caller (``models.conformal``), never used raw;
- ``"both"``: the root sum of squares of the two;
plus, with ``ceiling`` and ``headroom_weight``, ``headroom_weight * max(ceiling - f, 0)``: a retention
predicted far below 100 % scatters more (Spearman(|error|, 100 - f) 0.20 on held-out DOIs, as large as the
spread's own 0.21; added with weight 0.3: 0.23 raw).

sklearn contract: ``__init__`` stores, ``fit(X, y, groups=None)`` learns (``groups=None``: each row its own
study, i.e. no offsets), learned state ends in ``_``, ``predict`` checks it is fitted.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold
from sklearn.utils.validation import check_is_fitted, validate_data

SPREADS = ("trees", "residual", "both")
SHRINK_GRID = tuple(np.round(np.arange(0.1, 1.0001, 0.05), 2))  # alpha > 0 keeps every ordering
_MIN_OOB_COVERED = 0.9  # share of rows with an out-of-bag prediction below which in-sample residuals are used


def _forest_per_tree(forest: Any, X: np.ndarray) -> np.ndarray:
    """Per-tree predictions (n_trees, n_rows) of a fitted single-output forest (``forest_per_tree``)."""
    from models.estimators.spread import forest_per_tree  # spread imports torch (the MLP ensemble)

    return forest_per_tree(forest, X)


def study_variance_ratio(residuals: np.ndarray, groups: np.ndarray) -> float:
    """``lambda = sigma^2 / tau^2`` from a one-way random-effects ANOVA (method of moments) on residuals.

    Large when studies do not differ (offsets shrink to 0); ``inf`` when the between-study variance is not
    above what within-study noise alone gives (then no offsets are fitted)."""
    r = pd.Series(np.asarray(residuals, dtype=float))
    g = pd.Series(np.asarray(groups))
    sizes = g.value_counts()
    k = len(sizes)
    n = len(r)
    if k < 2 or n <= k:
        return float("inf")
    means = r.groupby(g).mean()
    within = float(((r - g.map(means).to_numpy()) ** 2).sum()) / (n - k)
    between_ms = float((sizes * (means.reindex(sizes.index) - r.mean()) ** 2).sum()) / (k - 1)
    n0 = (n - float((sizes**2).sum()) / n) / (k - 1)
    tau2 = (between_ms - within) / n0
    if not tau2 > 1e-12:
        return float("inf")
    return max(within, 1e-12) / tau2


class StudyOffsetRegressor(RegressorMixin, BaseEstimator):
    """Forest ``f(x)`` + shrunken per-study offsets, fitted by alternation; predicts ``f(x)`` (see module).

    Parameters
    ----------
    estimator : a RandomForestRegressor or ExtraTreesRegressor (bootstrap + out-of-bag residuals are used;
        default: a 100-tree random forest). Cloned, never fitted in place.
    n_iter : alternation passes (1 fits ``f`` once on the raw labels and only estimates offsets).
    linear_alpha : ridge penalty of the within-study linear part (None: no linear part).
    linear_weight : weight of the linear part in the blend (0..1).
    spread : "trees", "residual" or "both" (what ``predict_mean_std`` returns as spread).
    scale_min_samples_leaf : leaf size of the residual-scale forest (smooth on purpose).
    ceiling, headroom_weight : a bounded label's upper end (retention: 100) and the weight of the headroom
        term ``headroom_weight * max(ceiling - f, 0)`` added to the spread (None / 0: none).
    shrink_folds : inner grouped folds that fit the shrinkage of ``f`` towards a robust level (None or 0:
        no shrinkage; needs ``groups`` with at least that many studies, else no shrinkage is fitted).
    random_state : seed of the residual-scale forest and of the inner folds (the main forest keeps its own).
    """

    def __init__(
        self,
        estimator: Any = None,
        *,
        n_iter: int = 1,
        linear_alpha: float | None = 50.0,
        linear_weight: float = 0.5,
        spread: str = "residual",
        scale_min_samples_leaf: int = 10,
        shrink_folds: int | None = None,
        ceiling: float | None = None,
        headroom_weight: float = 0.0,
        random_state: int | None = 0,
    ) -> None:
        self.estimator = estimator
        self.n_iter = n_iter
        self.linear_alpha = linear_alpha
        self.linear_weight = linear_weight
        self.spread = spread
        self.scale_min_samples_leaf = scale_min_samples_leaf
        self.shrink_folds = shrink_folds
        self.ceiling = ceiling
        self.headroom_weight = headroom_weight
        self.random_state = random_state

    def _base(self) -> Any:
        if self.estimator is None:
            return RandomForestRegressor(
                n_estimators=100, min_samples_leaf=2, max_features=0.3, n_jobs=1, random_state=0
            )
        if not isinstance(self.estimator, RandomForestRegressor | ExtraTreesRegressor):
            raise TypeError(
                "StudyOffsetRegressor needs a RandomForestRegressor or ExtraTreesRegressor, got "
                f"{type(self.estimator).__name__}"
            )
        return clone(self.estimator)

    def fit(self, X: Any, y: Any, groups: Any = None) -> StudyOffsetRegressor:
        if self.spread not in SPREADS:
            raise ValueError(f"spread must be one of {', '.join(SPREADS)}, got {self.spread!r}")
        if not isinstance(self.n_iter, int | np.integer) or self.n_iter < 1:
            raise ValueError(f"n_iter must be a positive integer, got {self.n_iter!r}")
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        y = np.asarray(y, dtype=float)
        g = np.arange(len(y)) if groups is None else np.asarray(groups)
        if g.shape != y.shape:
            raise ValueError(f"groups must have one value per row ({len(y)}), got shape {g.shape}")
        codes, uniques = pd.factorize(pd.Series(g).astype(str))
        if not 0.0 <= float(self.linear_weight) <= 1.0:
            raise ValueError(f"linear_weight must be in [0, 1], got {self.linear_weight!r}")
        if not float(self.headroom_weight) >= 0.0:
            raise ValueError(f"headroom_weight must be >= 0, got {self.headroom_weight!r}")
        folds = 0 if self.shrink_folds is None else self.shrink_folds
        if not isinstance(folds, int | np.integer) or folds < 0 or folds == 1:
            raise ValueError(f"shrink_folds must be None, 0 or an integer >= 2, got {self.shrink_folds!r}")
        self.shrink_: tuple[float, float] | None = None  # (alpha, level) of the forest part's shrinkage
        held_out: np.ndarray | None = None  # inner grouped-fold predictions (with shrinkage only)
        if folds >= 2 and groups is not None and len(uniques) >= folds:
            self.shrink_, held_out = self._fit_shrinkage(X, y, codes, int(folds))
        self.linear_ = None if self.linear_alpha is None else self._fit_within(X, y, codes)
        offsets = np.zeros(len(uniques))
        base = self._base().set_params(bootstrap=True, oob_score=True)
        ratio = float("inf")
        forest: Any = None
        for _ in range(int(self.n_iter)):
            with warnings.catch_warnings():  # tiny forests (tests) leave a few rows without OOB trees
                warnings.filterwarnings("ignore", message="Some inputs do not have OOB scores")
                forest = clone(base).fit(X, y - offsets[codes])
            fitted = self._oob_or_insample(forest, X)
            resid = y - fitted
            ratio = study_variance_ratio(resid, codes) if groups is not None else float("inf")
            if not np.isfinite(ratio):
                offsets[:] = 0.0
                break
            sums = np.bincount(codes, weights=resid, minlength=len(uniques))
            sizes = np.bincount(codes, minlength=len(uniques))
            offsets = sums / (sizes + ratio)
        self.estimator_ = forest
        self.variance_ratio_ = ratio
        self.study_offsets_ = dict(zip(uniques.tolist(), offsets.tolist(), strict=True))
        fitted = self._blend(self._oob_or_insample(forest, X), X)
        # the error a new study sees: inner grouped-fold predictions when there are (the out-of-bag ones of
        # a forest that saw the row's own paper miss the paper's offset)
        total_error = np.abs(y - (fitted if held_out is None else held_out))
        self.scale_estimator_ = None
        if self.spread in ("residual", "both"):
            self.scale_estimator_ = RandomForestRegressor(
                n_estimators=60,
                min_samples_leaf=int(self.scale_min_samples_leaf),
                max_features=0.3,
                n_jobs=1,
                random_state=self.random_state,
            ).fit(np.column_stack([X, fitted]), total_error)
        return self

    def _fit_shrinkage(
        self, X: np.ndarray, y: np.ndarray, codes: np.ndarray, folds: int
    ) -> tuple[tuple[float, float], np.ndarray]:
        """``(alpha, level)`` minimising the inner-fold MAE of ``level + w Z beta + alpha (1 - w) forest``
        (both parts fitted per fold without that fold's studies; ``level`` the L1-optimal median), and
        the inner-fold predictions with them."""
        inner = clone(self).set_params(shrink_folds=None, spread="trees")
        w = 0.0 if self.linear_alpha is None else float(self.linear_weight)
        forest = np.empty(len(y))
        linear = np.zeros(len(y))
        cv = GroupKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
        for train, test in cv.split(X, y, codes):
            fitted = clone(inner).fit(X[train], y[train], codes[train])
            forest[test] = _forest_per_tree(fitted.estimator_, X[test]).mean(axis=0)
            if fitted.linear_ is not None:
                linear[test] = X[test] @ fitted.linear_[0]
        rest = y - w * linear
        best = (float("inf"), 1.0, 0.0)
        for alpha in SHRINK_GRID:
            part = alpha * (1.0 - w) * forest
            level = float(np.median(rest - part))
            loss = float(np.mean(np.abs(rest - part - level)))
            if loss < best[0] - 1e-12:
                best = (loss, float(alpha), level)
        alpha, level = best[1], best[2]
        return (alpha, level), level + w * linear + alpha * (1.0 - w) * forest

    def _fit_within(self, X: np.ndarray, y: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, float]:
        """Within-study ridge: (coefficients, intercept) from per-study demeaned features and labels."""
        frame = pd.DataFrame(X)
        Xd = (frame - frame.groupby(codes).transform("mean")).to_numpy()
        yd = y - pd.Series(y).groupby(codes).transform("mean").to_numpy()
        ridge = Ridge(alpha=float(self.linear_alpha or 0.0), fit_intercept=False).fit(Xd, yd)
        coef = np.asarray(ridge.coef_, dtype=float)
        return coef, float(np.mean(y - X @ coef))

    def _blend(self, forest_pred: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The served prediction from the forest's: ``w (Z beta + c) + (1 - w) forest``, or with the
        shrinkage (``shrink_``) ``level + w Z beta + alpha (1 - w) forest``."""
        w = 0.0 if self.linear_ is None else float(self.linear_weight)
        linear = 0.0 if self.linear_ is None else X @ self.linear_[0]
        shrink = getattr(self, "shrink_", None)  # absent: fitted before the shrinkage existed
        if shrink is None:
            intercept = 0.0 if self.linear_ is None else self.linear_[1]
            return np.asarray(w * (linear + intercept) + (1.0 - w) * forest_pred)
        alpha, level = shrink
        return np.asarray(level + w * linear + alpha * (1.0 - w) * forest_pred)

    @staticmethod
    def _oob_or_insample(forest: Any, X: np.ndarray) -> np.ndarray:
        oob = getattr(forest, "oob_prediction_", None)
        if oob is None:
            return np.asarray(forest.predict(X), dtype=float)
        oob = np.asarray(oob, dtype=float).reshape(-1)
        finite = np.isfinite(oob)
        if finite.mean() < _MIN_OOB_COVERED:
            return np.asarray(forest.predict(X), dtype=float)
        if not finite.all():
            oob = oob.copy()
            oob[~finite] = np.asarray(forest.predict(X[~finite]), dtype=float)
        return oob

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self._blend(_forest_per_tree(self.estimator_, X).mean(axis=0), X)  # = predict_mean_std's

    def predict_members(self, X: Any) -> np.ndarray:
        """Per-tree predictions of ``f`` (each tree blended with the linear part), shape (n_trees, n_rows);
        their mean is ``predict``."""
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.stack([self._blend(t, X) for t in _forest_per_tree(self.estimator_, X)])

    def predict_mean_std(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """``f(x)`` and the spread chosen by ``spread`` (a relative difficulty signal, see module)."""
        from models.estimators.spread import forest_predict, plain_finite_input

        check_is_fitted(self, "estimator_")
        # sklearn's check passes a plain finite float64 array of the fitted width unchanged
        X = X if plain_finite_input(self, X) else validate_data(self, X, reset=False, dtype=np.float64)
        per_tree = _forest_per_tree(self.estimator_, X)
        mean = self._blend(per_tree.mean(axis=0), X)
        w = 0.0 if self.linear_ is None else float(self.linear_weight)
        shrink = getattr(self, "shrink_", None)
        alpha = 1.0 if shrink is None else shrink[0]
        trees = alpha * (1.0 - w) * per_tree.std(axis=0)
        if self.scale_estimator_ is None:
            return mean, trees + self._headroom(mean)
        scale_input = np.column_stack([X, mean])
        residual = np.maximum(
            np.asarray(forest_predict(self.scale_estimator_, scale_input), dtype=float), 0.0
        )
        if self.spread == "residual":
            return mean, residual + self._headroom(mean)
        return mean, np.sqrt(trees**2 + residual**2) + self._headroom(mean)

    def _headroom(self, mean: np.ndarray) -> np.ndarray | float:
        """``headroom_weight * max(ceiling - f, 0)``: a bounded label scatters more the further below its
        ceiling it is predicted (0 without a ceiling)."""
        ceiling = getattr(self, "ceiling", None)
        weight = float(getattr(self, "headroom_weight", 0.0))
        if ceiling is None or weight == 0.0:
            return 0.0
        return weight * np.maximum(float(ceiling) - mean, 0.0)
