"""``valence_orbital_v1``: matminer ``ValenceOrbital()`` (avg and frac of s, p, d, f valence electrons)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from featurize import reference
from featurize.properties import magpie_table
from featurize.sets.base import CompositionLike, ElementBatch, FeatureSet, stat_mean
from featurize.sets.citations import DEML_2016, WARD_2016

ORBITALS: tuple[str, ...] = ("s", "p", "d", "f")


class ValenceOrbitalV1(FeatureSet):
    """Amount-weighted mean number of s/p/d/f valence electrons, and each divided by the weighted mean
    total number of valence electrons (matminer's "frac", a ratio of means, not a mean of ratios)."""

    name: ClassVar[str] = "valence_orbital_v1"
    version: ClassVar[int] = 1

    def feature_labels(self) -> list[str]:
        return [f"{prop} {orb} valence electrons" for prop in ("avg", "frac") for orb in ORBITALS]

    def citations(self) -> list[str]:
        return [WARD_2016, DEML_2016]

    def compute_batch(self, batch: ElementBatch) -> np.ndarray:
        table = magpie_table()
        cols = [table.properties.index(f"N{orb}Valence") for orb in ORBITALS]
        cols.append(table.properties.index("NValence"))
        means = stat_mean(table.values[:, cols][batch.index.T], batch.amounts)  # (n, 5)
        avg = means[:, :4]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = avg / means[:, 4:5]
        return np.concatenate([avg, frac], axis=1)

    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        return reference.valence_orbital_reference([c.to_pymatgen() for c in comps])
