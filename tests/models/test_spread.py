"""predict_mean_std: which regressors give a spread and that it is the spread of their members."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import (
    BaggingRegressor,
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import BayesianRidge, Ridge

from models.estimators import MLPEnsembleRegressor, predict_mean_std


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    X = rng.randn(80, 4)
    return X, X[:, 0] + 0.3 * rng.randn(80)


@pytest.mark.parametrize("cls", [RandomForestRegressor, ExtraTreesRegressor])
def test_forest_spread_is_the_per_tree_std(cls: type) -> None:
    X, y = _data()
    forest = cls(n_estimators=15, random_state=0).fit(X, y)
    mean, std = predict_mean_std(forest, X[:10])
    per_tree = np.stack([t.predict(X[:10]) for t in forest.estimators_])
    np.testing.assert_allclose(mean, forest.predict(X[:10]))
    np.testing.assert_allclose(mean, per_tree.mean(axis=0))
    assert std is not None
    np.testing.assert_allclose(std, per_tree.std(axis=0))
    assert (std > 0).any()


def test_ensemble_and_bayesian_spreads() -> None:
    X, y = _data()
    mlp = MLPEnsembleRegressor((8,), n_members=3, max_epochs=10, random_state=0).fit(X, y)
    mean, std = predict_mean_std(mlp, X)
    assert std is not None
    np.testing.assert_allclose(std, mlp.predict_std(X))
    bag = BaggingRegressor(Ridge(), n_estimators=5, max_features=2, random_state=0).fit(X, y)
    mean, std = predict_mean_std(bag, X)
    assert std is not None and (std > 0).all()
    np.testing.assert_allclose(mean, bag.predict(X))
    _, std = predict_mean_std(BayesianRidge().fit(X, y), X)
    assert std is not None and (std > 0).all()


@pytest.mark.parametrize(
    "reg",
    [GradientBoostingRegressor(n_estimators=5), HistGradientBoostingRegressor(max_iter=5), Ridge()],
)
def test_regressors_without_a_spread_give_none(reg: object) -> None:
    X, y = _data()
    mean, std = predict_mean_std(reg.fit(X, y), X)  # type: ignore[attr-defined]
    assert std is None and mean.shape == (80,)
