"""``magpie_v1``: matminer ``ElementProperty.from_preset("magpie")``, 22 properties x 6 statistics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from featurize import reference
from featurize.properties import magpie_table
from featurize.sets.base import (
    CompositionLike,
    ElementBatch,
    FeatureSet,
    weighted_avg_dev,
    weighted_maximum,
    weighted_mean,
    weighted_minimum,
    weighted_mode,
)
from featurize.sets.citations import WARD_2016

MAGPIE_STATS: tuple[str, ...] = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")


class MagpieV1(FeatureSet):
    """Magpie element-property statistics, weighted by the composition's amounts.

    Labels are matminer's (``"MagpieData mean Number"``), ordered property-major as matminer orders
    them. Element values are matminer's ``MagpieData(impute_nan=True)``.
    """

    name: ClassVar[str] = "magpie_v1"
    version: ClassVar[int] = 1

    def feature_labels(self) -> list[str]:
        table = magpie_table()
        return [f"{table.source} {stat} {prop}" for prop in table.properties for stat in MAGPIE_STATS]

    def citations(self) -> list[str]:
        return [WARD_2016]

    def compute_batch(self, batch: ElementBatch, comps: Sequence[CompositionLike]) -> np.ndarray:
        values = magpie_table().values[batch.index]  # (n, k, p)
        minimum = weighted_minimum(values, batch.mask)
        maximum = weighted_maximum(values, batch.mask)
        mean = weighted_mean(values, batch.amounts)
        avg_dev = weighted_avg_dev(values, batch.amounts, mean)
        mode = weighted_mode(values, batch.amounts, batch.mask)
        # (n, stats, p) -> (n, p, stats) -> property-major flat labels, as matminer orders them.
        stacked = np.stack([minimum, maximum, maximum - minimum, mean, avg_dev, mode], axis=1)
        return stacked.transpose(0, 2, 1).reshape(batch.n, -1)

    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        return reference.magpie_reference([c.to_pymatgen() for c in comps])
