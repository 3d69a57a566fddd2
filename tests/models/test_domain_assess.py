"""ApplicabilityDomain.assess (batched reasons) equals the row-by-row definition."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import numpy as np

from models.domain import ApplicabilityDomain


def _reference(domain: ApplicabilityDomain, dist: np.ndarray, sets: Sequence[AbstractSet[str]]) -> list[str]:
    from models.domain import _element_sort_key

    out = []
    for d, elements in zip(dist, sets, strict=True):
        parts = []
        unseen = sorted(set(elements) - domain.training_elements_, key=_element_sort_key)
        if unseen:
            parts.append(f"elements not in the training data: {', '.join(unseen)}")
        if not np.isfinite(d):
            parts.append("features are not finite (cannot measure the distance to the training data)")
        elif d > domain.threshold_:
            parts.append(
                f"feature-space distance {d:.3g} > threshold {domain.threshold_:.3g} "
                f"(mean of {domain.distance_.k_} nearest training rows)"
            )
        out.append("; ".join(parts))
    return out


def test_assess_matches_row_by_row_reasons() -> None:
    rng = np.random.RandomState(0)
    Z = rng.randn(60, 4)
    domain = ApplicabilityDomain(k=3, quantile=0.5).fit(
        Z, training_elements={"Na", "Mn", "O"}, heldout_distances=rng.rand(30) + 0.5
    )
    Q = np.vstack([rng.randn(40, 4), 5 + rng.randn(40, 4), np.full((5, 4), np.nan)])
    choices: list[AbstractSet[str]] = [
        {"Na", "Mn", "O"},
        {"Na", "Ru", "O"},
        frozenset({"Hf", "Cl", "Na"}),
        {"Mn", "O"},
    ]
    sets = [choices[i % len(choices)] for i in range(len(Q))]
    in_domain, reasons, dist = domain.assess(Q, sets)
    expected = _reference(domain, dist, sets)
    assert reasons == expected
    np.testing.assert_array_equal(in_domain, np.array([r == "" for r in expected]))
    assert in_domain.any() and not in_domain.all()
    assert any("Cl, Hf" in r for r in reasons)  # sorted by atomic number, not alphabetically


def test_same_ion_support_flags_a_na_row_whose_only_neighbours_are_li_rows():
    from featurize.composition import parse_formula
    from models.domain import ApplicabilityDomain, chemistry_classes

    rng = np.random.default_rng(0)
    # Li rows spread around 0, Na rows around +6 in the first feature; the query is a Na compound at 0
    li = rng.normal(size=(40, 3))
    na = rng.normal(size=(10, 3)) + np.array([6.0, 0.0, 0.0])
    Z = np.vstack([li, na])
    comps = [parse_formula("Li2O")] * 40 + [parse_formula("Na2O")] * 10
    classes = chemistry_classes(comps, ("Na", "Li"))
    heldout = np.full(50, 1.5)
    domain = ApplicabilityDomain(k=3, quantile=0.95).fit(
        Z, training_elements={"Li", "Na", "O"}, heldout_distances=heldout,
        training_classes=classes, ion_elements=("Na", "Li"),
    )  # fmt: skip
    queries = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    q_comps = [parse_formula("Na2O"), parse_formula("Na2O")]
    flags, reasons, _ = domain.assess(
        queries, [frozenset(c.elements) for c in q_comps], chemistry_classes(q_comps, ("Na", "Li"))
    )
    assert list(flags) == [False, True]
    assert "no close Na compound" in reasons[0] and reasons[1] == ""
    # without classes (the rule off) the first query is in domain: it is near the Li rows
    flags_off, _, _ = domain.assess(queries, [frozenset(c.elements) for c in q_comps])
    assert flags_off[0]
