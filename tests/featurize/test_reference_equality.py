"""The fast NumPy path equals matminer's reference, feature by feature.

Tolerance: |fast - reference| <= 1e-9 * |reference| + 1e-12 * scale, where scale is the largest |value|
of that feature over the data (the absolute term only matters for features that are exactly 0 in one
path and a few ulps in the other, e.g. the avg_dev of a composition whose elements share a value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition as PmgComposition

from featurize.featuresets import get_feature_set

KANG = Path("/work/shared/data/conductivity/kang2023/Ionic_conductivity_training_dataset.csv")
RTOL = 1e-9
ATOL_SCALE = 1e-12


class _PmgComposition:
    """Composition-shaped value built by pymatgen (stands in until featurize.composition lands)."""

    def __init__(self, formula: str) -> None:
        reduced = PmgComposition(formula).reduced_composition
        items = sorted(reduced.items(), key=lambda kv: kv[0].Z)
        self.elements = tuple(str(e) for e, _ in items)
        self.amounts = tuple(float(a) for _, a in items)

    def to_pymatgen(self) -> PmgComposition:
        return PmgComposition(dict(zip(self.elements, self.amounts, strict=True)))


def assert_features_equal(fast: np.ndarray, ref: np.ndarray, labels: list[str]) -> None:
    assert fast.shape == ref.shape
    assert np.array_equal(np.isnan(fast), np.isnan(ref)), "NaN pattern differs"
    scale = np.nanmax(np.abs(ref), axis=0, initial=0.0)
    tol = RTOL * np.abs(ref) + ATOL_SCALE * scale[None, :]
    bad = ~(np.abs(fast - ref) <= tol) & ~np.isnan(ref)
    if bad.any():
        rows, cols = np.nonzero(bad)
        worst = [(labels[c], int(r), fast[r, c], ref[r, c]) for r, c in zip(rows[:5], cols[:5], strict=True)]
        raise AssertionError(f"{bad.sum()} features differ beyond tolerance, e.g. {worst}")


@pytest.fixture(scope="module")
def kang() -> pd.DataFrame:
    return pd.read_csv(KANG)


@pytest.fixture(scope="module")
def kang_comps(kang: pd.DataFrame) -> list[_PmgComposition]:
    return [_PmgComposition(f) for f in kang["Formula"]]


@pytest.mark.parametrize("name", ["magpie_v1", "stoichiometry_v1", "valence_orbital_v1"])
def test_fast_equals_reference_on_kang(name: str, kang_comps: list[_PmgComposition]) -> None:
    fs = get_feature_set(name)
    assert_features_equal(fs.compute(kang_comps), fs.compute_reference(kang_comps), fs.feature_labels())


@pytest.mark.parametrize("name", ["magpie_v1", "stoichiometry_v1", "valence_orbital_v1"])
def test_fast_equals_kang_precomputed_columns(
    name: str, kang: pd.DataFrame, kang_comps: list[_PmgComposition]
) -> None:
    fs = get_feature_set(name)
    labels = fs.feature_labels()
    present = [label for label in labels if label in kang.columns]
    if name == "magpie_v1":
        assert len(present) == 132
    fast = fs.compute(kang_comps)[:, [labels.index(label) for label in present]]
    assert_features_equal(fast, kang[present].to_numpy(dtype=np.float64), present)
