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
    stat_avg_dev,
    stat_maximum,
    stat_mean,
    stat_minimum,
    stat_mode,
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

    def compute_batch(self, batch: ElementBatch) -> np.ndarray:
        values = magpie_table().values[batch.index.T]  # (k, m, p)
        n_props = values.shape[2]
        out = np.empty((batch.n, n_props, len(MAGPIE_STATS)), dtype=np.float64)  # property-major labels
        minimum, maximum = stat_minimum(values), stat_maximum(values)
        mean = stat_mean(values, batch.amounts)
        out[:, :, 0] = minimum
        out[:, :, 1] = maximum
        out[:, :, 2] = maximum - minimum
        out[:, :, 3] = mean
        out[:, :, 4] = stat_avg_dev(values, batch.amounts, mean)
        out[:, :, 5] = stat_mode(values, batch.amounts)
        return out.reshape(batch.n, -1)

    def compute_reference(self, comps: Sequence[CompositionLike]) -> np.ndarray:
        return reference.magpie_reference([c.to_pymatgen() for c in comps])
