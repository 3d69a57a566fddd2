"""Cross-ion transfer features and the class-offset forest (models.transfer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor

from featurize.composition import parse_formula
from models.estimators.spread import predict_mean_std
from models.features import build_pipeline
from models.targets import TargetName
from models.transfer import (
    ANION_ELEMENTS,
    IonRoutedRegressor,
    MobileIonSwap,
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
    with pytest.raises(ValueError, match="ion columns"):
        IonRoutedRegressor(forest, 10, 11).fit(Z, y)
