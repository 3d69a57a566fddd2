"""The stacked small-batch forest walk (models.estimators.spread) equals sklearn's own forest answers bit for
bit: the same leaves, the same running-sum mean as ``forest.predict``, the same per-tree spread."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

from models.estimators import spread
from models.estimators.spread import STACKED_MAX_CELLS, STACKED_MAX_ROWS, predict_mean_std


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 12))
    X[:, 3] = np.round(X[:, 3])  # ties on a split feature: the <= test decides
    y = X[:, 0] * 2.0 + np.sin(X[:, 1]) + rng.normal(scale=0.1, size=300)
    return X, y


@pytest.mark.parametrize("cls", [RandomForestRegressor, ExtraTreesRegressor])
@pytest.mark.parametrize("rows", [1, 2, STACKED_MAX_ROWS])
def test_stacked_walk_equals_sklearn(cls: type, rows: int) -> None:
    X, y = _data(rows)
    forest = cls(n_estimators=40, min_samples_leaf=2, random_state=0).fit(X, y)
    query = np.vstack([X[:rows], X[-rows:] + 0.01])[:rows]
    query[0, 3] = 1.0  # exactly on an integer tie
    mean, std = predict_mean_std(forest, query)
    per_tree = np.stack([t.predict(query.astype(np.float32)) for t in forest.estimators_])
    assert np.array_equal(mean, forest.predict(query))
    assert np.array_equal(std, per_tree.std(axis=0))
    stacked = spread._stacked_walk(spread._stack(forest), forest._validate_X_predict(query))
    assert np.array_equal(stacked, per_tree)


def test_many_rows_and_nan_rows_take_the_per_tree_walk() -> None:
    X, y = _data(7)
    forest = RandomForestRegressor(n_estimators=20, random_state=0).fit(X, y)
    many = X[: STACKED_MAX_ROWS + 3]
    assert np.array_equal(predict_mean_std(forest, many)[0], forest.predict(many))
    one_nan = X[:1].copy()
    one_nan[0, 5] = np.nan  # sklearn routes missing values itself: the stacked walk must not be used
    assert np.array_equal(predict_mean_std(forest, one_nan)[0], forest.predict(one_nan))


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_forest_input_equals_sklearns_check(layout: str) -> None:
    """The direct cast gives the very array sklearn's ``_validate_X_predict`` gives (values, dtype,
    C order); inputs it does not take (NaN, inf, wrong width, a list) get sklearn's answer or error."""
    X, y = _data(3)
    forest = ExtraTreesRegressor(n_estimators=10, random_state=0).fit(X, y)
    query = X[:9] * 1.000000123  # values that round when cast to float32
    if layout == "F":
        query = np.asfortranarray(query)
    elif layout == "strided":
        query = np.hstack([query, query])[:, ::2]
    got, expected = spread.forest_input(forest, query), forest._validate_X_predict(query)
    assert got.dtype == expected.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, expected)
    with_nan = query.copy()
    with_nan[0, 0] = np.nan
    assert np.array_equal(
        spread.forest_input(forest, with_nan), forest._validate_X_predict(with_nan), equal_nan=True
    )
    for bad in (np.where(np.isnan(with_nan), np.inf, with_nan), query[:, :5]):
        with pytest.raises(ValueError):
            spread.forest_input(forest, bad)
    assert np.array_equal(spread.forest_input(forest, query.tolist()), expected)


def test_rows_beyond_the_few_are_stacked_while_rows_times_depth_is_small(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X, y = _data(11)
    shallow = ExtraTreesRegressor(n_estimators=30, max_depth=4, random_state=0).fit(X, y)
    deep = RandomForestRegressor(n_estimators=30, random_state=0).fit(X, y)
    rows = STACKED_MAX_CELLS // 8
    assert spread._stack(shallow).depth * rows <= STACKED_MAX_CELLS < spread._stack(deep).depth * rows
    walked: list[str] = []
    stacked, per_tree = spread._stacked_walk, spread._per_tree_walk
    monkeypatch.setattr(spread, "_stacked_walk", lambda *a: walked.append("stacked") or stacked(*a))
    monkeypatch.setattr(spread, "_per_tree_walk", lambda *a: walked.append("per_tree") or per_tree(*a))
    for forest in (shallow, deep):
        mean, std = predict_mean_std(forest, X[:rows])
        reference = np.stack([t.predict(X[:rows].astype(np.float32)) for t in forest.estimators_])
        assert np.array_equal(mean, forest.predict(X[:rows]))
        assert np.array_equal(std, reference.std(axis=0))
    assert walked == ["stacked", "per_tree"]


@pytest.mark.parametrize("cls", [RandomForestRegressor, ExtraTreesRegressor])
@pytest.mark.parametrize("rows", [1, 3, 9])
def test_stacked_walk_equals_every_tree_on_many_queries(cls: type, rows: int) -> None:
    """The one-row and flat many-row walks (float64 cells, ``children`` lookups) land on sklearn's leaves
    for queries around, on and far from the training rows, and exactly on split thresholds (a random
    forest splits the rounded feature at k + 0.5, a float32 value: ``<=`` goes left)."""
    X, y = _data(21)
    forest = cls(n_estimators=25, min_samples_leaf=2, random_state=1).fit(X, y)
    rng = np.random.default_rng(5)
    stack = spread._stack(forest)
    for _ in range(60):
        query = X[rng.integers(0, len(X), rows)] + rng.normal(
            scale=rng.choice([0.0, 0.05, 3.0]), size=(rows, 12)
        )
        query[:, 3] = np.round(query[:, 3]) + rng.choice([0.0, 0.5], size=rows)
        checked = forest._validate_X_predict(query)
        per_tree = np.stack([t.predict(checked) for t in forest.estimators_])
        assert np.array_equal(spread._stacked_walk(stack, checked), per_tree)
