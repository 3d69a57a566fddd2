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
