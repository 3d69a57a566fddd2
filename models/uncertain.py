"""UncertainRegressor: the whole model artifact of one target.

A scikit-learn Pipeline (features -> impute/scale -> regressor) + a conformal calibration fitted on
grouped-CV out-of-fold residuals + an applicability domain whose distance threshold is chosen on the same
grouped CV. ``fit`` runs the grouped CV once and keeps its out-of-fold table (``oof_``) for evaluation, then
refits the pipeline on all rows; so one object trains, evaluates and serves with identical features.

Honest out-of-fold intervals: ``oof_`` intervals of a fold are calibrated on the *other* folds' residuals
only (see models.conformal.cross_fold_intervals), so the coverage computed from ``oof_`` is measured on
groups the calibration never saw. The served intervals use the calibration on all out-of-fold residuals.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from featurize.composition import Composition, CompositionError, parse_formulas
from featurize.transformer import check_fitted
from models.conformal import (
    SPREAD_FLOOR_GRID,
    ConformalCalibration,
    MondrianCalibration,
    cross_fold_intervals,
    fit_conformal,
    fit_mondrian,
    select_spread_floor,
)
from models.domain import (
    ApplicabilityDomain,
    ChemClass,
    FeatureSpaceDistance,
    anion_sets,
    chemistry_classes,
    content_excess,
    content_ranges,
    ion_contents,
    plain_anions,
    select_content_tolerance,
)
from models.estimators.spread import predict_mean_std
from models.fast_transform import transform_steps
from models.predictor import RAW_OUTPUTS

logger = logging.getLogger(__name__)

OOF_COLUMNS = (
    "y_true",
    "prediction",
    "std",
    "lower_90",
    "upper_90",
    "group",
    "fold",
    "sigma_hat",
    "knn_distance",
    "class_seen",
)
PREDICTION_COLUMNS = ("prediction", "std", "lower_90", "upper_90", "in_domain", "domain_reason")


def parse_compositions(formulas: pd.Series | list[Any], *, what: str = "formula") -> list[Composition]:
    """Composition of every formula; raises ValueError naming the rows that do not parse."""
    parsed = parse_formulas(list(formulas))
    bad = [(i, p) for i, p in enumerate(parsed) if isinstance(p, CompositionError)]
    if bad:
        shown = "; ".join(f"row {i}: {err}" for i, err in bad[:5])
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise ValueError(f"{len(bad)} {what}(s) could not be parsed: {shown}{more}")
    return [p for p in parsed if isinstance(p, Composition)]


def fit_pipeline(
    estimator: Pipeline, X: pd.DataFrame, y: np.ndarray, groups: np.ndarray | None = None
) -> tuple[Pipeline, np.ndarray]:
    """Fit a clone of ``estimator`` exactly as ``Pipeline.fit`` does (each step ``fit_transform`` then the
    regressor), and also return the training rows' features so they are not computed a second time.
    A regressor whose ``fit`` takes ``groups`` (models.estimators.StudyOffsetRegressor: per-study offsets)
    gets the rows' groups."""
    est = clone(estimator)
    z = est[:-1].fit_transform(X, y)  # the slice shares its step objects with ``est``
    regressor = est.steps[-1][1]
    if groups is not None and "groups" in inspect.signature(regressor.fit).parameters:
        regressor.fit(z, y, groups=groups)
    else:
        regressor.fit(z, y)
    return est, np.asarray(z)


@dataclass
class HeldOut:
    """What the grouped CV of ``UncertainRegressor.fit`` learns about each row while it is held out."""

    pred: np.ndarray
    sigma: np.ndarray | None  # None: the regressor gives no spread
    dist: np.ndarray
    fold: np.ndarray
    class_seen: np.ndarray
    #: log distance of the row's carrier content outside its class's range in its training fold (NaN: no
    #: range, or the carrier-content rule is off)
    content_excess: np.ndarray

    def content_tolerance(self, y: np.ndarray) -> float:
        """The carrier-content tolerance these held-out rows support (``select_content_tolerance``)."""
        return select_content_tolerance(self.content_excess, np.abs(np.asarray(y, dtype=float) - self.pred))


class UncertainRegressor(RegressorMixin, BaseEstimator):
    """Pipeline + conformal intervals + applicability domain, all fitted from grouped cross-validation.

    Parameters
    ----------
    estimator : sklearn Pipeline whose last step is the regressor; the steps before it map the input
        DataFrame to the model's feature space (that space is also the domain's).
    n_splits : grouped-CV folds (capped at the number of distinct groups; at least 2 groups are needed).
    coverage : central coverage of the calibrated interval (the columns keep the ``_90`` names).
    domain_k : neighbours in the feature-space distance.
    domain_quantile : quantile of held-out CV distances used as the domain threshold.
    formula_column : the column whose elements define the element part of the domain.
    domain_ion_elements : the ions of the domain's chemistry-class rule (models.domain.domain_ions gives
        them per target); a query whose (ion, anion set) class no training row has is out of domain. With
        () the class is the anion set alone.
    domain_polyanions : classes also tell polyanion frameworks apart (models.domain.domain_polyanions).
    domain_category_units : the feature-space distance counts a two-valued feature's (a category's)
        mismatch as one unit (models.domain.domain_category_units).
    class_conformal : Mondrian intervals: the conformal quantile is taken per chemistry class of the
        domain (models.conformal.fit_mondrian; classes with too few held-out rows keep the pooled one).
    random_state : seed of the grouped fold assignment.
    """

    def __init__(
        self,
        estimator: Pipeline,
        *,
        n_splits: int = 5,
        coverage: float = 0.9,
        domain_k: int = 5,
        domain_quantile: float = 0.95,
        formula_column: str = "formula",
        domain_ion_elements: tuple[str, ...] = (),
        domain_polyanions: bool = False,
        domain_category_units: bool = False,
        class_conformal: bool = False,
        random_state: int | None = 0,
    ) -> None:
        self.estimator = estimator
        self.n_splits = n_splits
        self.coverage = coverage
        self.domain_k = domain_k
        self.domain_quantile = domain_quantile
        self.formula_column = formula_column
        self.domain_ion_elements = domain_ion_elements
        self.domain_polyanions = domain_polyanions
        self.domain_category_units = domain_category_units
        self.class_conformal = class_conformal
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def _check_frame(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"X must be a pandas DataFrame with a {self.formula_column!r} column, got {type(X)}"
            )
        if self.formula_column not in X.columns:
            cols = ", ".join(map(str, X.columns))
            raise ValueError(f"X has no {self.formula_column!r} column (columns: {cols})")
        return X

    def fit(self, X: pd.DataFrame, y: Any, groups: Any = None) -> UncertainRegressor:
        """Grouped CV (out-of-fold predictions, spread, distances) -> conformal scale + domain threshold;
        then refit the pipeline on all rows. ``groups=None`` makes every row its own group."""
        X, y_arr, g, n_splits = self._fit_inputs(X, y, groups)
        comps, classes, contents = self._domain_inputs(X)
        ions = tuple(self.domain_ion_elements)
        cv = self._grouped_cv(X, y_arr, g, n_splits, classes, contents)
        floor = select_spread_floor(y_arr, cv.pred, cv.sigma, cv.fold, self.coverage)
        sigma_hat = None if floor is None else cv.sigma  # None: absolute residuals gave narrower intervals
        fraction = SPREAD_FLOOR_GRID[0] if floor is None else floor
        self.spread_floor_fraction_ = floor
        self.calibration_: ConformalCalibration = fit_conformal(
            y_arr, cv.pred, sigma_hat, self.coverage, eps_fraction=fraction
        )
        self.class_calibration_: MondrianCalibration | None = None
        if self.class_conformal:
            self.class_calibration_ = fit_mondrian(y_arr, cv.pred, sigma_hat, classes, self.calibration_)
        self.oof_ = self._oof_table(X, y_arr, g, cv, sigma_hat, fraction, classes)
        self.n_splits_ = n_splits
        self.training_elements_ = frozenset().union(*(frozenset(c.elements) for c in comps))

        self.estimator_, z_all = fit_pipeline(self.estimator, X, y_arr, g)
        self.domain_ = ApplicabilityDomain(
            self.domain_k, self.domain_quantile, self.domain_category_units
        ).fit(
            z_all,
            training_elements=self.training_elements_,
            heldout_distances=cv.dist,
            training_classes=classes,
            ion_elements=ions,
            class_support=bool(self.domain_polyanions),
            training_ion_contents=contents,
            content_tolerance=cv.content_tolerance(y_arr) if contents is not None else 0.0,
        )
        logger.info(
            "UncertainRegressor: %d rows, %d groups, %d folds, conformal q=%.3g (%s), domain threshold %.3g, "
            "%.1f%% of held-out rows of an unseen chemistry class",
            len(X),
            len(pd.unique(g)),
            n_splits,
            self.calibration_.quantile,
            "absolute" if floor is None else f"normalised, spread floor {floor} x median",
            self.domain_.threshold_,
            100.0 * float(np.mean(~cv.class_seen)),
        )
        return self

    def heldout(self, X: pd.DataFrame, y: Any, groups: Any = None) -> HeldOut:
        """The grouped CV ``fit`` runs, on these rows alone (nothing refitted or stored): what a domain
        fitted on these rows needs from held-out rows (distances, content excess, predictions)."""
        X, y_arr, g, n_splits = self._fit_inputs(X, y, groups)
        _comps, classes, contents = self._domain_inputs(X)
        return self._grouped_cv(X, y_arr, g, n_splits, classes, contents)

    def _domain_inputs(self, X: pd.DataFrame) -> tuple[list[Composition], list[ChemClass], np.ndarray | None]:
        """Compositions, chemistry classes and (with the carrier-content rule) ion contents of X's rows."""
        comps = parse_compositions(X[self.formula_column], what=self.formula_column)
        ions = tuple(self.domain_ion_elements)
        classes = chemistry_classes(comps, ions, bool(self.domain_polyanions))
        contents = ion_contents(comps, ions) if self.domain_polyanions else None
        return comps, classes, contents

    def _fit_inputs(self, X: Any, y: Any, groups: Any) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, int]:
        """(X, y, groups, folds) checked: a Pipeline estimator, finite 1-D y and groups one per row,
        at least 2 distinct groups (the folds are capped at their number)."""
        X = self._check_frame(X)
        if not isinstance(self.estimator, Pipeline) or len(self.estimator.steps) < 2:
            raise TypeError("estimator must be a sklearn Pipeline (feature steps followed by the regressor)")
        y_arr = np.asarray(y, dtype=float)
        if y_arr.ndim != 1 or len(y_arr) != len(X):
            raise ValueError(f"y must be 1-D with one value per row of X ({len(X)}), got shape {y_arr.shape}")
        if not np.isfinite(y_arr).all():
            raise ValueError(f"y has {int((~np.isfinite(y_arr)).sum())} non-finite value(s)")
        g = np.arange(len(X)) if groups is None else np.asarray(groups)
        if g.shape != (len(X),):
            raise ValueError(f"groups must have one value per row of X ({len(X)}), got shape {g.shape}")
        missing = pd.isna(g)
        if missing.any():
            raise ValueError(
                f"groups has {int(missing.sum())} missing value(s) (first at row {int(np.argmax(missing))})"
            )
        n_groups = len(pd.unique(g))
        n_splits = min(int(self.n_splits), n_groups)
        if n_splits < 2:
            raise ValueError(f"grouped CV needs at least 2 distinct groups, got {n_groups}")
        return X, y_arr, g, n_splits

    def _grouped_cv(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        g: np.ndarray,
        n_splits: int,
        classes: Sequence[ChemClass],
        contents: np.ndarray | None = None,
    ) -> HeldOut:
        """Each fold's held-out rows: prediction, spread, kNN distance to its training rows, whether its
        chemistry class occurs among them and (with ``contents``) its carrier-content excess."""
        n = len(X)
        sigma = np.empty(n)
        out = HeldOut(
            pred=np.empty(n), sigma=sigma, dist=np.empty(n), fold=np.empty(n, dtype=int),
            class_seen=np.empty(n, dtype=bool), content_excess=np.full(n, np.nan),
        )  # fmt: skip
        ions = tuple(self.domain_ion_elements)
        have_sigma = True
        cv = GroupKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
        for k, (train, test) in enumerate(cv.split(X, y, g)):
            est, z_train = fit_pipeline(self.estimator, X.iloc[train], y[train], g[train])
            z_test = est[:-1].transform(X.iloc[test])
            mean, spread = predict_mean_std(est[-1], z_test)
            out.pred[test] = mean
            if spread is None:
                have_sigma = False
            else:
                sigma[test] = spread
            units = bool(getattr(self, "domain_category_units", False))  # absent: a model fitted before it
            out.dist[test] = FeatureSpaceDistance(self.domain_k, units).fit(z_train).mean_knn_distance(z_test)
            out.fold[test] = k
            seen_pairs = frozenset().union(*(classes[i] for i in train))
            out.class_seen[test] = [classes[i] <= seen_pairs for i in test]
            if contents is not None:
                ranges = content_ranges([classes[i] for i in train], contents[train], ions)
                out.content_excess[test] = content_excess(
                    [classes[i] for i in test], contents[test], ranges, ions
                )
        if not have_sigma:
            out.sigma = None
        return out

    def _oof_table(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        g: np.ndarray,
        cv: HeldOut,
        sigma_hat: np.ndarray | None,
        fraction: float,
        classes: Sequence[ChemClass],
    ) -> pd.DataFrame:
        """The out-of-fold table (OOF_COLUMNS): each fold's intervals calibrated on the other folds (per
        chemistry class with ``class_conformal``)."""
        lower, upper, std = cross_fold_intervals(
            y, cv.pred, sigma_hat, cv.fold, self.coverage, eps_fraction=fraction,
            categories=classes if self.class_conformal else None,
        )  # fmt: skip
        return pd.DataFrame(
            {
                "y_true": y,
                "prediction": cv.pred,
                "std": std,
                "lower_90": lower,
                "upper_90": upper,
                "group": g,
                "fold": cv.fold,
                "sigma_hat": cv.sigma if cv.sigma is not None else np.full(len(X), np.nan),
                "knn_distance": cv.dist,
                "class_seen": cv.class_seen,
            },
            index=X.index,
        )

    # ------------------------------------------------------------------ predict
    def calibrated_interval(
        self, mean: Any, sigma: Any, classes: Sequence[ChemClass] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lower, upper, std) of the served conformal interval around ``mean`` given the regressor's
        spread ``sigma``: per chemistry class (``classes``) when the model calibrated per class
        (``class_conformal``), else (or without ``classes``) the pooled calibration."""
        check_fitted(self, "calibration_")
        mean = np.asarray(mean, dtype=float)
        if not self.calibration_.normalized:
            sigma = None
        mondrian = getattr(self, "class_calibration_", None)  # absent: a model fitted before it
        if mondrian is not None and classes is not None:
            lower, upper = mondrian.interval(mean, sigma, classes)
            return lower, upper, mondrian.std(sigma, classes)
        lower, upper = self.calibration_.interval(mean, sigma)
        return lower, upper, self.calibration_.std(sigma, len(mean))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(self._check_frame(X)), dtype=float)

    def predict_with_uncertainty(self, X: pd.DataFrame) -> pd.DataFrame:
        """prediction, std, lower_90, upper_90, in_domain, domain_reason (and knn_distance) per row of X.

        Assumes every formula parses (the Predictor validates rows first); a formula that does not parse
        raises a ValueError naming the row.
        """
        check_is_fitted(self, "estimator_")
        X = self._check_frame(X)
        arrays = self.predict_with_uncertainty_arrays(X)
        return pd.DataFrame({k: v for k, v in arrays.items() if k not in RAW_OUTPUTS}, index=X.index)

    def predict_with_uncertainty_arrays(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """The columns of ``predict_with_uncertainty`` as NumPy arrays (``domain_reason`` an object array
        of str), without building a DataFrame: reading columns back out of a fresh mixed-dtype frame
        cost ~1 ms per call on the one-row serving path (the Predictor uses this). Also ``RAW_OUTPUTS``:
        the unclipped mean and the regressor's raw spread (NaN without one), what relative predictions
        need (``models.relative.relative_values``), so they need no second featurisation pass."""
        check_fitted(self, "estimator_")
        X = self._check_frame(X)
        z = transform_steps(self.estimator_.steps[:-1], X)  # = estimator_[:-1].transform(X), less overhead
        mean, sigma = predict_mean_std(self.estimator_[-1], z)
        raw_spread = np.full(len(mean), np.nan) if sigma is None else np.asarray(sigma, dtype=float)
        comps = parse_compositions(X[self.formula_column], what=self.formula_column)
        element_sets = [frozenset(c.elements) for c in comps]
        classes = None
        sets = None  # one charge-balance pass for the classes and the contents
        polyanions = bool(getattr(self, "domain_polyanions", False))  # absent: a model fitted before it
        if getattr(self.domain_, "class_counts_", None) is not None:  # None/absent: rule off (older model)
            sets = anion_sets(comps, polyanions)
            classes = chemistry_classes(comps, self.domain_.ion_elements_, polyanions, anions=sets)
        contents = None
        if getattr(self.domain_, "content_ranges_", None):  # absent: a model fitted before the rule
            plain = None if sets is None else plain_anions(sets) if polyanions else sets
            contents = ion_contents(comps, self.domain_.ion_elements_, anions=plain)
        lower, upper, std = self.calibrated_interval(mean, sigma, classes)
        in_domain, reasons, dist = self.domain_.assess(z, element_sets, classes, contents)
        reason_arr = np.empty(len(reasons), dtype=object)
        reason_arr[:] = reasons
        return {
            "prediction": np.asarray(mean, dtype=float),
            "std": np.asarray(std, dtype=float),
            "lower_90": np.asarray(lower, dtype=float),
            "upper_90": np.asarray(upper, dtype=float),
            "in_domain": np.asarray(in_domain, dtype=bool),
            "domain_reason": reason_arr,
            "knn_distance": np.asarray(dist, dtype=float),
            "raw_mean": np.asarray(mean, dtype=float),
            "raw_spread": raw_spread,
        }
