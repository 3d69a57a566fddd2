"""The raw predictive spread of a fitted regressor: per-tree spread for forests, member spread for ensembles.

The spread is a *relative* difficulty signal (sigma_hat); it is turned into calibrated intervals by the
conformal step (models/conformal.py), which also handles regressors that give no spread (sigma_hat None).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.ensemble import BaggingRegressor, ExtraTreesRegressor, RandomForestRegressor
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.linear_model import ARDRegression, BayesianRidge

from models.estimators.mlp_ensemble import MLPEnsembleRegressor

_RETURN_STD = (GaussianProcessRegressor, BayesianRidge, ARDRegression)


def predict_mean_std(regressor: Any, Xt: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean prediction and a spread estimate (or None) of a fitted regressor on already transformed ``Xt``.

    - RandomForestRegressor / ExtraTreesRegressor: standard deviation of the per-tree predictions.
    - BaggingRegressor: standard deviation of the member predictions.
    - MLPEnsembleRegressor: standard deviation of the ensemble members.
    - StudyOffsetRegressor: its own ``predict_mean_std`` (tree spread and/or a residual-scale model).
    - GaussianProcessRegressor, BayesianRidge, ARDRegression: their own predictive std.
    - anything else (GradientBoosting, HistGradientBoosting, linear models, ...): None.
    The mean is always ``regressor.predict(Xt)``, so it equals what the pipeline's ``predict`` returns.
    """
    if hasattr(regressor, "predict_mean_std"):  # a regressor that knows its own spread (models.transfer)
        mean, std = regressor.predict_mean_std(Xt)
        return np.asarray(mean, dtype=float), None if std is None else np.asarray(std, dtype=float)
    if isinstance(regressor, MLPEnsembleRegressor):
        mean, std = regressor.predict(Xt, return_std=True)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    if isinstance(regressor, _RETURN_STD):
        mean, std = regressor.predict(Xt, return_std=True)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
    if isinstance(regressor, RandomForestRegressor | ExtraTreesRegressor) and regressor.n_outputs_ == 1:
        return _forest_mean_std(regressor, Xt)
    mean = np.asarray(regressor.predict(Xt), dtype=float)
    if isinstance(regressor, BaggingRegressor):
        X = np.asarray(Xt)
        per_member = np.stack(
            [
                est.predict(X[:, feats])
                for est, feats in zip(regressor.estimators_, regressor.estimators_features_, strict=True)
            ]
        )
        return mean, _column_std(per_member)
    return mean, None


#: Up to this many rows a forest is walked with all its trees at once (``_stacked_walk``); above, tree by
#: tree. Measured on the 150-tree conductivity forest, one thread: 1 row ~0.2 vs ~0.4-1.0 ms; the stacked
#: walk loses from ~8 rows on (its cost grows with rows x depth in NumPy, the per-tree walk's in C).
STACKED_MAX_ROWS = 4
#: ... and beyond that while rows x the forest's depth stays within this: the stacked walk's cost grows with
#: rows x depth. Measured per forest (one thread, load ~1.8): the conductivity Na forest (depth 22) walks
#: 8 / 12 / 16 rows stacked in 0.60 / 1.02 / 1.17 ms vs 1.02 / 1.34 / 1.38 ms tree by tree (32 rows: 2.17
#: vs 1.59); the voltage forest (depth 35) crosses at ~6-8 rows (6: 1.28 vs 1.26 ms)
STACKED_MAX_CELLS = 224


def _forest_mean_std(
    forest: RandomForestRegressor | ExtraTreesRegressor, Xt: Any
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the trees for both the mean and the spread (``forest.predict`` would walk every tree
    a second time, in joblib threads that oversubscribe a Ray worker's single core). The mean is summed
    in tree order and divided by the number of trees, exactly as ``forest.predict`` does with n_jobs=1,
    so it is bit-for-bit the same. A few finite rows take ``_stacked_walk`` (same leaves, same values)."""
    per_tree = forest_per_tree(forest, Xt)
    return forest_mean(per_tree), _column_std(per_tree)


def forest_per_tree(forest: RandomForestRegressor | ExtraTreesRegressor, Xt: Any) -> np.ndarray:
    """(trees x rows) predictions of a fitted single-output forest on ``Xt`` (checked by ``forest_input``):
    a few finite rows walked by all trees at once (``_stacked_walk``), else tree by tree; the same values."""
    X = forest_input(forest, Xt)
    if _stacked_rows(forest, X.shape[0]) and not sparse.issparse(X) and np.isfinite(X).all():
        return _stacked_walk(_stack(forest), X)
    return _per_tree_walk(forest, X)


def _stacked_rows(forest: Any, rows: int) -> bool:
    """Walk ``rows`` rows with all trees at once (``STACKED_MAX_ROWS``, ``STACKED_MAX_CELLS``)?"""
    if rows <= STACKED_MAX_ROWS:
        return True
    return rows <= STACKED_MAX_CELLS and rows * _stack(forest).depth <= STACKED_MAX_CELLS


def forest_mean(per_tree: np.ndarray) -> np.ndarray:
    """``forest.predict`` from the per-tree predictions: sequential, in tree order, forest.predict's running
    sum from 0.0 (the + 0.0 makes a -0.0 sum +0.0 as that running sum would), divided by the tree count;
    bit for bit what ``predict`` gives with one thread (the server's per-request limits)."""
    mean: np.ndarray = np.cumsum(per_tree, axis=0)[-1] + 0.0
    mean /= per_tree.shape[0]
    return mean


def forest_predict(regressor: Any, X: Any) -> np.ndarray:
    """``regressor.predict(X)``: from ``forest_per_tree`` for a single-output random/extra-trees forest
    (sklearn's predict dispatches each tree through joblib: ~25 us a tree), else its own ``predict``."""
    if isinstance(regressor, RandomForestRegressor | ExtraTreesRegressor) and regressor.n_outputs_ == 1:
        return forest_mean(forest_per_tree(regressor, X))
    return np.asarray(regressor.predict(X))


def forest_input(forest: RandomForestRegressor | ExtraTreesRegressor, Xt: Any) -> Any:
    """``forest._validate_X_predict(Xt)``: the float32 matrix the trees walk. A dense, finite float64 2-D
    array of the fitted width, for a forest fitted without feature names, is cast directly (the array
    sklearn's check returns: ``X.astype(float32)``, C-ordered); sklearn's check (check_is_fitted, tags,
    ``validate_data``) cost ~0.25 ms per call, a tenth of a one-row prediction's model time. Anything else
    (NaN, inf, sparse, DataFrames, other dtypes or widths) goes through sklearn's check and its errors."""
    if getattr(forest, "estimators_", None) and plain_finite_input(forest, Xt):
        return np.ascontiguousarray(Xt, dtype=np.float32)
    return forest._validate_X_predict(Xt)


def plain_finite_input(est: Any, X: Any) -> bool:
    """Is ``X`` a dense, finite float64 2-D array with rows, of the width ``est`` was fitted on, for an
    estimator fitted without feature names: an input sklearn's predict-time check
    (``validate_data(est, X, reset=False, dtype=np.float64)``) passes unchanged? Anything else goes
    through that check and its errors."""
    return (
        isinstance(X, np.ndarray)
        and X.dtype == np.float64
        and X.ndim == 2
        and X.shape[0] > 0
        and X.shape[1] == getattr(est, "n_features_in_", -1)
        and not hasattr(est, "feature_names_in_")
        and bool(np.isfinite(X).all())
    )


def _per_tree_walk(forest: RandomForestRegressor | ExtraTreesRegressor, X: Any) -> np.ndarray:
    """(trees x rows) predictions, one tree at a time: the low-level walk ``tree.predict(X,
    check_input=False)`` ends in, without its per-tree check_is_fitted / feature-count check /
    is_classifier (sklearn tags: ~30 us per tree); the forest checked X. Same values: (n, 1) -> [:, 0]."""
    trees = forest.estimators_
    per_tree = np.empty((len(trees), X.shape[0]), dtype=np.float64)
    for i, tree in enumerate(trees):
        per_tree[i] = tree.tree_.predict(X)[:, 0]
    return per_tree


@dataclass(frozen=True)
class _StackedTrees:
    """Every tree's nodes in one set of arrays (node ids offset per tree); a leaf points to itself.
    ``children[2 * node]`` is the node's left child, ``children[2 * node + 1]`` its right one."""

    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int


#: Per fitted forest its stacked arrays, kept beside the object so the pickled model is unchanged.
_STACKS: weakref.WeakKeyDictionary[Any, _StackedTrees] = weakref.WeakKeyDictionary()


def _stack(forest: Any) -> _StackedTrees:
    stacked = _STACKS.get(forest)
    if stacked is not None:
        return stacked
    feature, threshold, left, right, value, roots = [], [], [], [], [], []
    offset = 0
    for est in forest.estimators_:
        tree = est.tree_
        ids = np.arange(tree.node_count, dtype=np.intp) + offset
        leaf = tree.children_left < 0
        roots.append(offset)
        feature.append(np.where(leaf, 0, tree.feature).astype(np.intp))
        threshold.append(np.where(leaf, np.inf, tree.threshold))
        left.append(np.where(leaf, ids, tree.children_left + offset).astype(np.intp))
        right.append(np.where(leaf, ids, tree.children_right + offset).astype(np.intp))
        value.append(tree.value[:, 0, 0])
        offset += tree.node_count
    stacked = _StackedTrees(
        feature=np.concatenate(feature),
        threshold=np.concatenate(threshold),
        children=np.stack([np.concatenate(left), np.concatenate(right)], axis=1).ravel(),
        value=np.concatenate(value).astype(np.float64),
        roots=np.asarray(roots, dtype=np.intp),
        depth=max(int(est.tree_.max_depth) for est in forest.estimators_),
    )
    _STACKS[forest] = stacked
    return stacked


def _stacked_walk(trees: _StackedTrees, X: np.ndarray) -> np.ndarray:
    """(trees x rows) predictions, all trees a level at a time: the same test as sklearn's tree walk
    (``X[row, feature] <= threshold`` goes left, the float32 input against the float64 threshold), so the
    same leaves and values. Finite input only (a NaN would need the trees' missing-value routing).

    The input is cast to float64 once (exact: NumPy compared each float32 cell as that float64 anyway, and
    a mixed-type comparison per level cost more than the cast), the cells are read from the flat matrix
    and the next node is one lookup in ``children`` (left, right interleaved): the one-row walk of the
    conductivity forest went from ~0.29 to ~0.10-0.17 ms."""
    n, width = X.shape
    values = np.asarray(X, dtype=np.float64)
    if n == 1:
        x = values[0]
        node = trees.roots.copy()
        for _ in range(trees.depth):
            node = trees.children[2 * node + (x[trees.feature[node]] > trees.threshold[node])]
        walked_one: np.ndarray = trees.value[node][:, None]
        return walked_one
    flat = values.ravel()
    offsets = (np.arange(n) * width)[None, :]
    pos = np.repeat(trees.roots[:, None], n, axis=1)
    for _ in range(trees.depth):
        pos = trees.children[2 * pos + (flat[offsets + trees.feature[pos]] > trees.threshold[pos])]
    walked: np.ndarray = trees.value[pos]
    return walked


def _column_std(per_member: np.ndarray) -> np.ndarray:
    if per_member.ndim == 3:  # multi-output: not used by the single-target models here
        raise ValueError("predict_mean_std supports single-output regressors only")
    return np.asarray(per_member.std(axis=0), dtype=float)
