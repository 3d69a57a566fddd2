"""MLPEnsembleRegressor: sklearn contract, determinism, pickling, spread, torch global state."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.estimators import MLPEnsembleRegressor


def _small(**kw: object) -> MLPEnsembleRegressor:
    params: dict[str, object] = {
        "hidden_layer_sizes": (16,),
        "n_members": 3,
        "max_epochs": 40,
        "learning_rate": 1e-2,
        "random_state": 0,
    }
    params.update(kw)
    return MLPEnsembleRegressor(**params)  # type: ignore[arg-type]


@parametrize_with_checks([_small(), _small(bootstrap=False, early_stopping=False, activation="silu")])
def test_sklearn_contract(estimator: MLPEnsembleRegressor, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def _data(n: int = 200, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    y = 3.0 * X[:, 0] - 2.0 * X[:, 1] ** 2 + 0.1 * rng.randn(n)
    return X, y


def test_same_seed_same_model_and_global_torch_state_untouched() -> None:
    X, y = _data()
    threads = torch.get_num_threads()
    rng_state = torch.random.get_rng_state().clone()
    a = _small().fit(X, y).predict(X)
    b = _small().fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    c = _small(random_state=1).fit(X, y).predict(X)
    assert not np.allclose(a, c)


def test_learns_a_nonlinear_function() -> None:
    X, y = _data(400)
    model = _small(hidden_layer_sizes=(32, 32), max_epochs=200).fit(X[:300], y[:300])
    pred = model.predict(X[300:])
    dummy_mae = np.abs(y[300:] - np.median(y[:300])).mean()
    assert np.abs(pred - y[300:]).mean() < 0.25 * dummy_mae


def test_member_spread_grows_away_from_the_data() -> None:
    X, y = _data(300)
    model = _small(hidden_layer_sizes=(32,), max_epochs=100, n_members=5).fit(X, y)
    near = model.predict_std(X[:50])
    far = model.predict_std(X[:50] + 8.0)
    assert np.median(far) > 3 * np.median(near)
    mean, std = model.predict(X[:10], return_std=True)
    np.testing.assert_allclose(mean, model.predict(X[:10]))
    np.testing.assert_allclose(std, model.predict_members(X[:10]).std(axis=0))
    np.testing.assert_allclose(mean, model.predict_members(X[:10]).mean(axis=0))


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_clone_and_pickle_round_trip(dumps: object) -> None:
    X, y = _data()
    model = _small().fit(X, y)
    restored = pickle.loads(dumps(model))  # type: ignore[operator]
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    fresh = clone(model)
    assert not hasattr(fresh, "members_")
    assert fresh.get_params() == model.get_params()
    np.testing.assert_array_equal(fresh.fit(X, y).predict(X), model.predict(X))


def test_in_a_pipeline_under_grouped_cv() -> None:
    X, y = _data(120)
    groups = np.repeat(np.arange(12), 10)
    pipe = make_pipeline(StandardScaler(), _small(max_epochs=30))
    pred = cross_val_predict(pipe, X, y, groups=groups, cv=GroupKFold(4))
    assert pred.shape == y.shape and np.isfinite(pred).all()


def test_early_stopping_keeps_best_epoch_and_fixed_budget_without_it() -> None:
    X, y = _data(300)
    stopped = _small(max_epochs=300, n_iter_no_change=5).fit(X, y)
    assert (stopped.n_epochs_ < 300).all()
    fixed = _small(max_epochs=7, early_stopping=False).fit(X, y)
    assert (fixed.n_epochs_ == 7).all()


@pytest.mark.parametrize(
    ("param", "value"),
    [("n_members", 0), ("hidden_layer_sizes", (0,)), ("activation", "gelu"), ("validation_fraction", 1.0)],
)
def test_bad_hyperparameters_name_themselves(param: str, value: object) -> None:
    X, y = _data(20)
    with pytest.raises(ValueError, match=param):
        _small(**{param: value}).fit(X, y)
