"""Applicability domain: unseen elements and feature-space distance, with reasons that carry the numbers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from featurize.composition import parse_formula
from featurize.featuresets import get_feature_set
from models.domain import (
    ApplicabilityDomain,
    FeatureSpaceDistance,
    anion_sets,
    chemistry_classes,
    domain_category_units,
    domain_ions,
)
from models.targets import TargetName

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


def test_a_rare_category_counts_one_unit_not_its_standard_deviations() -> None:
    rng = np.random.default_rng(0)
    n = 400
    continuous = rng.standard_normal(n)
    rare = (np.arange(n) < 4).astype(float)  # a one-hot category of 4 rows in 400 (1%)
    Z = np.column_stack([continuous, rare])
    dist = FeatureSpaceDistance(k=1, category_units=True).fit(Z)
    assert dist.scale_[1] == 1.0  # by its std (0.099) a mismatch would be 10 units
    np.testing.assert_allclose(FeatureSpaceDistance(k=1).fit(Z).scale_, Z.std(axis=0))  # the default
    # a common-category query next to a training row, written in the rare category: one unit farther
    query = np.array([[continuous[200], 0.0], [continuous[200], 1.0]])
    d = dist.mean_knn_distance(query)
    assert d[0] == 0.0 and 0.0 < d[1] <= 1.0
    # standardised first (as the pipeline's features are), the category still counts one unit
    shifted = FeatureSpaceDistance(k=1, category_units=True).fit((Z - Z.mean(axis=0)) / Z.std(axis=0))
    np.testing.assert_allclose(shifted.scale_[1], 1.0 / Z[:, 1].std())
    # the domain passes it on, and the conductivity domain uses it (the cathode targets do not)
    held = FeatureSpaceDistance(1, True).fit(Z[:300]).mean_knn_distance(Z[300:])
    domain = ApplicabilityDomain(1, 0.95, category_units=True).fit(
        Z, training_elements={"Na", "Cl"}, heldout_distances=held
    )
    assert domain.distance_.scale_[1] == 1.0
    assert domain_category_units(TargetName.IONIC_CONDUCTIVITY)
    assert not domain_category_units(TargetName.CAPACITY_RETENTION)
    assert not domain_category_units(TargetName.AVERAGE_VOLTAGE)


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


@pytest.mark.parametrize(
    ("formula", "anions"),
    [
        ("Na2O2HfCl4", {"O", "Cl"}),  # NHOC: peroxide O and Cl are both anions
        ("Na2O2TaCl5", {"O", "Cl"}),
        ("Na2HfCl6", {"Cl"}),
        ("Na3Zr2Si2PO12", {"O"}),  # phosphate P and silicate Si are cations (polyanion centres)
        ("Na2SO4", {"O"}),  # sulfate S +6
        ("Na3BO3", {"O"}),
        ("Na3PS4", {"S"}),  # thiophosphate: S anion, P +5
        ("Na6PS5Cl", {"S", "Cl"}),
        ("Na3PS3O", {"S", "O"}),  # oxysulfide: S stays an anion next to O
        ("Li1.05Ti1.95Al0.05PO4", {"O"}),  # mis-transcribed phosphate: P is not made a phosphide anion
        ("NaBH4", {"H"}),
        ("NaOH", {"O"}),
    ],
)
def test_anion_sets_follow_the_oxidation_roles(formula: str, anions: set[str]) -> None:
    assert anion_sets([parse_formula(formula)]) == [frozenset(anions)]


def test_anion_sets_batch_equals_one_by_one() -> None:
    formulas = ["Na2O2HfCl4", "Na3PS4", "Na3Zr2Si2PO12", "Na3PS3O", "NaBH4", "Li3InCl6", "Na2SO4"]
    comps = [parse_formula(f) for f in formulas]
    assert anion_sets(comps) == [anion_sets([c])[0] for c in comps]
    assert anion_sets([]) == []


def test_chemistry_classes_pair_each_target_ion_with_the_anions() -> None:
    comps = [parse_formula(f) for f in ("Na2HfO2Cl4", "NaLi0.33Ru0.67O2", "RuO2", "Li3InCl6")]
    assert chemistry_classes(comps, ("Na", "Li")) == [
        frozenset({("Na", frozenset({"Cl", "O"}))}),
        frozenset({("Na", frozenset({"O"})), ("Li", frozenset({"O"}))}),
        frozenset({(None, frozenset({"O"}))}),
        frozenset({("Li", frozenset({"Cl"}))}),
    ]
    assert chemistry_classes(comps[:1], ()) == [frozenset({(None, frozenset({"Cl", "O"}))})]
    assert domain_ions(TargetName.IONIC_CONDUCTIVITY) == ("Na", "Li")
    assert domain_ions("capacity_retention") == ("Na",)
    assert "Na" in domain_ions("average_voltage") and "Mg" not in domain_ions("average_voltage")


def _class_domain(train: list[str], ions: tuple[str, ...] = ("Na", "Li")) -> ApplicabilityDomain:
    comps = [parse_formula(f) for f in train]
    Z = np.random.default_rng(0).standard_normal((len(comps), 3))
    return ApplicabilityDomain(k=2, quantile=1.0).fit(
        Z,
        training_elements=set().union(*(c.elements for c in comps)),
        heldout_distances=[100.0],  # distance never flags here: only the class rule is under test
        training_classes=chemistry_classes(comps, ions),
        ion_elements=ions,
    )


def test_unseen_chemistry_class_is_out_of_domain_with_what_was_seen() -> None:
    train = ["Na3Zr2Si2PO12", "Na3Zr2Si2PO12", "Na3PS4", "Li3InCl6", "Li3HfCl6", "Li3OCl", "LiZr2P3O12"]
    domain = _class_domain(train)
    queries = [
        parse_formula(f) for f in ("Na2HfO2Cl4", "Na2HfCl6", "Na3Hf2Si2PO12", "Li2ZrCl6", "NaLi2InCl6")
    ]
    classes = chemistry_classes(queries, ("Na", "Li"))
    ok, reasons, _ = domain.assess(np.zeros((5, 3)), [q.elements for q in queries], classes)
    assert ok.tolist() == [False, False, True, True, False]
    seen = "(seen for Na: {O} (2 rows), {S} (1 row))"
    assert reasons == [
        f"no Na compound with anions {{Cl, O}} in the training data {seen}",
        f"no Na compound with anions {{Cl}} in the training data {seen}",
        "",
        "",
        f"no Na compound with anions {{Cl}} in the training data {seen}",  # Li with Cl is known, Na is not
    ]
    # the element rule and the class rule both speak, joined with "; "
    ok, reasons, _ = domain.assess(np.zeros((1, 3)), [{"Na", "Ta", "O", "Cl"}], classes[:1])
    assert reasons == [f"elements not in the training data: Ta; {domain.class_reason(classes[0])}"]
    # a compound without any target ion is judged on its anions among the ion-free training rows
    no_ion = chemistry_classes([parse_formula("ZrO2")], ("Na", "Li"))[0]
    assert domain.class_reason(no_ion) == (
        "no compound without Na/Li with anions {O} in the training data (seen without Na/Li: none)"
    )


def test_class_rule_is_off_without_training_classes_and_batched_reasons_match_row_by_row() -> None:
    domain = _synthetic_domain(np.random.default_rng(2))
    cls = chemistry_classes([parse_formula("Na2HfO2Cl4")], ("Na",))
    ok, reasons, _ = domain.assess(np.zeros((1, 6)), [{"Na", "Zr", "O"}], cls)
    assert ok.tolist() == [True] and reasons == [""]
    with pytest.raises(ValueError, match="chemistry classes"):
        domain.assess(np.zeros((2, 6)), [{"Na"}, {"Na"}], cls)

    on = _class_domain(["Na3Zr2Si2PO12", "Li3InCl6", "Na3PS4"])
    formulas = ["Na2HfO2Cl4", "Na3Zr2Si2PO12", "Na2HfO2Cl4", "Na2HfCl6", "Li3YCl6", "Na2ZrO2Cl4"] * 3
    comps = [parse_formula(f) for f in formulas]
    classes = chemistry_classes(comps, ("Na", "Li"))
    _, reasons, _ = on.assess(np.zeros((len(comps), 3)), [c.elements for c in comps], classes)
    assert reasons == [
        "; ".join(r for r in (_unseen(on, c.elements), on.class_reason(k)) if r)
        for c, k in zip(comps, classes, strict=True)
    ]


def _unseen(domain: ApplicabilityDomain, elements: tuple[str, ...]) -> str:
    missing = [e for e in elements if e not in domain.training_elements_]
    return f"elements not in the training data: {', '.join(missing)}" if missing else ""
