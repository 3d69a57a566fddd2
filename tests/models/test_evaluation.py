"""Metric functions (golden values), masks for censored rows / subsets, the dummy median baseline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.evaluation import (
    baseline_comparison,
    coverage,
    dummy_median_oof,
    grouped_cv_report,
    mae,
    mean_interval_width,
    r2,
    regression_metrics,
    rmse,
    spearman,
    subset_reports,
)


def test_metric_golden_values() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 5.0])
    assert mae(y, p) == pytest.approx(0.625)
    assert rmse(y, p) == pytest.approx(math.sqrt(2.25 / 4))
    assert r2(y, p) == pytest.approx(1 - 2.25 / 5.0)
    assert spearman(y, p) == pytest.approx(3 / math.sqrt(10))  # Pearson of ranks (1,2,3,4), (1,2.5,2.5,4)
    assert coverage(y, p - 0.5, p + 0.5) == pytest.approx(0.5)
    assert mean_interval_width(p - 0.5, p + 1.0) == pytest.approx(1.5)
    assert math.isnan(r2([1.0, 1.0], [1.0, 2.0]))
    assert math.isnan(spearman([1.0, 2.0], [3.0, 3.0]))
    with pytest.raises(ValueError, match="same length"):
        mae([1.0], [1.0, 2.0])


def test_mask_excludes_censored_rows() -> None:
    y = np.array([1.0, 2.0, 3.0, -10.0])
    p = np.array([1.0, 2.0, 3.0, 0.0])
    censored = np.array([False, False, False, True])
    m = regression_metrics(y, p, p - 1, p + 1, mask=~censored)
    assert m["n"] == 3 and m["mae"] == 0.0 and m["coverage_90"] == 1.0
    assert regression_metrics(y, p)["mae"] == pytest.approx(2.5)
    with pytest.raises(ValueError, match="boolean"):
        regression_metrics(y, p, mask=[1, 1, 1, 0])


def _oof(rng: np.random.Generator, n_groups: int = 30) -> pd.DataFrame:
    groups = np.repeat(np.arange(n_groups), 4)
    x = rng.standard_normal(len(groups))
    y = 2 * x + 0.3 * rng.standard_normal(len(groups))
    pred = 2 * x
    return pd.DataFrame(
        {
            "y_true": y,
            "prediction": pred,
            "std": 0.3,
            "lower_90": pred - 0.5,
            "upper_90": pred + 0.5,
            "group": groups,
            "fold": groups % 5,
        }
    )


def test_dummy_median_uses_other_folds_and_calibrates_like_the_model() -> None:
    y = np.array([0.0] * 10 + [10.0] * 10 + [20.0] * 10)
    folds = np.repeat([0, 1, 2], 10)
    dummy = dummy_median_oof(y, folds, folds)
    np.testing.assert_allclose(dummy.loc[folds == 0, "prediction"], 15.0)  # median of folds 1 and 2
    np.testing.assert_allclose(dummy.loc[folds == 1, "prediction"], 10.0)
    assert list(dummy.columns[:7]) == ["y_true", "prediction", "std", "lower_90", "upper_90", "group", "fold"]
    np.testing.assert_allclose(dummy.loc[folds == 2, "prediction"], 5.0)
    # fold 0 interval: conformal quantile of the OTHER folds' out-of-fold residuals, fold 1 |10-10| = 0 and
    # fold 2 |20-5| = 15 (20 scores: the ceil(21 * 0.9) = 19th smallest is 15) -> 15 +- 15
    np.testing.assert_allclose(dummy.loc[folds == 0, "upper_90"], 30.0)
    np.testing.assert_allclose(dummy.loc[folds == 0, "lower_90"], 0.0)


def test_baseline_comparison_and_subsets() -> None:
    oof = _oof(np.random.default_rng(0))
    table = baseline_comparison(oof)
    assert list(table.index) == ["model", "dummy_median"]
    assert table.loc["model", "mae"] < 0.5 * table.loc["dummy_median", "mae"]
    assert 0.75 <= table.loc["dummy_median", "coverage_90"] <= 1.0
    assert table.loc["model", "n_groups"] == 30
    half = np.arange(len(oof)) < 60
    reports = subset_reports(oof, {"all": None, "first half": half})
    assert reports.loc["first half", "n"] == 60 and reports.loc["first half", "n_groups"] == 15
    assert reports.loc["all", "mae"] == pytest.approx(grouped_cv_report(oof)["mae"])
