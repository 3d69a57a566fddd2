"""The campaign's local residual model (screening.campaign.local), the pure parts: the representation keeps
what varies over the space (scaled) and drops what does not, and the residual GP recovers a trend
planted in one dopant's fraction from a few rows, with less uncertainty where it has data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.measurements import Measurement
from models.targets import TargetName
from screening.campaign import fit_residual_gp, local_features

T = TargetName.CAPACITY_RETENTION


def _space() -> pd.DataFrame:
    """Ti and Ru on the Mn site of Na0.6Li0.2Mn0.8O2, ten fractions each, one protocol."""
    formulas = [
        f"Na0.6Li0.2Mn{round(0.8 - x, 4)}{d}{x}O2"
        for d in ("Ti", "Ru")
        for x in np.round(np.arange(1, 11) * 0.02, 4)
    ]
    return pd.DataFrame({"formula": formulas, "cycles": 100.0, "current_mA_g": 20.0})


def test_features_keep_the_varying_sites_and_conditions_standardised() -> None:
    space = _space()
    measured = [
        Measurement(
            formula=space["formula"].iat[0], target=T, value=80.0, conditions={"cycles": 300.0}, round=1
        )
    ]
    cand, meas, names = local_features(T, space, measured)
    # Na, Li and O fractions are the same everywhere: only the site that varies (and cycles, which differ
    # between the measured row and the candidates) remain; current is the same everywhere and is dropped
    assert names == ["x(Mn)", "x(Ru)", "x(Ti)", "cycles"]
    assert cand.shape == (20, 4) and meas.shape == (1, 4)
    both = np.vstack([cand, meas])
    assert np.allclose(both.mean(axis=0), 0.0)
    # the composition block as one (unit RMS distance from the mean composition), the condition as z-score
    assert np.mean(np.sum(both[:, :3] ** 2, axis=1)) == pytest.approx(1.0) and both[
        :, 3
    ].std() == pytest.approx(1.0)
    # the measured row is the first candidate's composition: the same composition columns
    assert np.allclose(meas[0, :3], cand[0, :3]) and meas[0, 3] > cand[0, 3]


def test_residual_gp_recovers_a_planted_linear_trend_in_one_fraction() -> None:
    space = _space()
    cand, _, names = local_features(T, space, [])
    x_ti = np.where(
        space["formula"].str.contains("Ti"), np.round(np.tile(np.arange(1, 11) * 0.02, 2), 4), 0.0
    )
    truth = 300.0 * x_ti  # the lab's values rise by 6 points per 0.02 of Ti above what the model says
    seen = np.array([0, 2, 4, 6, 10, 15])  # four Ti rows (x = 0.02 .. 0.14) and two Ru rows
    gp = fit_residual_gp(cand[seen], truth[seen])
    mean, std = gp.predict(cand, return_std=True)
    hidden_ti = np.array([1, 3, 5])  # inside the measured Ti range
    assert np.max(np.abs(mean[hidden_ti] - truth[hidden_ti])) < 3.0, (mean[hidden_ti], truth[hidden_ti])
    assert np.all(np.diff(mean[:10]) > 0), mean[:10]  # rises along the Ti series, beyond the data too
    assert std[seen].max() < std[9], (std[seen], std[9])  # x = 0.20 of Ti: beyond the data
    assert "x(Ti)" in names


def test_residual_gp_refuses_what_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match=">= 2 rows"):
        fit_residual_gp(np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError, match="finite"):
        fit_residual_gp(np.array([[0.0], [np.nan]]), np.zeros(2))
