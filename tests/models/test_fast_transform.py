"""The serving-time feature transform equals sklearn's ``Pipeline.transform`` exactly, for every target's
pipeline (nested log-conditions Pipeline, imputers with indicators, one-hot, clipping), and falls back to
sklearn wherever it has no direct path; the Predictor's array path equals the model's DataFrame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler

from models.conformal import normal_quantile
from models.fast_transform import column_transform, transform_steps
from models.features import build_pipeline
from models.predictor import RAW_OUTPUTS
from models.targets import TargetName

DATA_DIR = Path(__file__).resolve().parents[2] / "data"

ROWS = pd.DataFrame(
    {
        "formula": [
            "Na3Zr2Si2PO12",
            "P2-Na0.67MnO2",
            "NaMnO2",
            "Li7La3Zr2O12",
            "Na0.67Ni0.33Mn0.67O2",
            "NaFePO4",
            "Na2ZrCl6",
            "O3-NaNi0.5Mn0.5O2",
        ],
        "cycles": [100.0, 50.0, np.nan, 200.0, 10.0, 100.0, 300.0, 1.0],
        "current_mA_g": [20.0, np.nan, 10.0, 20.0, np.nan, 100.0, 20.0, 5.0],
        "voltage_low_V": [2.0, 1.5, np.nan, 2.0, 2.0, 2.5, np.nan, 2.0],
        "voltage_high_V": [4.0, 4.3, 4.1, np.nan, 4.2, 4.0, 4.0, 4.5],
        "structure_type": [None, "", "O3", None, "P2", None, None, None],
        "working_ion": ["Na", None, "Li", "Li", "Na", "Na", "K", None],
    },
    index=[7, 3, 11, 0, 5, 2, 9, 4],
)
Y = np.linspace(0.0, 1.0, len(ROWS))


@pytest.mark.parametrize("target", list(TargetName))
@pytest.mark.parametrize("clip_z", [None, 1.0])
def test_equals_pipeline_transform(target: TargetName, clip_z: float | None) -> None:
    pipe = build_pipeline(target, "magpie_v1", Ridge(), clip_z=clip_z).fit(ROWS, Y)
    features = pipe[:-1]
    for X in (ROWS, ROWS.iloc[[2]], ROWS.iloc[::-1], ROWS.iloc[[1, 1, 4]]):
        expected = features.transform(X)
        got = transform_steps(pipe.steps[:-1], X)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
    # an input with extra columns in another order selects the same columns by name
    shuffled = ROWS.assign(extra=1)[[*reversed(ROWS.columns), "extra"]]
    np.testing.assert_array_equal(transform_steps(pipe.steps[:-1], shuffled), features.transform(ROWS))


def test_missing_column_raises_sklearns_error() -> None:
    pipe = build_pipeline(TargetName.CAPACITY_RETENTION, "magpie_v1", Ridge()).fit(ROWS, Y)
    ct = pipe.named_steps["features"]
    prepared = pipe[:1].transform(ROWS).drop(columns=["cycles"])
    with pytest.raises(ValueError, match="columns are missing"):
        column_transform(ct, prepared)


def test_falls_back_to_sklearn_for_arrays_passthrough_and_pandas_output() -> None:
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, -1.0, 4.0], "c": [3.0, 3.0, 1.0]})
    passthrough = ColumnTransformer([("s", StandardScaler(), ["a"])], remainder="passthrough").fit(X)
    np.testing.assert_array_equal(column_transform(passthrough, X), passthrough.transform(X))
    by_position = ColumnTransformer([("s", StandardScaler(), [0, 2])]).fit(X.to_numpy())
    np.testing.assert_array_equal(
        column_transform(by_position, X.to_numpy()), by_position.transform(X.to_numpy())
    )
    with sklearn.config_context(transform_output="pandas"):
        pandas_out = ColumnTransformer([("s", StandardScaler(), ["a", "b"])]).fit(X)
        got = column_transform(pandas_out, X)
        assert isinstance(got, pd.DataFrame)
        pd.testing.assert_frame_equal(got, pandas_out.transform(X))


def test_predictor_array_path_equals_dataframe() -> None:
    from models.uncertain import UncertainRegressor

    table = pd.read_csv(DATA_DIR / "curated" / "ionic_conductivity.csv")
    table = table[~table.censored].head(60).reset_index(drop=True)
    model = UncertainRegressor(
        build_pipeline(TargetName.IONIC_CONDUCTIVITY, "magpie_v1", RandomForestRegressor(20, random_state=0)),
        n_splits=3,
        domain_ion_elements=("Na", "Li"),
    ).fit(table[["formula"]], table.log10_sigma_s_cm, groups=table.source)
    X = ROWS[["formula"]]
    frame = model.predict_with_uncertainty(X)
    assert not frame.in_domain.all()  # both branches of the domain reasons are compared
    arrays = model.predict_with_uncertainty_arrays(X)
    assert list(arrays) == [*frame.columns, *RAW_OUTPUTS]  # + the raw mean/spread for relative columns
    np.testing.assert_array_equal(arrays["raw_mean"], model.predict(X))
    for col in frame.columns:
        values = arrays[col]
        assert values.dtype == frame[col].dtype
        np.testing.assert_array_equal(values, frame[col].to_numpy())


def test_normal_quantile_cache_equals_scipy() -> None:
    from scipy.stats import norm

    for coverage in (0.9, 0.5, 0.95, 0.9):
        assert normal_quantile(coverage) == float(norm.ppf(0.5 + coverage / 2.0))
    with pytest.raises(ValueError, match="coverage"):
        normal_quantile(1.0)


def test_scaler_and_imputer_direct_paths_equal_sklearn_bit_for_bit() -> None:
    from sklearn.impute import SimpleImputer

    from models.fast_transform import _impute_nan, _plain_float_input, _standard_scale

    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(50, 6))
    train[rng.random(train.shape) < 0.2] = np.nan
    train[:, 4] = np.nan  # a feature never observed: kept (keep_empty_features) with statistic 0
    X = rng.normal(3.0, 2.0, size=(9, 6))
    X[rng.random(X.shape) < 0.3] = np.nan
    imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(train)
    assert _plain_float_input(imputer, X)
    imputed = _impute_nan(imputer, X)
    np.testing.assert_array_equal(imputed, imputer.transform(X))
    assert np.isnan(X).any()  # the input is not modified
    scaler = StandardScaler().fit(imputer.transform(train))
    np.testing.assert_array_equal(_standard_scale(scaler, imputed), scaler.transform(imputed))
    # inf, another dtype or a DataFrame: sklearn's own path (and its errors)
    with_inf = imputed.copy()
    with_inf[0, 0] = np.inf
    assert not _plain_float_input(scaler, with_inf)
    assert not _plain_float_input(scaler, imputed.astype(np.float32))
    assert not _plain_float_input(scaler, pd.DataFrame(imputed))
    steps = [("impute", imputer), ("scale", scaler)]
    with pytest.raises(ValueError, match="infinity"):
        transform_steps(steps, with_inf)


def test_one_hot_rows_equal_sklearn_for_known_unknown_and_missing_values() -> None:
    import warnings

    from sklearn.preprocessing import OneHotEncoder

    from models.fast_transform import one_hot

    train = pd.DataFrame({"phase": ["glass"] * 6 + ["crystalline"] * 6 + ["rare"] * 2 + ["unknown"] * 5})
    for kwargs in (
        {"handle_unknown": "infrequent_if_exist", "min_frequency": 5},
        {"handle_unknown": "ignore", "drop": "first"},
    ):
        enc = OneHotEncoder(sparse_output=False, **kwargs).fit(train)  # type: ignore[arg-type]
        for values in (["glass"], ["unknown", "glass", "rare", "glass"], ["glass", "never-seen"], [None]):
            X = pd.DataFrame({"phase": values})
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                want = enc.transform(X)
                got = one_hot(enc, X.iloc[:, 0].tolist(), lambda X=X: X)
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype
    strict = OneHotEncoder(sparse_output=False).fit(train)
    with pytest.raises(ValueError, match="unknown categor"):
        one_hot(strict, ["never-seen"], lambda: pd.DataFrame({"phase": ["never-seen"]}))


def test_select_columns_equals_pandas_selection() -> None:
    """``select_columns`` gives the frame ``X[cols]`` gives: columns, order, dtypes, index, values; a
    frame with repeated column names (or a repeated selection) takes pandas' own indexer."""
    from models.fast_transform import select_columns

    frame = ROWS.assign(flag=[True, False] * 4, count=np.arange(8, dtype=np.int32))
    for cols in (["formula"], ["cycles", "formula"], ["flag", "count"]):
        for X in (frame, frame.iloc[[3]], frame.iloc[:0]):
            got, expected = select_columns(X, cols), X[cols]
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
            assert got is not X
    dup = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    pd.testing.assert_frame_equal(select_columns(dup, ["a"]), dup[["a"]])
    pd.testing.assert_frame_equal(select_columns(frame, ["cycles", "cycles"]), frame[["cycles", "cycles"]])


@pytest.mark.parametrize("keep_empty", [False, True])
def test_conditions_imputers_direct_path_equals_sklearn(
    keep_empty: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conditions' imputers (with the missing-value indicator, after a log1p) computed directly equal
    ``ColumnTransformer.transform`` bit for bit, one row at a time and in batches, with NaN anywhere, a
    training column without NaN (no indicator column for it) and one never observed (sklearn's path)."""
    import warnings

    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from models import fast_transform

    rng = np.random.default_rng(3)
    n = 80
    train = pd.DataFrame({c: rng.gamma(2.0, 50.0, n) for c in ("a", "b", "c", "d")})
    train.loc[rng.random(n) < 0.3, "a"] = np.nan
    train.loc[rng.random(n) < 0.2, "c"] = np.nan  # "b" and "d" never missing: no indicator columns
    ct = ColumnTransformer(
        [
            ("log", make_pipeline(FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
                                  SimpleImputer(strategy="median", add_indicator=True,
                                                keep_empty_features=keep_empty)), ["a", "b"]),
            ("plain", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=keep_empty),
             ["c", "d"]),
        ]
    ).fit(train)  # fmt: skip
    queries = pd.DataFrame({c: rng.gamma(2.0, 50.0, 60) for c in train.columns})
    for c in train.columns:
        queries.loc[rng.random(60) < 0.35, c] = np.nan
    calls: list[str] = []
    imputed = fast_transform._imputed
    monkeypatch.setattr(fast_transform, "_imputed", lambda *a: calls.append("direct") or imputed(*a))
    for i in range(len(queries)):
        row = queries.iloc[[i]]
        np.testing.assert_array_equal(column_transform(ct, row), ct.transform(row))
    np.testing.assert_array_equal(column_transform(ct, queries), ct.transform(queries))
    assert len(calls) == 2 * (len(queries) + 1)
    with_inf = queries.iloc[[0]].assign(c=np.inf)
    with pytest.raises(ValueError, match="infinity"):
        column_transform(ct, with_inf)
    never = train.assign(d=np.nan)  # a column never observed: sklearn warns and drops it (or keeps it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct_never = ColumnTransformer(
            [("plain", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=keep_empty),
              ["c", "d"])]
        ).fit(never)  # fmt: skip
        np.testing.assert_array_equal(column_transform(ct_never, queries), ct_never.transform(queries))
