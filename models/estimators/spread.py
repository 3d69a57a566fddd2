"""The raw predictive spread of a fitted regressor: per-tree spread for forests, member spread for ensembles.

The spread is a *relative* difficulty signal (sigma_hat); it is turned into calibrated intervals by the
conformal step (models/conformal.py), which also handles regressors that give no spread (sigma_hat None).
"""

from __future__ import annotations

from typing import Any

import numpy as np
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


def _forest_mean_std(
    forest: RandomForestRegressor | ExtraTreesRegressor, Xt: Any
) -> tuple[np.ndarray, np.ndarray]:
    """One pass over the trees for both the mean and the spread (``forest.predict`` would walk every tree
    a second time, in joblib threads that oversubscribe a Ray worker's single core). The mean is summed
    in tree order and divided by the number of trees, exactly as ``forest.predict`` does with n_jobs=1,
    so it is bit-for-bit the same."""
    X = forest._validate_X_predict(Xt)  # the forest's own input check: float32, feature count
    trees = forest.estimators_
    per_tree = np.empty((len(trees), X.shape[0]), dtype=np.float64)
    mean = np.zeros(X.shape[0], dtype=np.float64)
    for i, tree in enumerate(trees):
        # The low-level tree walk ``tree.predict(X, check_input=False)`` ends in, without its per-tree
        # check_is_fitted / feature-count check / is_classifier (sklearn tags: ~30 us per tree, 150 trees
        # = most of a one-row predict); the forest checked X above. Same values: (n, 1) -> [:, 0].
        per_tree[i] = tree.tree_.predict(X)[:, 0]
        mean += per_tree[i]
    mean /= len(trees)
    return mean, _column_std(per_tree)


def _column_std(per_member: np.ndarray) -> np.ndarray:
    if per_member.ndim == 3:  # multi-output: not used by the single-target models here
        raise ValueError("predict_mean_std supports single-output regressors only")
    return np.asarray(per_member.std(axis=0), dtype=float)
