"""Applicability domain: unseen elements and feature-space distance, with reasons that carry the numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from featurize.composition import parse_formula
from featurize.featuresets import get_feature_set
from models.domain import ApplicabilityDomain, FeatureSpaceDistance

DATA_DIR = Path(__file__).resolve().parents[2] / "data"


def test_knn_distance_is_mean_of_k_nearest_in_standardised_units() -> None:
    Z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    dist = FeatureSpaceDistance(k=2).fit(Z)
    np.testing.assert_allclose(dist.scale_, [0.5, 0.5])
    # query at the first corner: neighbours at 0 and 1 raw unit = 0 and 2 standardised units
    np.testing.assert_allclose(dist.mean_knn_distance([[0.0, 0.0]]), [1.0])
    # a feature with 1000x the units does not dominate once standardised
    scaled = FeatureSpaceDistance(k=2).fit(Z * [1.0, 1000.0])
    np.testing.assert_allclose(scaled.mean_knn_distance([[0.0, 0.0]]), [1.0])
    assert np.isnan(dist.mean_knn_distance([[np.nan, 0.0]])[0])
    with pytest.raises(ValueError, match="NaN"):
        FeatureSpaceDistance().fit([[np.nan, 1.0]])


def _synthetic_domain(rng: np.random.Generator) -> ApplicabilityDomain:
    Z = rng.standard_normal((300, 6))
    held_out = FeatureSpaceDistance(5).fit(Z[:200]).mean_knn_distance(Z[200:])
    return ApplicabilityDomain(k=5, quantile=0.95).fit(
        Z, training_elements={"Na", "Zr", "Si", "P", "O"}, heldout_distances=held_out
    )


def test_far_rows_are_out_of_domain_with_the_numbers_in_the_reason() -> None:
    rng = np.random.default_rng(0)
    domain = _synthetic_domain(rng)
    near = rng.standard_normal((200, 6))
    far = near[:3] + 12.0
    ok, reasons, dist = domain.assess(np.vstack([near, far]), [{"Na", "O"}] * 203)
    assert ok[:200].mean() > 0.85  # new rows from the training distribution are mostly in domain
    assert not ok[200:].any()
    match = re.fullmatch(
        r"feature-space distance ([\d.]+) > threshold ([\d.]+) \(mean of 5 nearest training rows\)",
        reasons[200],
    )
    assert match is not None, reasons[200]
    assert float(match.group(1)) == pytest.approx(dist[200], rel=1e-2)
    assert float(match.group(2)) == pytest.approx(domain.threshold_, rel=1e-2)
    assert all(r == "" for r, flag in zip(reasons, ok, strict=True) if flag)


def test_unseen_elements_are_named_in_atomic_number_order() -> None:
    domain = _synthetic_domain(np.random.default_rng(1))
    z = np.zeros((2, 6))
    ok, reasons, _ = domain.assess(z, [{"Na", "Hf", "O", "Cl"}, {"Na", "Zr", "O"}])
    assert ok.tolist() == [False, True]
    assert reasons == ["elements not in the training data: Cl, Hf", ""]


def test_oxychloride_against_a_nasicon_only_domain_with_real_features() -> None:
    """Na2HfO2Cl4 vs a domain built on real Na NASICON formulas: out, for its elements and its distance."""
    import pandas as pd

    table = pd.read_csv(DATA_DIR / "curated" / "ionic_conductivity.csv")
    nasicon = table[(table.structure_family == "NASICON") & (table.mobile_ion == "Na")]
    comps = [parse_formula(f) for f in nasicon.formula]
    training_elements = set().union(*(c.elements for c in comps))
    assert "Cl" not in training_elements and "Hf" in training_elements
    fs = get_feature_set("magpie_v1")
    Z = fs.compute(comps)
    Z = np.where(np.isfinite(Z), Z, np.nanmedian(Z, axis=0))
    rng = np.random.default_rng(0)
    held = rng.permutation(len(Z))[: len(Z) // 5]
    train = np.setdiff1d(np.arange(len(Z)), held)
    held_dist = FeatureSpaceDistance(5).fit(Z[train]).mean_knn_distance(Z[held])
    domain = ApplicabilityDomain(5, 0.95).fit(
        Z, training_elements=training_elements, heldout_distances=held_dist
    )

    queries = [parse_formula("Na2HfO2Cl4"), parse_formula("Na3Zr2Si2PO12")]
    ok, reasons, dist = domain.assess(fs.compute(queries), [q.elements for q in queries])
    assert ok.tolist() == [False, True]
    assert reasons[0].startswith("elements not in the training data: Cl; feature-space distance")
    assert dist[0] > domain.threshold_ > dist[1]
