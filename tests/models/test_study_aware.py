"""Study-aware retention: StudyOffsetRegressor, within-study pairs, relative and anchored predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

import models
from models.data import load_curated
from models.estimators import StudyOffsetRegressor
from models.estimators.study_offsets import study_variance_ratio
from models.evaluation import pair_concordance, within_study_pairs
from models.predictor import OUTPUT_COLUMNS, Predictor
from models.relative import (
    RELATIVE_COLUMNS,
    RelativeCalibration,
    RelativeUncertainRegressor,
    anchor_shrinkage,
    predict_relative,
    relative_report,
    relative_values,
)
from models.targets import TargetName
from models.training import TrainingConfig, train_on_table

DATA_DIR = Path(models.__file__).resolve().parents[1] / "data"
HOST = "Na0.6Li0.2Mn0.8O2"


def _small_forest() -> RandomForestRegressor:
    return RandomForestRegressor(n_estimators=10, min_samples_leaf=2, random_state=0, n_jobs=1)


@parametrize_with_checks([StudyOffsetRegressor(_small_forest(), spread="trees")])
def test_sklearn_contract(estimator, check) -> None:
    check(estimator)


def _studies(n_studies: int = 30, per: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y = 3 x0 + offset(study) + noise; studies differ by offsets much larger than the composition effect."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_studies), per)
    X = rng.normal(size=(len(groups), 4))
    offsets = rng.normal(scale=10.0, size=n_studies)
    y = 3.0 * X[:, 0] + offsets[groups] + rng.normal(scale=0.5, size=len(groups))
    return X, y, groups


def test_within_study_part_orders_rows_of_one_study() -> None:
    X, y, groups = _studies()
    model = StudyOffsetRegressor(_small_forest(), linear_alpha=1.0, spread="trees").fit(X, y, groups)
    coef, _ = model.linear_
    assert coef[0] == pytest.approx(3.0, abs=0.3)  # the within-study slope, not confounded by offsets
    assert np.all(np.abs(coef[1:]) < 0.3)
    a, b = within_study_pairs(groups, np.arange(len(y)).astype(str), y, min_gap=1.0)
    assert pair_concordance(y, model.predict(X), a, b) > 0.9
    assert np.isfinite(model.variance_ratio_) and model.variance_ratio_ < 1.0  # strong study effects
    assert len(model.study_offsets_) == 30
    # no groups: no offsets, still a valid fit
    plain = clone(model).fit(X, y)
    assert all(v == 0.0 for v in plain.study_offsets_.values())


def test_spread_modes_and_members() -> None:
    X, y, groups = _studies()
    for spread in ("trees", "residual", "both"):
        model = StudyOffsetRegressor(_small_forest(), spread=spread).fit(X, y, groups)
        mean, sigma = model.predict_mean_std(X[:7])
        np.testing.assert_allclose(mean, model.predict(X[:7]), rtol=1e-12)
        assert sigma.shape == (7,) and np.all(sigma >= 0) and np.unique(sigma).size > 1
        np.testing.assert_allclose(model.predict_members(X[:7]).mean(axis=0), mean, rtol=1e-10)


def test_bad_parameters_are_named() -> None:
    X, y, groups = _studies()
    with pytest.raises(ValueError, match="spread"):
        StudyOffsetRegressor(spread="wide").fit(X, y, groups)
    with pytest.raises(ValueError, match="linear_weight"):
        StudyOffsetRegressor(linear_weight=2.0).fit(X, y, groups)
    with pytest.raises(TypeError, match="RandomForestRegressor"):
        StudyOffsetRegressor(estimator=object()).fit(X, y, groups)
    with pytest.raises(ValueError, match="groups"):
        StudyOffsetRegressor().fit(X, y, groups[:-1])


def test_variance_ratio_without_study_effect_is_infinite() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(20), 5)
    assert study_variance_ratio(rng.normal(size=100) * 0 + 1.0, groups) == float("inf")


def test_pairs_and_concordance_golden() -> None:
    groups = np.array(["p1", "p1", "p1", "p2", "p2"])
    formulas = np.array(["A", "B", "A", "A", "C"], dtype=object)
    cycles = np.array([100, 100, 200, 50, 50])
    y = np.array([80.0, 60.0, 70.0, 90.0, 88.0])
    a, b = within_study_pairs(groups, formulas, y, same=cycles, min_gap=5.0)
    assert list(zip(a, b, strict=True)) == [(0, 1)]  # p2's pair is 2 points apart; row 2 has other cycles
    assert pair_concordance(y, np.array([70.0, 65.0, 0, 0, 0]), a, b) == 1.0
    assert pair_concordance(y, np.array([60.0, 65.0, 0, 0, 0]), a, b) == 0.0
    assert pair_concordance(y, np.array([60.0, 60.0, 0, 0, 0]), a, b) == 0.5
    assert np.isnan(pair_concordance(y, y, a[:0], b[:0]))


def test_anchor_shrinkage_is_the_shared_share() -> None:
    # residuals = study offset + row noise of equal variance: about half of an anchor's residual carries over
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(400), 2)
    r = rng.normal(size=400)[groups] + rng.normal(size=800)
    oof = pd.DataFrame({"y_true": r, "prediction": 0.0, "group": groups})
    a, b = within_study_pairs(groups, np.arange(800).astype(str), r)
    assert anchor_shrinkage(oof, a, b) == pytest.approx(0.5, abs=0.1)


@pytest.fixture(scope="module")
def retention_result():
    table = load_curated(TargetName.CAPACITY_RETENTION, DATA_DIR)
    facts = pd.read_csv(DATA_DIR / "seed_facts.csv", keep_default_na=False)
    config = TrainingConfig(quick=True, n_splits=3, n_jobs=1, max_rows=400)
    return train_on_table(TargetName.CAPACITY_RETENTION, table, config, seed_facts=facts)


def test_retention_training_is_study_aware(retention_result) -> None:
    model = retention_result.model
    assert isinstance(model, RelativeUncertainRegressor)
    assert isinstance(model.estimator_[-1], StudyOffsetRegressor)
    assert isinstance(model.relative_calibration_, RelativeCalibration)
    assert 0.0 <= model.relative_calibration_.anchor_shrinkage <= 1.0
    within = retention_result.studies["within_study"].set_index("measure")["value"]
    for key in ("concordance", "relative_coverage_90", "anchored_coverage_90", "coverage_90"):
        assert 0.0 <= within[key] <= 1.0
    assert within["std_distinct"] > 10  # per-candidate uncertainty, not one constant std
    flat = retention_result.flat_metrics()
    assert np.isfinite(flat["within_study_concordance"])
    assert "seed_contrast_predicted_delta" in flat
    assert "concordance" in retention_result.selection.columns
    assert "within_study" in retention_result.model_card or "Within" in retention_result.model_card


def test_predict_relative(retention_result) -> None:
    predictor = Predictor(TargetName.CAPACITY_RETENTION, retention_result.model, "test")
    candidates = pd.DataFrame(
        {
            "formula": [HOST, "Na0.6Li0.2Mn0.7Ru0.1O2", "Na0.6Li0.2Mn0.7Ti0.1O2", "Na0.6Xx0.2MnO2"],
            "cycles": [200, 200, 200, 200],
        },
        index=[10, 11, 12, 13],
    )
    conditions = {"current_mA_g": 170.0, "voltage_low_V": 2.0, "voltage_high_V": 4.5}
    out = predict_relative(predictor, candidates, HOST, conditions)
    assert tuple(out.columns) == RELATIVE_COLUMNS
    assert list(out.index) == [10, 11, 12, 13]
    host, ru, ti, bad = (out.iloc[i] for i in range(4))
    assert host["delta"] == pytest.approx(0.0, abs=1e-9) and host["p_better"] == pytest.approx(0.5)
    for row in (ru, ti):
        assert row["error"] == ""
        assert row["delta_lower_90"] < row["delta"] < row["delta_upper_90"]
        assert 0.0 < row["p_better"] < 1.0
        assert row["delta"] == pytest.approx(row["prediction"] - row["reference_prediction"], abs=1e-6)
        assert np.isnan(row["anchored_prediction"])
    assert ru["delta_std"] != ti["delta_std"]  # intervals differ between candidates
    assert "Xx" in bad["error"] and np.isnan(bad["delta"])
    with pytest.raises(ValueError, match="Qq"):
        predict_relative(predictor, candidates, "NaQqO2", conditions)


def test_relative_values_read_the_raw_outputs_once(retention_result, monkeypatch) -> None:
    """The relative columns from ``predict_frame(raw=True)`` equal those predicted again, bit for bit,
    and no second model pass runs when the raw outputs are there (screening and the API rely on it)."""
    predictor = Predictor(TargetName.CAPACITY_RETENTION, retention_result.model, "test")
    cand = pd.DataFrame(
        {
            "formula": [HOST, "Na0.6Li0.2Mn0.7Ru0.1O2", "Na0.6Xx0.2MnO2", "Na0.6Li0.2Mn0.75Ti0.05O2"],
            "cycles": [200, 100, 200, 50],
            "current_mA_g": 170.0,
            "voltage_low_V": 2.0,
            "voltage_high_V": 4.5,
        }
    )
    raw = predictor.predict_frame(cand, raw=True)
    assert {"raw_mean", "raw_spread"} <= set(raw.columns)
    assert tuple(predictor.predict_frame(cand).columns) == OUTPUT_COLUMNS
    assert np.isnan(raw["raw_mean"].iloc[2]) and np.isfinite(raw["raw_mean"].drop(index=2)).all()
    again = relative_values(predictor, cand, predictor.predict_frame(cand), HOST)
    calls = []
    cls = type(predictor.model)
    original = cls.predict_mean_spread
    monkeypatch.setattr(cls, "predict_mean_spread", lambda self, X: calls.append(len(X)) or original(self, X))
    once = relative_values(predictor, cand, raw, HOST)
    assert calls == []
    pd.testing.assert_frame_equal(once, again)


def test_anchored_predictions(retention_result) -> None:
    predictor = Predictor(TargetName.CAPACITY_RETENTION, retention_result.model, "test")
    k = retention_result.model.relative_calibration_.anchor_shrinkage
    conditions = {"cycles": 200, "current_mA_g": 170.0, "voltage_low_V": 2.0, "voltage_high_V": 4.5}
    cands = pd.DataFrame({"formula": [HOST, "Na0.6Li0.2Mn0.7Ru0.1O2"]})
    anchors = pd.DataFrame({"formula": [HOST], "measured": [45.5]})
    out = predict_relative(predictor, cands, HOST, conditions, anchors=anchors)
    host_raw = float(retention_result.model.predict(pd.DataFrame({"formula": [HOST], **conditions}))[0])
    assert out["n_anchors"].iloc[0] == 1
    assert out["anchored_prediction"].iloc[0] == pytest.approx(host_raw + k * (45.5 - host_raw), abs=1e-6)
    # the candidate moves by the same offset
    shift = out["anchored_prediction"] - out["prediction"]
    assert shift.iloc[1] == pytest.approx(shift.iloc[0], abs=1e-6)
    assert (out["anchored_lower_90"] < out["anchored_prediction"]).all()
    with pytest.raises(ValueError, match="measured"):
        predict_relative(predictor, cands, HOST, conditions, anchors=anchors.drop(columns="measured"))
    with pytest.raises(ValueError, match="anchor row 0"):
        predict_relative(
            predictor, cands, HOST, conditions, anchors=pd.DataFrame({"formula": ["NaXxO2"], "measured": [1]})
        )


def test_relative_report_on_synthetic_oof() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 4)
    formulas = np.array([f"NaMn{1 + i / 100:.2f}O2" for i in range(160)], dtype=object)
    truth = rng.normal(scale=10, size=160)
    y = truth + rng.normal(scale=10, size=40)[groups]
    oof = pd.DataFrame(
        {
            "y_true": y,
            "prediction": truth,
            "std": rng.uniform(5, 15, size=160),
            "lower_90": truth - 20,
            "upper_90": truth + 20,
            "group": groups,
            "fold": groups % 4,
            "sigma_hat": rng.uniform(1, 2, size=160),
        }
    )
    kept = pd.DataFrame({"formula": formulas, "cycles": 100.0})
    report = relative_report(oof, kept)
    assert report["concordance"] > 0.95  # the true within-study ordering
    assert report["relative_mae"] < 1e-9  # offsets cancel exactly in the differences
    assert report["anchored_mae"] < report["mae"]


def test_retention_card_reports_deltas_by_distance(retention_result) -> None:
    within = retention_result.studies["within_study"].set_index("measure")["value"]
    table = retention_result.studies["delta_by_distance"]
    # every held-out pair of one paper lands in exactly one (protocol, distance) bin
    assert table["n"].sum() == within["all_pairs_n"] > 0
    assert within["near_host_n"] > 0
    assert 0.0 <= within["near_host_coverage_90"] <= 1.0
    card = retention_result.model_card
    assert "delta_by_distance" in card
    # the near-host caveat, written from the measured value
    assert f"width {within['near_host_width_90']:.1f}" in card
