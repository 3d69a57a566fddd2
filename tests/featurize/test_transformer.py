"""CompositionFeaturizer and featurize_formulas: sklearn contract, bad-row policy, repeats, pickling."""

from __future__ import annotations

import pickle
import warnings

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from featurize.composition import CompositionError, parse_formula
from featurize.featuresets import get_feature_set
from featurize.transformer import CompositionFeaturizer, FeaturizationWarning, featurize_formulas

GOOD = ["Fe2O3", "NaCl", "Na3Zr2Si2PO12", "P2-Na0.67Mn0.67Ni0.33O2", "NaN"]
MEAN_NUMBER = "MagpieData mean Number"


def magpie(formulas: list[str]) -> np.ndarray:
    return get_feature_set("magpie_v1").compute([parse_formula(f) for f in formulas])


def test_transform_equals_feature_set_and_names_out() -> None:
    t = CompositionFeaturizer().fit(GOOD)
    X = t.transform(GOOD)
    np.testing.assert_array_equal(X, magpie(GOOD))
    assert list(t.get_feature_names_out()) == get_feature_set("magpie_v1").feature_labels()
    assert t.feature_set_name_ == "magpie_v1"
    assert X.dtype == np.float64


def test_short_name_accepted_and_recorded_versioned() -> None:
    assert (
        CompositionFeaturizer(feature_set="stoichiometry").fit(GOOD).feature_set_name_ == "stoichiometry_v1"
    )


@pytest.mark.parametrize(
    "X",
    [
        pd.DataFrame({"formula": GOOD, "other": range(5)}),
        pd.Series(GOOD),
        np.array(GOOD, dtype=object),
        np.array(GOOD, dtype=object).reshape(-1, 1),
        GOOD,
    ],
)
def test_input_shapes(X: object) -> None:
    np.testing.assert_array_equal(CompositionFeaturizer().fit(X).transform(X), magpie(GOOD))


def test_missing_formula_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no 'formula' column"):
        CompositionFeaturizer().fit(None).transform(pd.DataFrame({"a": ["NaCl"], "b": [1]}))


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        CompositionFeaturizer().transform(GOOD)
    with pytest.raises(NotFittedError):
        CompositionFeaturizer().get_feature_names_out()


def test_bad_params_rejected_at_fit() -> None:
    with pytest.raises(ValueError, match="on_error"):
        CompositionFeaturizer(on_error="ignore").fit(GOOD)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown feature set"):
        CompositionFeaturizer(feature_set="nope").fit(GOOD)


def test_raise_names_row_and_input() -> None:
    t = CompositionFeaturizer().fit(GOOD)
    with pytest.raises(CompositionError, match=r'"Na2XyO3": unknown element Xy \(row 1; 1 more bad rows\)'):
        t.transform(["NaCl", "Na2XyO3", ""])


def test_mask_returns_nan_rows_and_reports_them() -> None:
    t = CompositionFeaturizer(on_error="mask").fit(GOOD)
    rows = ["NaCl", "Na2XyO3", "", np.nan, "Fe2O3"]
    with pytest.warns(FeaturizationWarning, match=r"3 of 5 rows .*row 1: \"Na2XyO3\": unknown element Xy"):
        X = t.transform(rows)
    assert np.isnan(X[[1, 2, 3]]).all()
    np.testing.assert_array_equal(X[[0, 4]], magpie(["NaCl", "Fe2O3"]))
    assert set(t.errors_) == {1, 2, 3}
    assert "unknown element Xy" in t.errors_[1]
    assert "empty" in t.errors_[2]


def test_transform_batch_and_featurize_formulas_report_every_row() -> None:
    rows = ["NaCl", "Na2XyO3", "", "Fe2O3", "NaCl"]
    batch = featurize_formulas(rows, "magpie")
    assert batch.ok.tolist() == [True, False, False, True, True]
    assert batch.errors[0] == "" and batch.errors[1] == '"Na2XyO3": unknown element Xy'
    assert batch.failures().keys() == {1, 2}
    assert batch.n_failed == 2
    frame = batch.to_frame()
    assert list(frame.columns)[-1] == "error" and len(frame) == 5
    t = CompositionFeaturizer().fit(rows)
    b2 = t.transform_batch(rows)  # never raises, even with on_error="raise"
    np.testing.assert_array_equal(b2.X, batch.X)


def test_repeated_formulas_give_identical_rows() -> None:
    rows = ["Na0.67MnO2", "NaCl"] * 50 + ["Na0.67MnO2"]
    X = featurize_formulas(rows).X
    np.testing.assert_array_equal(X[0::2][:51], np.repeat(magpie(["Na0.67MnO2"]), 51, axis=0))
    np.testing.assert_array_equal(X[1::2], np.repeat(magpie(["NaCl"]), 50, axis=0))


def test_reference_path_through_featurize_formulas() -> None:
    batch = featurize_formulas(["Fe2O3", "Na2XyO3"], "magpie_v1", reference=True)
    assert batch.ok.tolist() == [True, False]
    np.testing.assert_allclose(batch.X[0], magpie(["Fe2O3"])[0], rtol=1e-12)


def test_clone_get_params_and_pickling() -> None:
    t = CompositionFeaturizer(feature_set="composite_v1", formula_column="f", on_error="mask")
    assert clone(t).get_params() == {"feature_set": "composite_v1", "formula_column": "f", "on_error": "mask"}
    fitted = CompositionFeaturizer().fit(GOOD)
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        again = loads(dumps(fitted))
        np.testing.assert_array_equal(again.transform(GOOD), fitted.transform(GOOD))


def test_in_pipeline_and_column_transformer() -> None:
    df = pd.DataFrame({"formula": GOOD * 4, "temperature_c": np.arange(20.0)})
    y = np.arange(20.0)
    pipe = Pipeline([("features", CompositionFeaturizer()), ("model", Ridge())]).fit(df, y)
    assert pipe.predict(df).shape == (20,)
    ct = ColumnTransformer(
        [("comp", CompositionFeaturizer(), ["formula"]), ("t", "passthrough", ["temperature_c"])]
    ).fit(df)
    out = ct.transform(df)
    assert out.shape == (20, 133)
    assert ct.get_feature_names_out()[0] == "comp__MagpieData minimum Number"
    ct_str = ColumnTransformer([("comp", CompositionFeaturizer(), "formula")]).fit(df)
    assert ct_str.transform(df).shape == (20, 132)


def test_set_output_pandas() -> None:
    t = CompositionFeaturizer().set_output(transform="pandas").fit(GOOD)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FeaturizationWarning)
        out = t.transform(GOOD)
    assert isinstance(out, pd.DataFrame)
    assert out[MEAN_NUMBER].iloc[0] == pytest.approx(15.2)


def test_check_fitted_passes_a_fitted_attribute_and_raises_sklearns_error_otherwise() -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from featurize.transformer import check_fitted

    unfitted = CompositionFeaturizer()
    with pytest.raises(NotFittedError) as ours:
        check_fitted(unfitted, "feature_names_out_")
    with pytest.raises(NotFittedError) as sklearns:
        check_is_fitted(unfitted, "feature_names_out_")
    assert str(ours.value) == str(sklearns.value)
    fitted = CompositionFeaturizer().fit(["NaCl"])
    check_fitted(fitted, "feature_names_out_")
    with pytest.raises(NotFittedError):
        check_fitted(fitted, "no_such_attribute_")
    with pytest.raises(NotFittedError):  # an unfitted featurizer's serving path raises as its transform does
        unfitted.transform_values(["NaCl"])
