"""Cross-ion transfer features and the class-offset forest (models.transfer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from featurize.composition import parse_formula
from models.estimators.spread import predict_mean_std
from models.features import build_pipeline
from models.targets import TargetName
from models.transfer import (
    ANION_ELEMENTS,
    NON_OXIDE_ANIONS,
    FrameworkCations,
    IonRoutedRegressor,
    MobileIonSwap,
    NonOxideFramework,
    framework_column,
    ion_fraction_columns,
    swap_ion,
    transfer_blocks,
)


def canon(formula: str) -> str:
    return parse_formula(formula).formula


def test_swap_ion_counts_li_as_na_and_leaves_the_rest():
    assert swap_ion("Li3InCl6") == canon("Na3InCl6")
    assert swap_ion("Na3PS4") == canon("Na3PS4")
    assert swap_ion("Li0.5Na0.5CoO2") == canon("NaCoO2")
    assert swap_ion("Xx2O") == "Xx2O"  # unparseable: returned as is for the featurizer to report
    out = MobileIonSwap().fit(None).transform(pd.DataFrame({"formula": ["Li3YCl6", "Li3YCl6"]}))
    assert list(out["formula"]) == [canon("Na3YCl6")] * 2


def test_transfer_blocks_add_the_expected_columns():
    with pytest.raises(ValueError, match="unknown transfer kind"):
        transfer_blocks("magic")
    X = pd.DataFrame({"formula": ["Li3InCl6", "Na3InCl6", "Na3PS4", "Li6PS5Cl"] * 3})
    y = np.linspace(-5, -2, len(X))
    reg = RandomForestRegressor(n_estimators=5, random_state=0)
    plain = build_pipeline(TargetName.IONIC_CONDUCTIVITY, "magpie_v1", reg).fit(X, y)
    swap = build_pipeline(
        TargetName.IONIC_CONDUCTIVITY, "magpie_v1", reg, extra_blocks=transfer_blocks("swap+anions")
    ).fit(X, y)
    n_plain = plain[:-1].transform(X).shape[1]
    z = swap[:-1].transform(X)
    assert z.shape[1] == n_plain + 132 + len(ANION_ELEMENTS)
    # columns: magpie (132), Na/Li fractions (2), Na-analogue magpie (132), anions, phase one-hot
    ions = list(ion_fraction_columns("magpie_v1"))
    assert ions == [132, 133]
    analogue = z[:, 134 : 134 + 132]  # with swap+anions the analogue block comes before the anions
    assert np.allclose(analogue[0], analogue[1])  # Li3InCl6 looks like Na3InCl6 in the analogue block
    assert not np.allclose(z[0, :132], z[1, :132])  # ... but not in its own composition features
    assert not np.allclose(z[0, ions], z[1, ions])  # and the ion identity stays visible


def test_ion_routed_regressor_predicts_na_rows_from_na_rows_only():
    rng = np.random.default_rng(0)
    n = 200
    # columns: 2 features, Na fraction, Li fraction; Li rows follow another law than Na rows
    Z = rng.normal(size=(n, 4))
    na = rng.random(n) < 0.4
    Z[:, 2] = np.where(na, 0.3, 0.0)
    Z[:, 3] = np.where(na, 0.0, 0.3)
    y = np.where(na, Z[:, 0], -3.0 * Z[:, 0])
    forest = RandomForestRegressor(n_estimators=30, random_state=0)
    routed = IonRoutedRegressor(forest, ion_column=2, other_ion_column=3).fit(Z, y)
    own = routed.own_
    assert own is not None and np.allclose(routed.predict(Z[na]), own.predict(Z[na]))
    assert np.allclose(routed.predict(Z[~na]), routed.joint_.predict(Z[~na]))  # Li rows: the joint forest
    mean, std = predict_mean_std(routed, Z)
    assert np.allclose(mean, routed.predict(Z)) and std is not None and (std >= 0).all()
    # the joint forest walks only the rows it answers: equal bit for bit to predicting every row with
    # both forests and keeping the Na forest's answer for the Na rows (the former way), mixed, Na-only
    # and Li-only batches alike
    for rows in (np.arange(n), np.flatnonzero(na), np.flatnonzero(~na), np.flatnonzero(na)[:1]):
        j_mean, j_std = predict_mean_std(routed.joint_, Z[rows])
        o_mean, o_std = predict_mean_std(own, Z[rows])
        both = na[rows]
        got_mean, got_std = predict_mean_std(routed, Z[rows])
        np.testing.assert_array_equal(got_mean, np.where(both, o_mean, j_mean))
        np.testing.assert_array_equal(got_std, np.where(both, o_std, j_std))
    few = IonRoutedRegressor(forest, 2, 3, min_rows=10_000).fit(Z, y)
    assert few.own_ is None and np.allclose(few.predict(Z), few.joint_.predict(Z))
    with pytest.raises(ValueError, match="ion or framework columns"):
        IonRoutedRegressor(forest, 10, 11).fit(Z, y)


def test_non_oxide_framework_flags_halides_sulfides_hydroborates_not_oxides():
    X = pd.DataFrame({"formula": ["Na3Zr2Si2PO12", "NaAl11O17", "Na3YCl6", "Na2TaCl5O2", "Na3PS4",
                                  "Na2B12H12", "Xx2O"]})  # fmt: skip
    flags = NonOxideFramework().fit(X).transform(X)[:, 0]
    np.testing.assert_array_equal(flags[:6], [0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    assert np.isnan(flags[6])  # unparseable: left to the composition featurizer to report
    assert set(NON_OXIDE_ANIONS) == set(ANION_ELEMENTS) - {"O"}
    pipe = build_pipeline(
        TargetName.IONIC_CONDUCTIVITY,
        "magpie_v1",
        RandomForestRegressor(n_estimators=3, random_state=0),
        extra_blocks=transfer_blocks("framework"),
    ).fit(X.iloc[:6], np.linspace(-5, -2, 6))
    z = pipe[:-1].transform(X.iloc[:6])
    col = framework_column("magpie_v1")
    assert col == 134
    assert (z[2:, col] > z[:2, col].max()).all()  # the flag column, standardised, right after Na / Li


def test_framework_cations_is_the_mean_state_of_the_non_mobile_cations():
    formulas = ["Na0.75La1.75Cl6", "NaLa0.95Ta0.43Cl6", "Na2ZrCl6", "NaTaCl6", "Na3Zr2Si2PO12",
                "Li3InCl6", "Xx2O", "NaCl"]  # fmt: skip
    got = FrameworkCations().fit(None).transform(pd.DataFrame({"formula": formulas}))[:, 0]
    expected = [3.0, (0.95 * 3 + 0.43 * 5) / 1.38, 4.0, 5.0, (2 * 4 + 2 * 4 + 5) / 5, 3.0]
    np.testing.assert_allclose(got[:6], expected)
    assert np.isnan(got[6]) and np.isnan(got[7])  # unparseable; no framework cation
    # one row at a time (the serving path) gives the same values as the batch
    one = [FrameworkCations().fit(None).transform_values([f])[0, 0] for f in formulas[:6]]
    np.testing.assert_allclose(one, got[:6])
    pipe = build_pipeline(
        TargetName.IONIC_CONDUCTIVITY,
        "magpie_v1",
        RandomForestRegressor(n_estimators=3, random_state=0),
        extra_blocks=transfer_blocks("framework+cations"),
    ).fit(pd.DataFrame({"formula": formulas[:6]}), np.linspace(-5, -2, 6))
    names = list(pipe.named_steps["features"].get_feature_names_out())
    assert names.index("framework__non-oxide framework") == framework_column("magpie_v1")
    assert names[framework_column("magpie_v1") + 1] == "framework_cations__framework cation oxidation state"


def _framework_data(n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Columns: 2 features, Na fraction, Li fraction, non-oxide flag. Na non-oxide rows follow a third law."""
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(n, 5))
    na = rng.random(n) < 0.6
    non_oxide = rng.random(n) < 0.5
    Z[:, 2] = np.where(na, 0.3, 0.0)
    Z[:, 3] = np.where(na, 0.0, 0.3)
    Z[:, 4] = non_oxide.astype(float)
    y = np.where(na & non_oxide, 2.0 + Z[:, 1], np.where(na, Z[:, 0], -3.0 * Z[:, 0]))
    return Z, y, na, non_oxide


def test_framework_routing_answers_na_non_oxide_rows_from_their_own_forest():
    Z, y, na, non_oxide = _framework_data()
    forest = RandomForestRegressor(n_estimators=20, random_state=0)
    routed = IonRoutedRegressor(forest, 2, 3, framework_column=4).fit(Z, y)
    plain = IonRoutedRegressor(forest, 2, 3).fit(Z[:, :4], y)
    own, framed = routed.own_, routed.framework_
    assert own is not None and framed is not None
    assert routed.joint_.n_features_in_ == 4  # the flag is no feature of any forest
    frame_rows = na & non_oxide
    np.testing.assert_array_equal(routed.predict(Z[frame_rows]), framed.predict(Z[frame_rows][:, :4]))
    np.testing.assert_array_equal(routed.predict(Z[na & ~non_oxide]), own.predict(Z[na & ~non_oxide][:, :4]))
    # Li / mixed rows: the same joint forest, bit for bit, as without the framework column
    np.testing.assert_array_equal(routed.predict(Z[~na]), plain.predict(Z[~na, :4]))
    np.testing.assert_array_equal(routed.joint_.predict(Z[:, :4]), plain.joint_.predict(Z[:, :4]))
    # the third forest learnt the non-oxide law (the Na forest mixes both)
    test_z, test_y, test_na, test_nox = _framework_data(200)
    rows = test_na & test_nox
    err_routed = np.abs(routed.predict(test_z[rows]) - test_y[rows]).mean()
    err_plain = np.abs(plain.predict(test_z[rows, :4]) - test_y[rows]).mean()
    assert err_routed < err_plain
    # each forest walks only its rows: equal to every forest predicting every row, for any batch
    for batch in (np.arange(len(y)), np.flatnonzero(frame_rows)[:1], np.flatnonzero(~na)):
        got_mean, got_std = predict_mean_std(routed, Z[batch])
        which = np.where(frame_rows[batch], 2, np.where(na[batch], 1, 0))
        for k, est in enumerate((routed.joint_, own, framed)):
            if (which == k).any():
                m, s = predict_mean_std(est, Z[batch][:, :4])
                np.testing.assert_array_equal(got_mean[which == k], m[which == k])
                assert got_std is not None and s is not None
                np.testing.assert_array_equal(got_std[which == k], s[which == k])
    few = IonRoutedRegressor(forest, 2, 3, min_rows=10_000, framework_column=4).fit(Z, y)
    assert few.own_ is None and few.framework_ is None
    with pytest.raises(ValueError, match="framework columns"):
        IonRoutedRegressor(forest, 2, 3, framework_column=9).fit(Z, y)


def test_a_routed_regressor_pickled_before_the_framework_forest_still_predicts():
    Z, y, _, _ = _framework_data()
    old = IonRoutedRegressor(RandomForestRegressor(n_estimators=5, random_state=0), 2, 3).fit(Z[:, :4], y)
    expected = old.predict(Z[:, :4])
    del old.framework_column, old.framework_  # as unpickled from a model saved before this release
    np.testing.assert_array_equal(old.predict(Z[:, :4]), expected)


# the checks' data have as few as 2 columns: the framework flag is column 0 there (every routed row flagged)
@parametrize_with_checks(
    [
        IonRoutedRegressor(RandomForestRegressor(n_estimators=5, random_state=0), 0, 1, 5),
        IonRoutedRegressor(
            RandomForestRegressor(n_estimators=5, random_state=0), 0, 1, 5, framework_column=0
        ),
    ]
)
def test_ion_routed_regressor_follows_the_sklearn_contract(estimator, check):
    check(estimator)
