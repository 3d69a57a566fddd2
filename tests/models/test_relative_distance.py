"""Delta predictions by composition distance: the distance, the protocol rule and the near-host report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featurize.composition import parse_formula
from models.relative import (
    NEAR_HOST_DISTANCE,
    composition_distance,
    delta_by_distance,
    pair_distances,
    relative_report,
    same_protocol,
)

HOST = "Na0.6Li0.2Mn0.8O2"
DOPED = "Na0.6Li0.2Mn0.7Ru0.1O2"


def test_composition_distance_golden() -> None:
    # 3.6 atoms per formula unit: 0.1 Mn out, 0.1 Ru in
    assert composition_distance(parse_formula(HOST), parse_formula(DOPED)) == pytest.approx(0.2 / 3.6)
    assert composition_distance(parse_formula(HOST), parse_formula(DOPED)) <= NEAR_HOST_DISTANCE
    # the same composition written twice, and two with no element in common
    assert composition_distance(parse_formula("NaMnO2"), parse_formula("Na2Mn2O4")) == pytest.approx(0.0)
    assert composition_distance(parse_formula("NaCl"), parse_formula("LiF")) == pytest.approx(2.0)


def test_pair_distances_and_protocol() -> None:
    frame = pd.DataFrame(
        {
            "formula": [HOST, DOPED, HOST, "NaFePO4"],
            "cycles": [200.0, 200.0, 100.0, 200.0],
            "current_mA_g": [np.nan, np.nan, np.nan, 20.0],
        }
    )
    a, b = np.array([0, 0, 0]), np.array([1, 2, 3])
    dist = pair_distances(frame["formula"], a, b)
    assert dist[0] == pytest.approx(0.2 / 3.6)
    assert dist[1] == 0.0
    assert dist[2] == pytest.approx(0.6032, abs=1e-4)  # NaFePO4 shares Na and O with the host
    # NaN equals NaN; another cycle count or a given current is another protocol
    assert same_protocol(frame, a, b).tolist() == [True, False, False]


def _near_host_oof(n_studies: int = 80, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per study: a host, its 5 %-doped variant (same protocol, sharing a residual component), a far
    composition and the host at another cycle count (both with independent residuals)."""
    rng = np.random.default_rng(seed)
    formulas = ["NaMnO2", "NaMn0.95Ti0.05O2", "NaFePO4", "NaMnO2"]
    cycles = [100.0, 100.0, 100.0, 200.0]
    shared = rng.normal(scale=10.0, size=n_studies)
    resid = rng.normal(scale=10.0, size=(n_studies, 4))
    resid[:, 0] += shared
    resid[:, 1] += shared
    resid[:, 2:] *= np.sqrt(2.0)  # every row has the same residual variance
    truth = rng.uniform(40, 90, size=(n_studies, 4))
    groups = np.repeat(np.arange(n_studies), 4)
    oof = pd.DataFrame(
        {
            "y_true": (truth + resid).ravel(),
            "prediction": truth.ravel(),
            "std": 10.0,
            "lower_90": truth.ravel() - 25,
            "upper_90": truth.ravel() + 25,
            "group": groups,
            "fold": groups % 4,
            "sigma_hat": rng.uniform(5, 15, size=4 * n_studies),
        }
    )
    kept = pd.DataFrame({"formula": formulas * n_studies, "cycles": cycles * n_studies})
    return oof, kept


def test_near_host_pairs_are_found_and_scored() -> None:
    oof, kept = _near_host_oof()
    report = relative_report(oof, kept)
    assert report["near_host_n"] == 80  # exactly the host / doped pair of every study
    assert report["all_pairs_n"] == 80 * 6
    # the shared component: correlation ~0.5 for near-host pairs, ~0.5 / 6 over all pairs
    assert report["near_host_residual_corr"] == pytest.approx(0.5, abs=0.15)
    assert report["all_pairs_residual_corr"] < 0.25
    assert report["near_host_delta_mae"] < 0.8 * report["all_pairs_delta_mae"]
    assert 0.8 <= report["all_pairs_coverage_90"] <= 1.0


def test_delta_by_distance_bins() -> None:
    oof, kept = _near_host_oof()
    table = delta_by_distance(oof, kept)
    by = table.set_index(["protocol", "distance"])
    # host vs 5 % Ti on the Mn site: L1 = 0.1 / 3 = 0.033
    assert by.loc[("same", "(0.02, 0.04]"), "n"] == 80
    assert by.loc[("different", "0"), "n"] == 80  # the host at another cycle count
    assert table["n"].sum() == 80 * 6
    near = by.loc[("same", "(0.02, 0.04]")]
    assert near["residual_corr"] > by.loc[("same", "(0.2, 2]"), "residual_corr"] + 0.2
    assert np.isnan(by.loc[("same", "0"), "delta_mae"])  # no pair there: NaN, not 0
