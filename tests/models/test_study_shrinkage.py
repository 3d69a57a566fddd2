"""StudyOffsetRegressor's shrinkage of the forest part (``shrink_folds``): fitted on inner grouped folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from models.estimators import StudyOffsetRegressor
from models.estimators.study_offsets import SHRINK_GRID, _forest_per_tree
from models.evaluation import pair_concordance, within_study_pairs
from models.targets import TargetName
from models.training import _card_table, default_candidates, retention_candidates, within_study_table


def _forest(n: int = 20) -> RandomForestRegressor:
    return RandomForestRegressor(
        n_estimators=n, min_samples_leaf=2, max_features=0.5, random_state=0, n_jobs=1
    )


@parametrize_with_checks([StudyOffsetRegressor(_forest(5), spread="trees", shrink_folds=3)])
def test_sklearn_contract_with_shrinkage(estimator, check) -> None:
    check(estimator)


def _studies(
    offset_scale: float, signal: float, n_studies: int = 40, per: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y = signal * sin(x0) + 2 x1 + offset(study) + noise (x2: a study-level feature)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_studies), per)
    X = rng.normal(size=(len(groups), 4))
    X[:, 2] = rng.normal(size=n_studies)[groups]  # a study-level feature the forest can memorise levels by
    offsets = rng.normal(scale=offset_scale, size=n_studies)
    y = signal * np.sin(X[:, 0]) + 2.0 * X[:, 1] + offsets[groups] + rng.normal(scale=0.5, size=len(groups))
    return X, y, groups


def test_shrinkage_is_the_served_formula_and_deterministic() -> None:
    X, y, groups = _studies(offset_scale=10.0, signal=1.0)
    model = StudyOffsetRegressor(_forest(), linear_alpha=1.0, spread="both", shrink_folds=3).fit(X, y, groups)
    assert model.shrink_ is not None
    alpha, level = model.shrink_
    assert alpha in SHRINK_GRID
    assert model.linear_ is not None
    coef, _ = model.linear_
    forest = _forest_per_tree(model.estimator_, X[:9]).mean(axis=0)
    expected = level + 0.5 * X[:9] @ coef + alpha * 0.5 * forest
    np.testing.assert_allclose(model.predict(X[:9]), expected, rtol=1e-10)
    mean, sigma = model.predict_mean_std(X[:9])
    np.testing.assert_allclose(mean, expected, rtol=1e-10)
    assert np.all(sigma > 0) and np.unique(sigma).size > 1
    np.testing.assert_allclose(model.predict_members(X[:9]).mean(axis=0), expected, rtol=1e-10)
    again = clone(model).fit(X, y, groups)
    assert again.shrink_ == model.shrink_
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_forest_that_learned_study_levels_is_shrunk_more() -> None:
    # large unknown study offsets: the forest's level for a new study is mostly noise -> small alpha;
    # no offsets and a strong nonlinear signal: the forest generalises -> alpha near 1
    X, y, groups = _studies(offset_scale=15.0, signal=0.5)
    noisy = StudyOffsetRegressor(_forest(), linear_alpha=1.0, spread="trees", shrink_folds=4).fit(
        X, y, groups
    )
    X2, y2, groups2 = _studies(offset_scale=0.0, signal=8.0)
    clean = StudyOffsetRegressor(_forest(), linear_alpha=1.0, spread="trees", shrink_folds=4).fit(
        X2, y2, groups2
    )
    assert noisy.shrink_ is not None and clean.shrink_ is not None
    assert noisy.shrink_[0] < clean.shrink_[0]
    assert clean.shrink_[0] >= 0.7
    # the within-study ridge part is untouched: rows of one study keep being ordered by it
    a, b = within_study_pairs(groups, np.arange(len(y)).astype(str), y, min_gap=1.0)
    assert pair_concordance(y, noisy.predict(X), a, b) > 0.75


def test_no_shrinkage_without_groups_or_with_too_few_studies() -> None:
    X, y, groups = _studies(offset_scale=5.0, signal=1.0, n_studies=3)
    model = StudyOffsetRegressor(_forest(), spread="trees", shrink_folds=4).fit(X, y, groups)
    assert model.shrink_ is None  # 3 studies cannot give 4 inner folds
    assert StudyOffsetRegressor(_forest(), spread="trees", shrink_folds=3).fit(X, y).shrink_ is None
    unshrunk = StudyOffsetRegressor(_forest(), spread="trees").fit(X, y, groups)
    np.testing.assert_allclose(model.predict(X), unshrunk.predict(X))


def test_model_fitted_before_shrinkage_existed_still_predicts() -> None:
    X, y, groups = _studies(offset_scale=5.0, signal=1.0)
    model = StudyOffsetRegressor(_forest(), spread="trees").fit(X, y, groups)
    before = model.predict(X[:5])
    del model.shrink_  # as unpickled from an older artifact
    np.testing.assert_allclose(model.predict(X[:5]), before)
    assert model.predict_mean_std(X[:5])[1].shape == (5,)


@pytest.mark.parametrize("bad", [1, -2, 2.5, "3"])
def test_bad_shrink_folds_is_named(bad) -> None:
    X, y, groups = _studies(offset_scale=5.0, signal=1.0)
    with pytest.raises(ValueError, match="shrink_folds"):
        StudyOffsetRegressor(_forest(), shrink_folds=bad).fit(X, y, groups)


def test_retention_candidates_include_the_shrunk_study_aware_model() -> None:
    candidates = {c.name: c for c in retention_candidates(n_jobs=1, random_state=0)}
    shrunk = candidates["study_aware_shrunk"]
    assert shrunk.regressor.get_params()["shrink_folds"] == 3
    assert candidates["study_aware_both"].regressor.get_params()["shrink_folds"] is None
    assert shrunk.pipeline(TargetName.CAPACITY_RETENTION).steps[-1][1].shrink_folds == 3


def test_model_card_study_tables_keep_their_figures() -> None:
    within = within_study_table({"concordance": 0.78, "mae": 13.1})
    card = _card_table(within)
    assert list(card.columns) == ["measure", "value"]  # the figures, not only their names
    contrast = pd.DataFrame(
        {"candidate": ["X"], "predicted_delta": [1.0], "metric_key": ["k"], "value": [1.0]}
    )
    assert list(_card_table(contrast).columns) == ["candidate", "predicted_delta"]


def test_quick_retention_candidate_is_the_served_kind() -> None:
    (quick,) = default_candidates(TargetName.CAPACITY_RETENTION, quick=True, n_jobs=1)
    assert isinstance(quick.regressor, StudyOffsetRegressor) and quick.regressor.shrink_folds == 3


def test_headroom_term_widens_the_spread_below_the_ceiling() -> None:
    X, y, groups = _studies(offset_scale=5.0, signal=1.0)
    plain = StudyOffsetRegressor(_forest(), spread="both", shrink_folds=3).fit(X, y, groups)
    headroom = clone(plain).set_params(ceiling=10.0, headroom_weight=0.3).fit(X, y, groups)
    mean, sigma = headroom.predict_mean_std(X[:20])
    plain_mean, plain_sigma = plain.predict_mean_std(X[:20])
    np.testing.assert_allclose(mean, plain_mean)  # the point prediction is untouched
    np.testing.assert_allclose(sigma, plain_sigma + 0.3 * np.maximum(10.0 - mean, 0.0), rtol=1e-10)
    with pytest.raises(ValueError, match="headroom_weight"):
        clone(plain).set_params(headroom_weight=-1.0).fit(X, y, groups)
