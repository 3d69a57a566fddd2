"""Forest mean + spread in one pass over the trees: bit-for-bit ``forest.predict`` (n_jobs=1 order)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

from models.estimators import predict_mean_std


@pytest.mark.parametrize("cls", [RandomForestRegressor, ExtraTreesRegressor])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_forest_mean_is_exactly_predict(cls: type, n_jobs: int) -> None:
    rng = np.random.RandomState(1)
    X = rng.randn(200, 6)
    y = X[:, 0] ** 2 + X[:, 1] + 0.1 * rng.randn(200)
    forest = cls(n_estimators=40, min_samples_leaf=2, n_jobs=n_jobs, random_state=0).fit(X, y)
    Xq = rng.randn(300, 6)
    mean, std = predict_mean_std(forest, Xq)
    forest.set_params(n_jobs=1)
    np.testing.assert_array_equal(mean, forest.predict(Xq))
    per_tree = np.stack([t.predict(Xq.astype(np.float32)) for t in forest.estimators_])
    assert std is not None
    np.testing.assert_array_equal(std, per_tree.std(axis=0))
    # a DataFrame-free array of the wrong width is refused by the forest's own check
    with pytest.raises(ValueError, match="features"):
        predict_mean_std(forest, Xq[:, :5])
