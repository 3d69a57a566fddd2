"""UncertainRegressor: grouped CV, honest intervals, domain, estimator contract; real and synthetic data."""

from __future__ import annotations

import pickle
from pathlib import Path

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.estimators import MLPEnsembleRegressor
from models.evaluation import grouped_cv_report
from models.features import build_pipeline
from models.uncertain import OOF_COLUMNS, PREDICTION_COLUMNS, UncertainRegressor

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def nasicon() -> pd.DataFrame:
    table = pd.read_csv(DATA_DIR / "curated" / "ionic_conductivity.csv")
    keep = (table.structure_family == "NASICON") & (table.mobile_ion == "Na") & ~table.censored
    return table[keep].reset_index(drop=True)


def _rf(n: int = 60) -> RandomForestRegressor:
    return RandomForestRegressor(n_estimators=n, min_samples_leaf=2, random_state=0, n_jobs=1)


@pytest.fixture(scope="module")
def nasicon_model(nasicon: pd.DataFrame) -> UncertainRegressor:
    pipe = build_pipeline("ionic_conductivity", "magpie_v1", _rf())
    return UncertainRegressor(pipe).fit(nasicon[["formula"]], nasicon.log10_sigma_s_cm, groups=nasicon.source)


def test_out_of_fold_table_and_groups_never_on_both_sides(
    nasicon: pd.DataFrame, nasicon_model: UncertainRegressor
) -> None:
    oof = nasicon_model.oof_
    assert tuple(oof.columns) == OOF_COLUMNS
    assert len(oof) == len(nasicon) and oof.index.equals(nasicon.index)
    assert nasicon_model.n_splits_ == 5 and sorted(oof.fold.unique()) == [0, 1, 2, 3, 4]
    assert (oof.groupby("group").fold.nunique() == 1).all()  # a paper's rows are held out together
    assert (oof.lower_90 < oof.prediction).all() and (oof.prediction < oof.upper_90).all()
    report = grouped_cv_report(oof)
    assert 0.7 <= report["coverage_90"] <= 1.0
    assert report["mae"] < np.mean(np.abs(nasicon.log10_sigma_s_cm - nasicon.log10_sigma_s_cm.median()))
    assert nasicon_model.calibration_.normalized  # forest: tree spread is the sigma


def test_oxychloride_is_out_of_domain_for_a_nasicon_model(nasicon_model: UncertainRegressor) -> None:
    assert {"Na", "Zr", "Si", "P", "O"} <= nasicon_model.training_elements_
    assert "Cl" not in nasicon_model.training_elements_
    queries = pd.DataFrame({"formula": ["Na2HfO2Cl4", "Na3Zr2Si2PO12"]}, index=[10, 3])
    out = nasicon_model.predict_with_uncertainty(queries)
    assert tuple(out.columns[: len(PREDICTION_COLUMNS)]) == PREDICTION_COLUMNS
    assert out.index.tolist() == [10, 3]
    assert out.in_domain.tolist() == [False, True]
    assert out.domain_reason[10].startswith(
        "elements not in the training data: Cl; no compound with anions {Cl, O} in the training data "
        "(seen: {O} ("
    )
    assert "; feature-space distance " in out.domain_reason[10]
    assert out.domain_reason[3] == ""
    np.testing.assert_allclose(out.prediction, nasicon_model.predict(queries))
    assert (out.lower_90 < out.prediction).all() and (out.prediction < out.upper_90).all()
    np.testing.assert_allclose(out["std"], (out.upper_90 - out.lower_90) / 2 / 1.6448536269514722)
    assert out["std"][10] > out["std"][3]  # the trees disagree more on the oxychloride


def test_chemistry_class_rule_flags_a_na_oxychloride_next_to_li_chlorides(nasicon: pd.DataFrame) -> None:
    """Na NASICONs + Li (oxy)chlorides: Cl, Hf and Zr are all known, yet a Na oxychloride and a Na chloride
    are new chemistry for the Na rows; the rule flags them by name and changes no prediction."""
    table = pd.read_csv(DATA_DIR / "curated" / "ionic_conductivity.csv")
    li_cl = table[(table.mobile_ion == "Li") & table.formula.str.contains("Cl") & ~table.censored]
    train = pd.concat([nasicon, li_cl], ignore_index=True)
    pipe = build_pipeline("ionic_conductivity", "magpie_v1", _rf(30))
    X, y, g = train[["formula"]], train.log10_sigma_s_cm, train.source
    with_ions = UncertainRegressor(pipe, domain_ion_elements=("Na", "Li")).fit(X, y, groups=g)
    assert {"Cl", "Hf", "Zr", "O"} <= with_ions.training_elements_
    queries = pd.DataFrame({"formula": ["Na2HfO2Cl4", "Na2HfCl6", "Na3Zr2Si2PO12", "Li3InCl6"]})
    out = with_ions.predict_with_uncertainty(queries)
    assert out.in_domain[2] and out.domain_reason[2] == ""
    assert out.domain_reason[0].startswith(
        "no Na compound with anions {Cl, O} in the training data (seen for Na: "
    )
    assert out.domain_reason[1].startswith(
        "no Na compound with anions {Cl} in the training data (seen for Na: "
    )
    assert not out.in_domain[0] and not out.in_domain[1]
    assert "no Li compound" not in out.domain_reason[3]  # Li chlorides are in the training data
    # out-of-fold flag: held-out rows whose class the other folds lack; the domain never changes predictions
    assert with_ions.oof_.class_seen.dtype == bool and with_ions.oof_.class_seen.any()
    without = UncertainRegressor(pipe).fit(X, y, groups=g)
    pd.testing.assert_frame_equal(
        with_ions.oof_.drop(columns="class_seen"), without.oof_.drop(columns="class_seen")
    )
    np.testing.assert_allclose(with_ions.predict(queries), without.predict(queries))


def test_pickle_and_clone(nasicon: pd.DataFrame, nasicon_model: UncertainRegressor) -> None:
    X = nasicon[["formula"]].head(7)
    expected = nasicon_model.predict_with_uncertainty(X)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        pd.testing.assert_frame_equal(
            pickle.loads(dumps(nasicon_model)).predict_with_uncertainty(X), expected
        )
    fresh = clone(nasicon_model)
    assert not hasattr(fresh, "estimator_") and fresh.get_params()["n_splits"] == 5


def _synthetic(n_groups: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    per = 8
    groups = np.repeat(np.arange(n_groups), per)
    x = rng.uniform(-1, 1, (n_groups * per, 3))
    noise = 0.05 + 0.6 * (x[:, 0] + 1) / 2  # heteroscedastic in x0
    offset = 0.1 * rng.standard_normal(n_groups)[groups]  # a shared per-group (per-paper) shift
    y = 2 * x[:, 0] + np.sin(3 * x[:, 1]) + offset + noise * rng.standard_normal(len(groups))
    X = pd.DataFrame(x, columns=["a", "b", "c"])
    X.insert(0, "formula", "Na3Zr2Si2PO12")
    return X, y, groups


def _numeric_pipeline(regressor: object) -> Pipeline:
    columns = ColumnTransformer([("num", "passthrough", ["a", "b", "c"])])
    return Pipeline([("select", columns), ("scale", StandardScaler()), ("regressor", regressor)])


def test_intervals_cover_90_percent_of_new_groups_on_heteroscedastic_data() -> None:
    rng = np.random.default_rng(0)
    X, y, groups = _synthetic(60, rng)
    model = UncertainRegressor(_numeric_pipeline(_rf(100))).fit(X, y, groups)
    X_new, y_new, _ = _synthetic(400, rng)
    out = model.predict_with_uncertainty(X_new)
    covered = (y_new >= out.lower_90) & (y_new <= out.upper_90)
    assert 0.84 <= covered.mean() <= 0.96
    assert 0.8 <= grouped_cv_report(model.oof_)["coverage_90"] <= 1.0
    assert out.in_domain.mean() > 0.8


def test_same_random_state_same_folds_and_model() -> None:
    X, y, groups = _synthetic(20, np.random.default_rng(1))
    a = UncertainRegressor(_numeric_pipeline(_rf(20)), n_splits=4).fit(X, y, groups)
    b = UncertainRegressor(_numeric_pipeline(_rf(20)), n_splits=4).fit(X, y, groups)
    pd.testing.assert_frame_equal(a.oof_, b.oof_)
    c = UncertainRegressor(_numeric_pipeline(_rf(20)), n_splits=4, random_state=7).fit(X, y, groups)
    assert not np.array_equal(a.oof_.fold.to_numpy(), c.oof_.fold.to_numpy())


def test_regressor_without_spread_gets_constant_width_intervals() -> None:
    X, y, groups = _synthetic(20, np.random.default_rng(2))
    reg = GradientBoostingRegressor(n_estimators=30, random_state=0)
    model = UncertainRegressor(_numeric_pipeline(reg), n_splits=3).fit(X, y, groups)
    assert not model.calibration_.normalized and model.oof_.sigma_hat.isna().all()
    assert model.n_splits_ == 3
    out = model.predict_with_uncertainty(X.head(5))
    assert np.ptp(out.upper_90 - out.lower_90) == pytest.approx(0.0)


def test_mlp_ensemble_on_real_formulas(nasicon: pd.DataFrame) -> None:
    mlp = MLPEnsembleRegressor((32,), n_members=4, max_epochs=60, learning_rate=3e-3, random_state=0)
    pipe = build_pipeline("ionic_conductivity", "magpie_v1", mlp)
    data = nasicon.head(60)
    model = UncertainRegressor(pipe, n_splits=3).fit(data[["formula"]], data.log10_sigma_s_cm, data.source)
    assert model.calibration_.normalized and (model.oof_.sigma_hat > 0).all()
    out = model.predict_with_uncertainty(pd.DataFrame({"formula": ["Na2HfO2Cl4", data.formula[0]]}))
    assert out.in_domain.tolist() == [False, True]
    assert np.isfinite(out[["prediction", "std", "lower_90", "upper_90"]].to_numpy()).all()


def test_bad_inputs_are_named() -> None:
    X, y, groups = _synthetic(4, np.random.default_rng(3))
    model = UncertainRegressor(_numeric_pipeline(_rf(5)))
    with pytest.raises(TypeError, match="DataFrame"):
        model.fit(X.to_numpy(), y, groups)
    with pytest.raises(ValueError, match="at least 2 distinct groups"):
        model.fit(X, y, np.zeros(len(y)))
    with pytest.raises(ValueError, match="groups has 1 missing value"):
        model.fit(X, y, np.where(np.arange(len(y)) == 3, None, groups.astype(object)))
    with pytest.raises(ValueError, match="one value per row"):
        model.fit(X, y, groups[:-1])
    bad = X.copy()
    bad.loc[2, "formula"] = "Na2XyO3"
    with pytest.raises(ValueError, match=r"row 2: .*Xy"):
        model.fit(bad, y, groups)
    with pytest.raises(TypeError, match="Pipeline"):
        UncertainRegressor(_rf(5)).fit(X, y, groups)  # type: ignore[arg-type]


def test_the_carrier_content_tolerance_is_learned_from_the_models_own_grouped_cv(
    nasicon: pd.DataFrame,
) -> None:
    pipe = build_pipeline("ionic_conductivity", "magpie_v1", _rf(30))
    X, y, g = nasicon[["formula"]], nasicon.log10_sigma_s_cm.to_numpy(), nasicon.source.to_numpy()
    model = UncertainRegressor(pipe, domain_ion_elements=("Na", "Li"), domain_polyanions=True).fit(
        X, y, groups=g
    )
    held = model.heldout(X, y, g)  # the same folds as fit (same random_state), nothing refitted
    np.testing.assert_allclose(held.pred, model.oof_.prediction.to_numpy())
    outside = held.content_excess > 0
    assert outside.any()  # NASICON Na contents differ between folds: some held-out rows lie outside
    assert model.domain_.content_tolerance_ == held.content_tolerance(y) > 0
    # the tolerance is the largest excess admitted before the second held-out row > 2.5 decades off
    err = np.abs(y - held.pred)
    admitted = outside & (held.content_excess <= model.domain_.content_tolerance_)
    assert (err[admitted] > 2.5).sum() <= 1
    # without the carrier-content rule there is no tolerance and no excess
    plain = UncertainRegressor(pipe, domain_ion_elements=("Na", "Li")).fit(X, y, groups=g)
    assert not hasattr(plain.domain_, "content_tolerance_")
    assert np.isnan(plain.heldout(X, y, g).content_excess).all()


def test_class_conformal_intervals_are_calibrated_per_chemistry_class() -> None:
    table = pd.read_csv(DATA_DIR / "curated" / "ionic_conductivity.csv")
    keep = (table.mobile_ion == "Na") & ~table.censored
    data = table[keep].reset_index(drop=True)
    pipe = build_pipeline("ionic_conductivity", "magpie_v1", _rf(30))
    X, y, g = data[["formula"]], data.log10_sigma_s_cm.to_numpy(), data.source.to_numpy()
    kwargs = {"domain_ion_elements": ("Na", "Li"), "domain_polyanions": True}
    model = UncertainRegressor(pipe, class_conformal=True, **kwargs).fit(X, y, groups=g)
    pooled = UncertainRegressor(pipe, **kwargs).fit(X, y, groups=g)
    mondrian = model.class_calibration_
    assert pooled.class_calibration_ is None and mondrian is not None
    chlorides = frozenset({("Na", frozenset({"Cl"}))})
    nasicons = frozenset({("Na", frozenset({"O", "polyanion"}))})
    assert {chlorides, nasicons} <= set(mondrian.quantiles)  # both have >= 9 held-out rows
    assert mondrian.pooled == model.calibration_ == pooled.calibration_  # same folds, same pooled scale
    # the same predictions and spread; only the quantile differs, per class
    np.testing.assert_allclose(model.oof_.prediction, pooled.oof_.prediction)
    query = pd.DataFrame({"formula": ["Na2ZrCl6", "Na3Zr2Si2PO12", "NaAl11O17"]})
    out, ref = model.predict_with_uncertainty(query), pooled.predict_with_uncertainty(query)
    ratio = (out.upper_90 - out.lower_90) / (ref.upper_90 - ref.lower_90)
    q = model.calibration_.quantile
    own = [mondrian.quantiles[chlorides] / q, mondrian.quantiles[nasicons] / q]
    np.testing.assert_allclose(ratio[:2], own)
    assert ratio[2] == pytest.approx(1.0)  # {O} without a polyanion: too few rows, the pooled quantile
    np.testing.assert_allclose(out["std"], (out.upper_90 - out.lower_90) / 2 / model.calibration_.z)
    # honest out-of-fold intervals: each row's class quantile comes from the other folds
    chloride_rows = data.formula.str.contains("Cl") & ~data.formula.str.contains("O")
    wider = (model.oof_.upper_90 - model.oof_.lower_90) > (pooled.oof_.upper_90 - pooled.oof_.lower_90)
    assert wider[chloride_rows].mean() > 0.5  # Na chlorides are harder than NASICONs: wider intervals
    assert pickle.loads(pickle.dumps(model)).predict_with_uncertainty(query).equals(out)
    assert clone(model).get_params()["class_conformal"] is True


def test_domain_category_units_reach_the_held_out_and_the_fitted_distance() -> None:
    X, y, groups = _synthetic(30, np.random.default_rng(3))
    rare = groups < 4
    X["rare"] = rare.astype(float)  # a one-hot category of 4 groups (32 rows of 240)
    columns = ColumnTransformer([("num", "passthrough", ["a", "b", "c", "rare"])])
    pipe = Pipeline([("select", columns), ("scale", StandardScaler()), ("regressor", _rf(20))])
    units = UncertainRegressor(pipe, n_splits=3, domain_category_units=True).fit(X, y, groups)
    plain = UncertainRegressor(pipe, n_splits=3).fit(X, y, groups)
    gap = 1.0 / X["rare"].std(ddof=0)  # the standardised column's two values are this far apart
    np.testing.assert_allclose(units.domain_.distance_.scale_[3], gap)
    np.testing.assert_allclose(plain.domain_.distance_.scale_[3], 1.0)  # its std after StandardScaler
    # a row written in the rare category: one unit from its twin in the common one, not ~3 standard deviations
    twin = X.iloc[[100, 100]].copy()
    twin.iloc[1, twin.columns.get_loc("rare")] = 1.0
    for model, expected in ((units, 1.0), (plain, gap)):
        z = model.estimator_[:-1].transform(twin)
        np.testing.assert_allclose(np.linalg.norm((z[1] - z[0]) / model.domain_.distance_.scale_), expected)
    # the held-out distances (the threshold's evidence) are measured the same way
    held_units = units.heldout(X, y, groups).dist
    held_plain = plain.heldout(X, y, groups).dist
    assert held_units[rare].mean() < held_plain[rare].mean()
