"""``stoichiometry_v1``: matminer ``Stoichiometry()``, the p-norms 0, 2, 3, 5, 7, 10 of the fractions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from featurize import reference
from featurize.sets.base import CompositionLike, ElementBatch, FeatureSet
from featurize.sets.citations import WARD_2016

P_NORMS: tuple[int, ...] = (0, 2, 3, 5, 7, 10)


class StoichiometryV1(FeatureSet):
    """Lp norms of the atomic fractions; the 0-norm is the number of elements (matminer's convention)."""

    name: ClassVar[str] = "stoichiometry_v1"
    version: ClassVar[int] = 1

    def feature_labels(self) -> list[str]:
        return [f"{p}-norm" for p in P_NORMS]

    def citations(self) -> list[str]:
        return [WARD_2016]

    def compute_batch(self, batch: ElementBatch) -> np.ndarray:
        fractions = batch.fractions
        out = np.empty((batch.n, len(P_NORMS)), dtype=np.float64)
        for j, p in enumerate(P_NORMS):
            out[:, j] = batch.k if p == 0 else (fractions**p).sum(axis=1) ** (1.0 / p)
        return out

    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        return reference.stoichiometry_reference([c.to_pymatgen() for c in comps])
