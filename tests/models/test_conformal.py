"""Conformal calibration: finite-sample quantile, heteroscedastic coverage, honest cross-fold intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.conformal import (
    conformal_quantile,
    cross_fold_intervals,
    fit_conformal,
    fit_mondrian,
    min_calibration_rows,
    nonconformity_scores,
    normal_quantile,
    select_spread_floor,
)


def test_finite_sample_quantile_is_the_ceil_n_plus_1_order_statistic() -> None:
    scores = np.arange(1.0, 20.0)  # n = 19: ceil(20 * 0.9) = 18th smallest
    assert conformal_quantile(scores[::-1], 0.9) == 18.0
    assert conformal_quantile(np.arange(1.0, 101.0), 0.9) == 91.0  # ceil(101 * 0.9) = 91
    with pytest.raises(ValueError, match="at least 9 held-out residuals"):
        conformal_quantile(np.ones(5), 0.9)
    with pytest.raises(ValueError, match="coverage"):
        conformal_quantile(np.ones(50), 1.0)


def test_scores_and_std_from_half_width() -> None:
    np.testing.assert_allclose(nonconformity_scores([1.0, 3.0], [0.0, 0.0], [0.5, 1.0], eps=0.5), [1.0, 2.0])
    np.testing.assert_allclose(nonconformity_scores([1.0, -3.0], [0.0, 0.0], None), [1.0, 3.0])
    assert math.isclose(normal_quantile(0.9), 1.6448536, rel_tol=1e-6)
    cal = fit_conformal(np.arange(20.0), np.zeros(20), None, 0.9)
    np.testing.assert_allclose(cal.std(None, 3), cal.quantile / 1.6448536269514722)
    lower, upper = cal.interval(np.array([1.0, 2.0]), None)
    np.testing.assert_allclose(upper - lower, 2 * cal.quantile)


def _heteroscedastic(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.uniform(0.0, 1.0, n)
    true_sigma = 0.05 + 1.0 * x  # noise grows 20x across the range
    y = np.sin(6 * x) + true_sigma * rng.standard_normal(n)
    return x, y, true_sigma


def test_normalised_conformal_covers_90_percent_and_adapts_width() -> None:
    rng = np.random.default_rng(0)
    x_cal, y_cal, s_cal = _heteroscedastic(400, rng)
    x_new, y_new, s_new = _heteroscedastic(20000, rng)
    # a deliberately mis-scaled spread (3x too large): conformal must fix the scale, not trust it
    cal = fit_conformal(y_cal, np.sin(6 * x_cal), 3.0 * s_cal, 0.9)
    lower, upper = cal.interval(np.sin(6 * x_new), 3.0 * s_new)
    covered = (y_new >= lower) & (y_new <= upper)
    assert 0.87 <= covered.mean() <= 0.94
    # adaptive: covered in both the quiet and the noisy half, and much narrower where it is quiet
    quiet, noisy = x_new < 0.5, x_new >= 0.5
    assert covered[quiet].mean() > 0.85 and covered[noisy].mean() > 0.85
    width = upper - lower
    assert width[quiet].mean() < 0.5 * width[noisy].mean()
    # the calibrated std matches the true noise level on average (normal noise, 90% interval)
    assert 0.8 < np.mean(cal.std(3.0 * s_new, len(s_new)) / s_new) < 1.2


def test_absolute_conformal_is_constant_width_and_undercovers_the_noisy_half() -> None:
    rng = np.random.default_rng(1)
    x_cal, y_cal, _ = _heteroscedastic(400, rng)
    x_new, y_new, _ = _heteroscedastic(20000, rng)
    cal = fit_conformal(y_cal, np.sin(6 * x_cal), None, 0.9)
    lower, upper = cal.interval(np.sin(6 * x_new), None)
    covered = (y_new >= lower) & (y_new <= upper)
    assert 0.87 <= covered.mean() <= 0.94
    assert covered[x_new >= 0.8].mean() < 0.85  # marginal only: why the spread-normalised score is used
    assert np.ptp(upper - lower) == 0.0


def test_cross_fold_intervals_use_only_the_other_folds() -> None:
    rng = np.random.default_rng(2)
    folds = np.repeat(np.arange(4), 30)
    y = rng.standard_normal(120)
    y[folds == 0] *= 100.0  # fold 0 is wild: its own residuals must not widen its own interval
    lower, upper, std = cross_fold_intervals(y, np.zeros(120), None, folds, 0.9)
    others = fit_conformal(y[folds != 0], np.zeros(90), None, 0.9)
    np.testing.assert_allclose(upper[folds == 0], others.quantile)
    assert np.mean((y[folds == 0] >= lower[folds == 0]) & (y[folds == 0] <= upper[folds == 0])) < 0.2
    assert (upper[folds == 1] > 10).all()  # the other folds' calibration includes the wild fold
    np.testing.assert_allclose(std, (upper - lower) / 2 / normal_quantile(0.9))


def test_spread_floor_trusts_an_informative_spread_and_not_a_useless_one() -> None:
    rng = np.random.default_rng(3)
    x, y, true_sigma = _heteroscedastic(600, rng)
    yhat = np.sin(6 * x)
    folds = np.arange(600) % 5
    assert select_spread_floor(y, yhat, true_sigma, folds) in (0.05, 0.25)
    useless = rng.uniform(0.01, 1.0, 600)  # unrelated to the errors: width should not follow it
    assert select_spread_floor(y, yhat, useless, folds) in (4.0, None)
    assert select_spread_floor(y, yhat, None, folds) is None


def test_mondrian_quantile_per_category_with_enough_rows_else_pooled() -> None:
    rng = np.random.default_rng(4)
    cats = np.array(["quiet"] * 200 + ["wild"] * 40 + ["rare"] * 5)
    scale = np.where(cats == "wild", 10.0, 1.0)
    y = rng.standard_normal(len(cats)) * scale
    pooled = fit_conformal(y, np.zeros(len(y)), None, 0.9)
    mondrian = fit_mondrian(y, np.zeros(len(y)), None, list(cats), pooled)
    assert min_calibration_rows(0.9) == 9 and min_calibration_rows(0.8) == 4
    assert set(mondrian.quantiles) == {"quiet", "wild"} and mondrian.counts == {"quiet": 200, "wild": 40}
    for cat in ("quiet", "wild"):  # the category's own finite-sample quantile, on the pooled scale
        assert mondrian.quantiles[cat] == conformal_quantile(np.abs(y[cats == cat]), 0.9)
    assert mondrian.quantiles["wild"] > 4 * mondrian.quantiles["quiet"]
    lower, upper = mondrian.interval(np.zeros(3), None, ["quiet", "wild", "unseen"])
    expected = [mondrian.quantiles["quiet"], mondrian.quantiles["wild"], pooled.quantile]
    np.testing.assert_allclose(upper, expected)
    np.testing.assert_allclose(lower, -upper)
    np.testing.assert_allclose(mondrian.std(None, ["rare"]), pooled.quantile / normal_quantile(0.9))
    # the pooled interval under-covers the wild category; the Mondrian one covers both
    y_new = rng.standard_normal(4000) * np.repeat([1.0, 10.0], 2000)
    new_cats = ["quiet"] * 2000 + ["wild"] * 2000
    lo, hi = mondrian.interval(np.zeros(4000), None, new_cats)
    inside = (y_new >= lo) & (y_new <= hi)
    assert inside[:2000].mean() > 0.85 and inside[2000:].mean() > 0.85
    p_lo, p_hi = pooled.interval(np.zeros(4000), None)
    assert ((y_new >= p_lo) & (y_new <= p_hi))[2000:].mean() < 0.7
    with pytest.raises(ValueError, match="categories"):
        mondrian.interval(np.zeros(2), None, ["quiet"])


def test_mondrian_normalised_scores_share_the_pooled_spread_floor() -> None:
    rng = np.random.default_rng(5)
    sigma = rng.uniform(0.5, 2.0, 300)
    cats = ["a"] * 150 + ["b"] * 150
    y = sigma * rng.standard_normal(300) * np.repeat([1.0, 3.0], 150)
    pooled = fit_conformal(y, np.zeros(300), sigma, 0.9)
    mondrian = fit_mondrian(y, np.zeros(300), sigma, cats, pooled)
    scores = nonconformity_scores(y, np.zeros(300), sigma, pooled.eps)
    assert mondrian.quantiles["b"] == conformal_quantile(scores[150:], 0.9)
    half = mondrian.half_width(sigma[:2], ["b", "z"])
    own = mondrian.quantiles["b"] * (sigma[0] + pooled.eps)
    np.testing.assert_allclose(half, [own, pooled.half_width(sigma[1:2], 1)[0]])


def test_cross_fold_mondrian_intervals_calibrate_each_category_on_the_other_folds() -> None:
    rng = np.random.default_rng(6)
    folds = np.tile(np.arange(4), 60)
    cats = np.where(np.arange(240) < 120, "x", "y")
    y = rng.standard_normal(240) * np.where(cats == "y", 5.0, 1.0)
    lower, upper, std = cross_fold_intervals(y, np.zeros(240), None, folds, 0.9, categories=list(cats))
    train = folds != 0
    pooled = fit_conformal(y[train], np.zeros(int(train.sum())), None, 0.9)
    own = fit_mondrian(y[train], np.zeros(int(train.sum())), None, list(cats[train]), pooled)
    test_y = (folds == 0) & (cats == "y")
    np.testing.assert_allclose(upper[test_y], own.quantiles["y"])
    np.testing.assert_allclose(std, (upper - lower) / 2 / normal_quantile(0.9))
    plain_lower, _, _ = cross_fold_intervals(y, np.zeros(240), None, folds, 0.9)
    assert (lower[cats == "y"] < plain_lower[cats == "y"]).all()  # the noisy category widens
    assert (lower[cats == "x"] > plain_lower[cats == "x"]).all()  # the quiet one narrows
