"""Normalised split-conformal calibration on out-of-fold residuals.

Nonconformity of a held-out row: ``|y - yhat| / (sigma_hat + eps)`` when the regressor gives a spread
``sigma_hat`` (forest trees, ensemble members), else ``|y - yhat|``. The calibrated half-width of the
interval is ``q * (sigma_hat + eps)`` where ``q`` is the finite-sample conformal quantile of the scores:
the ``ceil((n + 1) * coverage)``-th smallest of ``n`` scores, which guarantees ``>= coverage`` marginal
coverage for exchangeable rows. With grouped CV the held-out rows belong to unseen groups (papers, DOIs,
chemical systems), so the guarantee is about new groups, which is what a screening user asks.

``eps`` is a floor on the spread, relative to the typical spread (``eps_fraction * median(sigma_hat)``), so a
row where all trees agree (sigma ~ 0) cannot blow its score up to infinity.

The reported ``std`` is the calibrated half-width divided by the standard normal quantile of the interval
(``z_0.95`` = 1.645 for a 90% interval): the std of a normal with the same central interval.

How much to trust the spread is itself chosen on held-out data: ``select_spread_floor`` tries a few floors
(``eps_fraction`` x median spread; a large floor makes the width nearly constant) and absolute residuals, and
keeps the one whose cross-fold intervals are narrowest on average. Every candidate is calibrated to the same
coverage, so this chooses efficiency (how well the width tracks the error), not coverage.

``cross_fold_intervals`` gives honest out-of-fold intervals for evaluation: the rows of each fold get the
quantile calibrated on the *other* folds' scores only, so the reported coverage is not calibrated on itself.

Mondrian (category-conditional) calibration (``fit_mondrian``): the quantile of the scores is taken per
category (for conductivity: the applicability domain's chemistry class, models.domain.chemistry_classes) on
the pooled calibration's scale (same spread floor), for every category with at least
``min_calibration_rows(coverage)`` held-out rows (9 for 90%: the fewest for which the finite-sample quantile
exists); a rarer or unseen category keeps the pooled quantile. The guarantee then holds within each
calibrated category instead of only on average over all rows, so a class whose held-out residuals are
larger than the pooled rows' (Na halides among mostly Li oxides) gets wider intervals rather than being
under-covered.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.stats import norm

_DEFAULT_EPS_FRACTION = 0.05


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """Finite-sample conformal quantile: the ceil((n+1)*coverage)-th smallest score.

    Raises ValueError when there are too few scores for the requested coverage (n < coverage/(1-coverage)),
    since no finite interval then carries the guarantee.
    """
    _check_coverage(coverage)
    s = np.sort(np.asarray(scores, dtype=float))
    if not np.isfinite(s).all():
        raise ValueError("conformal scores must be finite")
    n = len(s)
    k = math.ceil((n + 1) * coverage - 1e-9)  # tolerance: (n + 1) * 0.9 must not round up past an integer
    if k > n:
        need = min_calibration_rows(coverage)
        raise ValueError(
            f"conformal calibration needs at least {need} held-out residuals "
            f"for {coverage:.0%} coverage, got {n}"
        )
    return float(s[k - 1])


@lru_cache(maxsize=64)
def normal_quantile(coverage: float) -> float:
    """z of a central normal interval with this coverage (1.645 for 0.9): std = half-width / z.

    Cached (a pure function of one float): ``norm.ppf`` costs ~0.3 ms and ``std`` asks for it on every
    prediction call."""
    _check_coverage(coverage)
    return float(norm.ppf(0.5 + coverage / 2.0))


def min_calibration_rows(coverage: float) -> int:
    """The fewest scores for which ``conformal_quantile`` exists: ceil(coverage / (1 - coverage))."""
    _check_coverage(coverage)
    return math.ceil(coverage / (1.0 - coverage) - 1e-9)


def _check_coverage(coverage: float) -> None:
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must be in (0, 1), got {coverage!r}")


@dataclass(frozen=True)
class ConformalCalibration:
    """A fitted conformal scale: ``interval(yhat, sigma) = yhat +- quantile * (sigma + eps)``."""

    coverage: float
    quantile: float
    normalized: bool  # True: scores were divided by (sigma + eps); False: absolute residuals
    eps: float  # absolute spread floor (0 when not normalised)
    n_calibration: int

    @property
    def z(self) -> float:
        """Standard normal quantile matching the central interval (1.645 for 90%)."""
        return normal_quantile(self.coverage)

    def half_width(self, sigma: np.ndarray | None, n: int) -> np.ndarray:
        """Calibrated half-width for ``n`` predictions with spread ``sigma`` (None: constant width)."""
        if not self.normalized:
            return np.full(n, self.quantile)
        if sigma is None:
            raise ValueError("this calibration was fitted on normalised scores: sigma is required")
        sigma = np.asarray(sigma, dtype=float)
        if sigma.shape != (n,):
            raise ValueError(f"sigma must have shape ({n},), got {sigma.shape}")
        return np.asarray(self.quantile * (np.maximum(sigma, 0.0) + self.eps))

    def interval(self, yhat: np.ndarray, sigma: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bound of the calibrated interval around ``yhat``."""
        yhat = np.asarray(yhat, dtype=float)
        h = self.half_width(sigma, len(yhat))
        return yhat - h, yhat + h

    def std(self, sigma: np.ndarray | None, n: int) -> np.ndarray:
        """Calibrated std: half-width / z (normal with the same central interval)."""
        return self.half_width(sigma, n) / self.z


@dataclass(frozen=True)
class MondrianCalibration:
    """Per-category conformal quantiles on the scale of ``pooled`` (its spread floor, normalised or not):
    a row of a category in ``quantiles`` takes that category's quantile, any other row the pooled one."""

    pooled: ConformalCalibration
    quantiles: dict[Hashable, float] = field(default_factory=dict)
    counts: dict[Hashable, int] = field(default_factory=dict)  # calibration rows per calibrated category

    def row_quantiles(self, categories: Sequence[Hashable]) -> np.ndarray:
        """The quantile each row takes (its category's, else the pooled one)."""
        q = self.pooled.quantile
        return np.array([self.quantiles.get(c, q) for c in categories], dtype=float)

    def half_width(self, sigma: np.ndarray | None, categories: Sequence[Hashable]) -> np.ndarray:
        """Calibrated half-width per row: its quantile times (sigma + eps), or the quantile itself."""
        n = len(categories)
        unit = ConformalCalibration(self.pooled.coverage, 1.0, self.pooled.normalized, self.pooled.eps, 0)
        return np.asarray(self.row_quantiles(categories) * unit.half_width(sigma, n))

    def interval(
        self, yhat: np.ndarray, sigma: np.ndarray | None, categories: Sequence[Hashable]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bound of each row's calibrated interval around ``yhat``."""
        yhat = np.asarray(yhat, dtype=float)
        if len(categories) != len(yhat):
            raise ValueError(f"got {len(categories)} categories for {len(yhat)} predictions")
        h = self.half_width(sigma, categories)
        return yhat - h, yhat + h

    def std(self, sigma: np.ndarray | None, categories: Sequence[Hashable]) -> np.ndarray:
        """Calibrated std per row: half-width / z."""
        return self.half_width(sigma, categories) / self.pooled.z


def fit_mondrian(
    y: np.ndarray,
    yhat: np.ndarray,
    sigma: np.ndarray | None,
    categories: Sequence[Hashable],
    pooled: ConformalCalibration,
) -> MondrianCalibration:
    """Category-conditional quantiles of the held-out scores on ``pooled``'s scale (``fit_conformal`` on
    the same rows): every category with at least ``min_calibration_rows`` rows gets its own."""
    if len(categories) != len(y):
        raise ValueError(f"got {len(categories)} categories for {len(y)} held-out rows")
    s = sigma if pooled.normalized else None
    scores = nonconformity_scores(y, yhat, s, pooled.eps)
    need = min_calibration_rows(pooled.coverage)
    rows: dict[Hashable, list[int]] = {}
    for i, c in enumerate(categories):
        rows.setdefault(c, []).append(i)
    quantiles = {c: conformal_quantile(scores[r], pooled.coverage) for c, r in rows.items() if len(r) >= need}
    return MondrianCalibration(pooled, quantiles, {c: len(rows[c]) for c in quantiles})


def nonconformity_scores(
    y: np.ndarray, yhat: np.ndarray, sigma: np.ndarray | None, eps: float = 0.0
) -> np.ndarray:
    """``|y - yhat| / (sigma + eps)`` or ``|y - yhat|`` when sigma is None."""
    resid: np.ndarray = np.abs(np.asarray(y, dtype=float) - np.asarray(yhat, dtype=float))
    if sigma is None:
        return resid
    return np.asarray(resid / (np.maximum(np.asarray(sigma, dtype=float), 0.0) + eps))


def spread_floor(sigma: np.ndarray, eps_fraction: float = _DEFAULT_EPS_FRACTION) -> float:
    """Absolute spread floor: ``eps_fraction`` x the median spread (a tiny positive number if that is 0)."""
    med = float(np.median(np.asarray(sigma, dtype=float)))
    return max(eps_fraction * med, 1e-12)


def fit_conformal(
    y: np.ndarray,
    yhat: np.ndarray,
    sigma: np.ndarray | None,
    coverage: float = 0.9,
    *,
    eps: float | None = None,
    eps_fraction: float = _DEFAULT_EPS_FRACTION,
) -> ConformalCalibration:
    """Calibrate on held-out (out-of-fold) predictions; ``sigma=None`` gives constant-width intervals."""
    _check_coverage(coverage)
    y = np.asarray(y, dtype=float)
    yhat = np.asarray(yhat, dtype=float)
    if y.shape != yhat.shape or y.ndim != 1:
        raise ValueError(f"y and yhat must be 1-D of the same length, got {y.shape} and {yhat.shape}")
    if sigma is None:
        q = conformal_quantile(nonconformity_scores(y, yhat, None), coverage)
        return ConformalCalibration(coverage, q, normalized=False, eps=0.0, n_calibration=len(y))
    sigma = np.asarray(sigma, dtype=float)
    if sigma.shape != y.shape:
        raise ValueError(f"sigma must have the shape of y {y.shape}, got {sigma.shape}")
    floor = spread_floor(sigma, eps_fraction) if eps is None else float(eps)
    q = conformal_quantile(nonconformity_scores(y, yhat, sigma, floor), coverage)
    return ConformalCalibration(coverage, q, normalized=True, eps=floor, n_calibration=len(y))


SPREAD_FLOOR_GRID = (0.05, 0.25, 1.0, 4.0)


def select_spread_floor(
    y: np.ndarray,
    yhat: np.ndarray,
    sigma: np.ndarray | None,
    folds: np.ndarray,
    coverage: float = 0.9,
    grid: tuple[float, ...] = SPREAD_FLOOR_GRID,
) -> float | None:
    """The ``eps_fraction`` (or None: absolute residuals) whose cross-fold intervals are narrowest on average.

    Ties go to the earlier (more spread-adaptive) option; sigma None always gives None.
    """
    if sigma is None:
        return None
    widths: list[tuple[float, float | None]] = []
    for option in (*grid, None):
        s = None if option is None else sigma
        fraction = _DEFAULT_EPS_FRACTION if option is None else option
        lower, upper, _ = cross_fold_intervals(y, yhat, s, folds, coverage, eps_fraction=fraction)
        widths.append((float(np.mean(upper - lower)), option))
    best_width = min(w for w, _ in widths)
    return next(option for w, option in widths if w <= best_width + 1e-12)


def cross_fold_intervals(
    y: np.ndarray,
    yhat: np.ndarray,
    sigma: np.ndarray | None,
    folds: np.ndarray,
    coverage: float = 0.9,
    *,
    eps_fraction: float = _DEFAULT_EPS_FRACTION,
    categories: Sequence[Hashable] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Honest out-of-fold (lower, upper, std): each fold's rows are calibrated on the other folds only
    (with ``categories``: Mondrian, ``fit_mondrian`` on the other folds' rows)."""
    folds = np.asarray(folds)
    y = np.asarray(y, dtype=float)
    yhat = np.asarray(yhat, dtype=float)
    lower = np.empty_like(yhat)
    upper = np.empty_like(yhat)
    std = np.empty_like(yhat)
    for fold in np.unique(folds):
        test = folds == fold
        train = ~test
        s_train = None if sigma is None else np.asarray(sigma)[train]
        s_test = None if sigma is None else np.asarray(sigma)[test]
        cal = fit_conformal(y[train], yhat[train], s_train, coverage, eps_fraction=eps_fraction)
        if categories is None:
            lower[test], upper[test] = cal.interval(yhat[test], s_test)
            std[test] = cal.std(s_test, int(test.sum()))
            continue
        cats = list(categories)
        cats_train = [cats[i] for i in np.flatnonzero(train)]
        cats_test = [cats[i] for i in np.flatnonzero(test)]
        mondrian = fit_mondrian(y[train], yhat[train], s_train, cats_train, cal)
        lower[test], upper[test] = mondrian.interval(yhat[test], s_test, cats_test)
        std[test] = mondrian.std(s_test, cats_test)
    return lower, upper, std
